// The Kafka connectors against a real broker (started by the ctest fixture
// `kafka`, see tests/CMakeLists.txt): the seed's topology (page views ->
// key by user -> 10 s tumbling window -> process window function) from a
// topic with several partitions into a topic written exactly once, checked
// with a read_committed consumer against a reference computed from the
// views; the same across worker processes killed with SIGKILL; malformed
// messages into the dead-letter topic; start-up checks of the transaction
// timeout; start positions, the fail policy and the lag metric.

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
using stream::testing::count_of;
namespace tk = stream::test::kafka;
namespace wp = windowed_process;

constexpr std::uint64_t users = 100;
constexpr std::uint64_t per_second = 1000;
const std::string binary =
    std::string{STREAM_EXAMPLES_DIR} + "/windowed_process_kafka";

/// Topics of one test: input (4 partitions), output (4), dead letters (1).
struct topics {
  std::string in = tk::unique_topic("views");
  std::string out = tk::unique_topic("windows");
  std::string dead = tk::unique_topic("dead");

  explicit topics(const std::string& brokers) {
    tk::create_topic(brokers, in, 4);
    tk::create_topic(brokers, out, 4);
    tk::create_topic(brokers, dead, 1);
  }
};

/// Views 0..n-1 as key/value messages; every `malformed_every`-th one
/// (0 = none) replaced by a line that does not parse.
std::vector<std::pair<std::string, std::string>> views(
    std::uint64_t n, std::uint64_t malformed_every = 0) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    auto v = wp::make_view(i, users, per_second);
    if (malformed_every > 0 && (i + 1) % malformed_every == 0)
      out.emplace_back(std::to_string(v.user),
                       "malformed view #" + std::to_string(i));
    else
      out.emplace_back(std::to_string(v.user), wp::to_csv(v));
  }
  return out;
}

