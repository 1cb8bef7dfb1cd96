// The Kafka connectors against a real broker (started by the ctest fixture
// `kafka`, see tests/CMakeLists.txt): the seed's topology (page views ->
// key by user -> 10 s tumbling window -> process window function) from a
// topic with several partitions into a topic written exactly once, checked
// with a read_committed consumer against a reference computed from the
// views; the same across worker processes killed with SIGKILL; malformed
// messages into the dead-letter topic; the fail policy; start-up checks of
// the transaction timeout and the topics. The connectors' own behaviour is
// in kafka_connector_test.cpp.

#include "stream/kafka.hpp"

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster_support.hpp"
#include "kafka_job_support.hpp"
#include "kafka_support.hpp"
#include "process.hpp"
#include "scrape.hpp"
#include "stream/detail/kafka_io.hpp"
#include "stream/metrics.hpp"
#include "stream/run.hpp"
#include "windowed_process.hpp"

namespace stream {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using stream::testing::child_process;
using stream::testing::cluster;
using stream::testing::committed_values;
using stream::testing::count_of;
using stream::testing::eventually;
using stream::testing::expected_windows;
using stream::testing::line_diff;
using stream::testing::per_second;
using stream::testing::topics;
using stream::testing::users;
using stream::testing::views;
namespace tk = stream::test::kafka;
namespace wp = windowed_process;

const std::string binary =
    std::string{STREAM_EXAMPLES_DIR} + "/windowed_process_kafka";

/// The example's command line for these topics.
std::vector<std::string> job_flags(const std::string& brokers,
                                   const topics& t) {
  return {"--brokers",      brokers, "--input-topic",       t.in,
          "--output-topic", t.out,   "--dead-letter-topic", t.dead,
          "--bounded",      "1",     "--transactional-id",  t.out};
}
class kafka_test : public ::testing::Test {
 protected:
  std::string brokers_ = tk::broker();
};

TEST_F(kafka_test, the_seed_topology_writes_each_window_exactly_once) {
  topics t{brokers_};
  auto input = views(40'000);
  tk::produce(brokers_, t.in, input);
  char dir[] = "/tmp/stream-kafka-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  auto argv = job_flags(brokers_, t);
  argv.insert(argv.begin(), binary);
  argv.insert(argv.end(),
              {"--parallelism", "2", "--checkpoint-interval", "200ms",
               "--checkpoint-dir", dir, "--metrics-address", ""});
  child_process job{argv};
  ASSERT_EQ(job.wait(120s), 0) << job.err();
  auto expected = expected_windows(input);
  auto actual = committed_values(brokers_, t.out);
  EXPECT_EQ(actual.size(), expected.size());
  EXPECT_TRUE(actual == expected) << line_diff(expected, actual);
  std::filesystem::remove_all(dir);
}

TEST_F(kafka_test, killed_workers_neither_lose_nor_duplicate_windows) {
  // 60,000 views read at 12,000/s: about 5 s of input. Three workers of one
  // slot for a job of parallelism 2; twice a worker that hosts tasks is
  // killed at a random moment and restarted at once.
  topics t{brokers_};
  auto input = views(60'000);
  tk::produce(brokers_, t.in, input);
  cluster c{binary, "kafka-eo", 2};
  auto flags = job_flags(brokers_, t);
  flags.insert(flags.end(),
               {"--read-rate", "12000", "--checkpoint-interval", "200ms",
                "--restart-strategy", "fixed-delay", "--restart-delay", "0",
                "--restart-attempts", "20"});
  auto command = c.job_command(flags, "", c.checkpoints());
  child_process coordinator{c.coordinator_command(command)};
  std::map<std::string, std::unique_ptr<child_process>> workers;
  for (const auto* id : {"w1", "w2", "w3"})
    workers[id] =
        std::make_unique<child_process>(c.worker_command(command, id, 1));
  ASSERT_TRUE(c.wait_for_checkpoints(2, 30s)) << coordinator.err();

  auto seed = std::random_device{}();
  std::mt19937 rng{seed};
  std::printf("chaos seed %u\n", seed);
  for (int kill = 0; kill < 2; ++kill) {
    std::uniform_int_distribution<int> pause_ms{300, 1200};
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
    auto busy = stream::testing::busy_workers(c);
    ASSERT_FALSE(busy.empty()) << coordinator.err();
    auto id = busy[std::uniform_int_distribution<std::size_t>{
        0, busy.size() - 1}(rng)];
    auto flowing_before = count_of(coordinator.err(), "records flowing again");
    auto killed_at = clock_type::now();
    workers[id]->signal(SIGKILL);
    workers[id]->wait(10s);
    workers[id] =
        std::make_unique<child_process>(c.worker_command(command, id, 1));
    ASSERT_TRUE(coordinator.wait_for_err("worker " + id + " lost", 10s))
        << coordinator.err();
    while (count_of(coordinator.err(), "records flowing again") ==
               flowing_before &&
           clock_type::now() - killed_at < 20s)
      std::this_thread::sleep_for(1ms);
    auto ms =
        std::chrono::duration<double, std::milli>(clock_type::now() - killed_at)
            .count();
    std::printf("kill %d of worker %s: records flowing again after %.0f ms\n",
                kill + 1, id.c_str(), ms);
    ASSERT_GT(count_of(coordinator.err(), "records flowing again"),
              flowing_before)
        << coordinator.err();
  }
  ASSERT_EQ(coordinator.wait(120s), 0) << coordinator.err();
  for (auto& [id, w] : workers) EXPECT_EQ(w->wait(20s), 0) << w->err();
  EXPECT_GE(count_of(coordinator.err(), " lost: "), 2U) << coordinator.err();

  auto expected = expected_windows(input);
  auto actual = committed_values(brokers_, t.out);
  EXPECT_EQ(actual.size(), expected.size());
  EXPECT_TRUE(actual == expected) << line_diff(expected, actual);
  // For the log: messages of transactions the kills aborted show up only
  // for read_uncommitted (whether a kill caught output in flight depends
  // on its moment).
  auto all = tk::read_all(brokers_, t.out, false);
  std::printf("%zu committed windows; %zu messages including aborted ones\n",
              actual.size(), all.size());
}

/// The seed's topology in this process, so that the test can read its
/// metrics.
result<job_report> run_in_process(const std::string& brokers, const topics& t,
                                  kafka::bad_record_policy policy,
                                  std::shared_ptr<metrics_registry> registry) {
  job_options o;
  o.job_name = "kafka-dlq";
  o.parallelism = 2;
  o.checkpoint_interval = 200ms;
  o.checkpoint_dir = "/tmp/stream-kafka-test-" + std::to_string(::getpid());
  o.metrics_address = "";
  o.restart_attempts = 0;
  o.restart_strategy = "none";
  environment env{o};
  kafka::source_options in;
  in.brokers = brokers;
  in.topic = t.in;
  in.bounded = true;
  in.bad_records = policy;
  in.dead_letter_topic = t.dead;
  auto views = kafka::source<wp::page_view>(
      env, in, [](const kafka::message& m) { return wp::parse_csv(m.value); },
      wp::view_watermarks());
  kafka::sink_options out;
  out.brokers = brokers;
  out.topic = t.out;
  out.transactional_id_prefix = t.out;
  kafka::sink(wp::summarize_views(views), out, [](const wp::user_window& w) {
    return kafka::record{std::to_string(w.user), wp::to_line(w)};
  });
  execution_hooks hooks;
  hooks.registry = std::move(registry);
  auto report = execute(env, hooks);
  std::filesystem::remove_all(o.checkpoint_dir);
  return report;
}

TEST_F(kafka_test, malformed_messages_are_counted_and_dead_lettered) {
  topics t{brokers_};
  auto input = views(20'000, 997);  // 20 malformed
  tk::produce(brokers_, t.in, input);
  auto registry = std::make_shared<metrics_registry>();
  auto report = run_in_process(brokers_, t,
                               kafka::bad_record_policy::dead_letter, registry);
  ASSERT_TRUE(report.ok()) << report.error().message();

  auto text = registry->to_prometheus_text();
  EXPECT_EQ(testing::sum_of(text, "stream_bad_records_total", ""), 20) << text;
  EXPECT_EQ(testing::sum_of(text, "stream_kafka_dead_letters_total", ""), 20);
  // Where each malformed message was in the input.
  std::map<std::string, std::pair<std::int32_t, std::int64_t>> origin;
  for (const auto& m : tk::read_all(brokers_, t.in, true))
    if (m.value.starts_with("malformed"))
      origin[m.value] = {m.partition, m.offset};
  ASSERT_EQ(origin.size(), 20U);
  auto dead = tk::read_all(brokers_, t.dead, true);
  ASSERT_EQ(dead.size(), 20U);
  for (const auto& m : dead) {
    ASSERT_TRUE(origin.count(m.value)) << m.value;
    EXPECT_EQ(m.headers.at("stream.topic"), t.in);
    EXPECT_EQ(m.headers.at("stream.partition"),
              std::to_string(origin[m.value].first));
    EXPECT_EQ(m.headers.at("stream.offset"),
              std::to_string(origin[m.value].second));
    EXPECT_NE(m.headers.at("stream.error").find("user is not a number"),
              std::string::npos)
        << m.headers.at("stream.error");
  }
  auto expected = expected_windows(input);
  auto actual = committed_values(brokers_, t.out);
  EXPECT_TRUE(actual == expected) << line_diff(expected, actual);
}

TEST_F(kafka_test, the_fail_policy_fails_the_job_at_a_malformed_message) {
  topics t{brokers_};
  tk::produce(brokers_, t.in, views(1'000, 500));
  auto registry = std::make_shared<metrics_registry>();
  auto report =
      run_in_process(brokers_, t, kafka::bad_record_policy::fail, registry);
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.error().message().find("bad record at partition"),
            std::string::npos)
      << report.error().message();
  EXPECT_NE(report.error().message().find("user is not a number"),
            std::string::npos)
      << report.error().message();
}

TEST_F(kafka_test,
       a_transaction_timeout_the_broker_refuses_is_refused_at_start) {
  ASSERT_EQ(tk::broker_config(brokers_, "transaction.max.timeout.ms"),
            "900000");
  topics t{brokers_};
  tk::produce(brokers_, t.in, views(100));
  auto run = [&](std::vector<std::string> extra) {
    auto argv = job_flags(brokers_, t);
    argv.insert(argv.begin(), binary);
    argv.insert(argv.end(), {"--metrics-address", ""});
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto job = std::make_unique<child_process>(argv);
    EXPECT_NE(job->wait(30s), 0) << job->err();
    return job->err();
  };
  auto too_long = run({"--transaction-timeout", "20m", "--checkpoint-interval",
                       "1s", "--checkpoint-dir", "/tmp/stream-kafka-unused"});
  EXPECT_NE(too_long.find("the transaction timeout (1200000 ms) exceeds the "
                          "broker's transaction.max.timeout.ms (900000 ms)"),
            std::string::npos)
      << too_long;
  auto too_short = run({"--transaction-timeout", "1s", "--checkpoint-interval",
                        "2s", "--checkpoint-dir", "/tmp/stream-kafka-unused"});
  EXPECT_NE(too_short.find("must exceed the checkpoint interval (2000 ms)"),
            std::string::npos)
      << too_short;
  auto no_checkpoints = run({});
  EXPECT_NE(no_checkpoints.find("an exactly-once Kafka sink commits at "
                                "checkpoints: set a checkpoint interval"),
            std::string::npos)
      << no_checkpoints;
  // Refused before any task ran: nothing was written.
  for (auto end : tk::end_offsets(brokers_, t.out)) EXPECT_EQ(end, 0);
}

TEST_F(kafka_test, a_missing_topic_is_refused_at_start) {
  topics t{brokers_};
  auto missing = "no-such-topic-" + std::to_string(::getpid());
  child_process job{{binary, "--brokers", brokers_, "--input-topic", missing,
                     "--output-topic", t.out, "--dead-letter-topic", t.dead,
                     "--checkpoint-interval", "1s", "--metrics-address", ""}};
  EXPECT_NE(job.wait(30s), 0);
  EXPECT_NE(job.err().find("operator 'page_views': Kafka topic '" + missing +
                           "' at " + brokers_),
            std::string::npos)
      << job.err();
}

}  // namespace
}  // namespace stream