/// What the job must write for `input`: one line per user and window,
/// computed straight from the views that parse. Sorted.
std::vector<std::string> expected_windows(
    const std::vector<std::pair<std::string, std::string>>& input) {
  std::map<std::pair<std::uint64_t, std::int64_t>, std::vector<wp::page_view>>
      windows;
  for (const auto& [key, value] : input) {
    auto v = wp::parse_csv(value);
    if (!v) continue;
    auto start = v->ts - v->ts % 10'000;
    windows[{v->user, start}].push_back(*v);
  }
  std::vector<std::string> lines;
  for (const auto& [k, vs] : windows) {
    std::set<std::uint32_t> pages;
    for (const auto& v : vs) pages.insert(v.page);
    lines.push_back(wp::to_line(
        {k.first, k.second, k.second + 10'000, vs.size(), pages.size()}));
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

/// The values of every committed message of `topic`, sorted (duplicates
/// kept, so that a duplicate shows as a difference).
std::vector<std::string> committed_values(const std::string& brokers,
                                          const std::string& topic) {
  std::vector<std::string> values;
  for (auto& m : tk::read_all(brokers, topic, true)) values.push_back(m.value);
  std::sort(values.begin(), values.end());
  return values;
}

/// First lines that differ, for failure messages.
std::string diff(const std::vector<std::string>& expected,
                 const std::vector<std::string>& actual) {
  std::vector<std::string> missing;
  std::vector<std::string> extra;
  std::set_difference(expected.begin(), expected.end(), actual.begin(),
                      actual.end(), std::back_inserter(missing));
  std::set_difference(actual.begin(), actual.end(), expected.begin(),
                      expected.end(), std::back_inserter(extra));
  std::string out = std::to_string(missing.size()) + " missing, " +
                    std::to_string(extra.size()) + " extra (duplicates)\n";
  for (std::size_t i = 0; i < std::min<std::size_t>(5, missing.size()); ++i)
    out += "  missing: " + missing[i] + "\n";
  for (std::size_t i = 0; i < std::min<std::size_t>(5, extra.size()); ++i)
    out += "  extra:   " + extra[i] + "\n";
  return out;
}

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
  EXPECT_TRUE(actual == expected) << diff(expected, actual);
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
  EXPECT_TRUE(actual == expected) << diff(expected, actual);
  // The killed attempts did write: their transactions were aborted, and a
  // read_uncommitted consumer still sees their records.
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
  EXPECT_TRUE(actual == expected) << diff(expected, actual);
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
  auto too_long = run({"--transaction-timeout", "20m"});
  EXPECT_NE(too_long.find("the transaction timeout (1200000 ms) exceeds the "
                          "broker's transaction.max.timeout.ms (900000 ms)"),
            std::string::npos)
      << too_long;
  auto too_short = run({"--transaction-timeout", "1s", "--checkpoint-interval",
                        "2s", "--checkpoint-dir", "/tmp/stream-kafka-unused"});
  EXPECT_NE(too_short.find("must exceed the checkpoint interval (2000 ms)"),
            std::string::npos)
      << too_short;
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

/// A job of one Kafka source (parallelism 1) into a collect sink, run in
/// this process on its own thread until `stop` (or the end of a bounded
/// input).
class source_job {
 public:
  source_job(kafka::source_options in,
             std::optional<watermark_strategy<wp::page_view>> strategy,
             bool windows) {
    job_options o;
    o.job_name = "kafka-source";
    o.metrics_address = "";
    o.watermark_interval = 0ms;
    o.restart_strategy = "none";
    environment env{o};
    auto views = kafka::source<wp::page_view>(
        env, std::move(in),
        [](const kafka::message& m) { return wp::parse_csv(m.value); },
        std::move(strategy));
    if (windows)
      windows_ = wp::summarize_views(views).collect();
    else
      views_ = views.collect();
    hooks_.registry = registry_;
    hooks_.stop = &stop_;
    thread_ = std::thread{[this, env = std::move(env)]() mutable {
      report_ = std::make_unique<result<job_report>>(execute(env, hooks_));
      ended_ = true;
    }};
  }
  ~source_job() { finish(); }

  /// Stops the source (if it still runs) and waits for the job's end.
  const result<job_report>& finish() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    return *report_;
  }

  /// The job ended by itself (end of a bounded input, or a failure).
  bool ended() const { return ended_; }
  std::size_t windows() const { return windows_ ? windows_->size() : 0; }
  std::vector<wp::page_view> views() const { return views_->records(); }
  std::string metrics() const { return registry_->to_prometheus_text(); }

 private:
  std::shared_ptr<metrics_registry> registry_ =
      std::make_shared<metrics_registry>();
  std::atomic<bool> stop_{false};
  std::atomic<bool> ended_{false};
  execution_hooks hooks_;
  std::shared_ptr<collected<wp::user_window>> windows_;
  std::shared_ptr<collected<wp::page_view>> views_;
  std::unique_ptr<result<job_report>> report_;
  std::thread thread_;
};

/// Polls `done` every 10 ms for at most `timeout`.
template <class F>
bool eventually(F done, std::chrono::milliseconds timeout) {
  auto deadline = clock_type::now() + timeout;
  while (clock_type::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return done();
}

TEST_F(kafka_test, event_time_is_the_minimum_over_partitions_unless_idle) {
  // Views of 30 s of event time, all in partition 0 of two; partition 1
  // stays empty until the end of the test.
  auto topic = tk::unique_topic("event-time");
  tk::create_topic(brokers_, topic, 2);
  std::vector<std::pair<std::string, std::string>> input;
  for (std::uint64_t i = 0; i < 3'000; ++i)
    input.emplace_back("k", wp::to_csv(wp::make_view(i, users, 100)));
  tk::produce(brokers_, topic, input, 0);
  kafka::source_options in;
  in.brokers = brokers_;
  in.topic = topic;

  // Idle after 300 ms: the empty partition stops holding event time back,
  // and the windows before the last views fire while the job runs.
  {
    source_job idle{in, wp::view_watermarks().with_idleness(300ms), true};
    EXPECT_TRUE(eventually([&] { return idle.windows() > 0; }, 20s))
        << "no window fired with an idle partition";
  }
  // Without idleness the empty partition holds the watermark: nothing
  // fires, until a view arrives in it too.
  source_job held{in, wp::view_watermarks(), true};
  ASSERT_TRUE(eventually(
      [&] {
        return testing::sum_of(held.metrics(), "stream_records_out_total",
                               "operator=\"kafka_source\"") == 3'000;
      },
      20s))
      << held.metrics();
  std::this_thread::sleep_for(500ms);  // a watermark could fire by now
  EXPECT_EQ(held.windows(), 0U) << "an empty partition must hold event time";
  auto late = wp::make_view(2'999, users, 100);
  tk::produce(brokers_, topic, {{"k", wp::to_csv(late)}}, 1);
  EXPECT_TRUE(eventually([&] { return held.windows() > 0; }, 20s))
      << "windows did not fire once every partition had views";
}

TEST_F(kafka_test,
       starts_at_a_timestamp_or_at_the_groups_offsets_and_reports_lag) {
  auto topic = tk::unique_topic("start");
  tk::create_topic(brokers_, topic, 2);
  std::vector<std::pair<std::string, std::string>> first;
  std::vector<std::pair<std::string, std::string>> second;
  for (std::uint64_t i = 0; i < 100; ++i)
    first.emplace_back(std::to_string(i),
                       wp::to_csv(wp::make_view(i, users, 100)));
  for (std::uint64_t i = 100; i < 200; ++i)
    second.emplace_back(std::to_string(i),
                        wp::to_csv(wp::make_view(i, users, 100)));
  tk::produce(brokers_, topic, first);
  std::this_thread::sleep_for(20ms);
  auto between = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count();
  std::this_thread::sleep_for(20ms);
  tk::produce(brokers_, topic, second);

  kafka::source_options in;
  in.brokers = brokers_;
  in.topic = topic;
  in.bounded = true;
  in.start = kafka::start_from::timestamp;
  in.start_timestamp_ms = between;
  {
    source_job job{in, {}, false};
    ASSERT_TRUE(job.finish().ok()) << job.finish().error().message();
    auto got = job.views();
    EXPECT_EQ(got.size(), 100U);
    for (const auto& v : got)
      EXPECT_GE(v.ts, wp::make_view(100, users, 100).ts - 1900);
  }

  // Offsets committed to a group: 30 in each partition.
  auto group = tk::unique_topic("group");
  tk::commit_offsets(brokers_, group, topic, {30, 30});
  in.start = kafka::start_from::committed;
  in.group_id = group;
  {
    source_job job{in, {}, false};
    ASSERT_TRUE(job.finish().ok()) << job.finish().error().message();
    EXPECT_EQ(job.views().size(), 200U - 60U);
  }

  // Reading slowly, the lag per partition is what is left to read.
  in.start = kafka::start_from::earliest;
  in.bounded = false;
  in.rate = 20;
  source_job slow{in, {}, false};
  EXPECT_TRUE(eventually(
      [&] {
        auto lag =
            testing::sum_of(slow.metrics(), "stream_kafka_consumer_lag_records",
                            "topic=\"" + topic + "\"");
        return lag > 100 && lag < 200;
      },
      10s))
      << slow.metrics();
}

/// One exactly-once sink subtask's writer, as a task would drive it.
struct sink_writer {
  sink_writer(const std::string& brokers, const std::string& topic,
              metrics_registry& registry) {
    ctx.job_name = "kafka-writer";
    ctx.operator_name = "out";
    ctx.metrics = &registry;
    ctx.options = &options;
    kafka::sink_options o;
    o.brokers = brokers;
    o.topic = topic;
    o.transactional_id_prefix = topic;
    auto w = kafka::detail::writer::open(o, ctx);
    if (!w) throw std::runtime_error(w.error().message());
    writer = std::move(*w);
  }
  void write(int from, int to) {
    for (int i = from; i < to; ++i)
      ASSERT_TRUE(writer->write("k", "record " + std::to_string(i)).ok());
  }
  job_options options;
  runtime::stage_context ctx;
  std::unique_ptr<kafka::detail::writer> writer;
};

TEST_F(kafka_test, a_restored_sink_commits_what_its_predecessor_staged_once) {
  auto topic = tk::unique_topic("recovery");
  tk::create_topic(brokers_, topic, 1);
  metrics_registry registry;
  std::string staged;
  {
    // Checkpoint 1 staged (its transaction flushed, "pre-committed"), then
    // the process dies before the checkpoint's completion reached it.
    sink_writer first{brokers_, topic, registry};
    ASSERT_TRUE(first.writer->restore(0, nullptr).ok());
    first.write(0, 10);
    ASSERT_TRUE(first.writer->snapshot(1, staged).ok());
    // A zombie: it still runs while its replacement takes over.
    sink_writer second{brokers_, topic, registry};
    ASSERT_TRUE(second.writer->restore(1, &staged).ok());
    EXPECT_EQ(testing::sum_of(registry.to_prometheus_text(),
                              "stream_kafka_recommitted_records_total", ""),
              10);
    // The zombie is fenced: its commit fails, nothing of it is visible.
    first.write(100, 105);
    std::string ignored;
    auto zombie = first.writer->snapshot(2, ignored);
    if (zombie.ok()) zombie = first.writer->commit(2);
    EXPECT_FALSE(zombie.ok());
    EXPECT_NE(zombie.message().find("fenced"), std::string::npos)
        << zombie.message();
    // The replacement goes on: checkpoint 2 completes normally.
    second.write(10, 15);
    std::string state2;
    ASSERT_TRUE(second.writer->snapshot(2, state2).ok());
    ASSERT_TRUE(second.writer->commit(2).ok());
    // Restoring checkpoint 2 again (a later failure) writes nothing twice:
    // the marker says checkpoint 2 is in.
    sink_writer third{brokers_, topic, registry};
    ASSERT_TRUE(third.writer->restore(2, &state2).ok());
  }
  EXPECT_EQ(testing::sum_of(registry.to_prometheus_text(),
                            "stream_kafka_recommitted_records_total", ""),
            10);
  std::vector<std::string> expected;
  for (int i = 0; i < 15; ++i)
    expected.push_back("record " + std::to_string(i));
  std::sort(expected.begin(), expected.end());
  auto actual = committed_values(brokers_, topic);
  EXPECT_TRUE(actual == expected) << diff(expected, actual);
}

TEST_F(kafka_test, a_position_deleted_by_retention_fails_the_job) {
  auto topic = tk::unique_topic("retention");
  tk::create_topic(brokers_, topic, 1);
  // 20 record batches of 10 views, so that fetches can stop between them.
  for (std::uint64_t b = 0; b < 20; ++b) {
    std::vector<std::pair<std::string, std::string>> batch;
    for (std::uint64_t i = b * 10; i < b * 10 + 10; ++i)
      batch.emplace_back("k", wp::to_csv(wp::make_view(i, users, 100)));
    tk::produce(brokers_, topic, batch);
  }
  kafka::source_options in;
  in.brokers = brokers_;
  in.topic = topic;
  in.rate = 50;  // about 4 s for the topic: still early when it is cut
  // Small fetches, so that the consumer has not fetched the whole topic
  // ahead of the source's pace.
  in.properties = {{"fetch.message.max.bytes", "1024"},
                   {"queued.max.messages.kbytes", "1"},
                   {"queued.min.messages", "1"}};
  source_job job{in, {}, false};
  ASSERT_TRUE(eventually([&] { return !job.views().empty(); }, 10s));
  tk::delete_records(brokers_, topic, 0, 150);
  // The next fetch falls before the log's new start: an error, not a jump
  // past the deleted views.
  ASSERT_TRUE(eventually([&] { return job.ended(); }, 20s))
      << "the job still runs after reading " << job.views().size();
  const auto& report = job.finish();
  ASSERT_FALSE(report.ok()) << "read " << job.views().size() << " views";
  EXPECT_NE(report.error().message().find("no longer in the log"),
            std::string::npos)
      << report.error().message();
  EXPECT_LT(job.views().size(), 150U);
}

}  // namespace
}  // namespace stream
