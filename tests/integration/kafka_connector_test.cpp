// The Kafka connectors one by one against the real broker (ctest fixture
// `kafka`): per-partition event time and idleness, start positions, the lag
// metric, a position lost to retention; the exactly-once writer's recovery
// (staged records committed once, a zombie fenced) and a switch to at
// least once.

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
#include "stream/kafka.hpp"
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

class kafka_connector_test : public ::testing::Test {
 protected:
  std::string brokers_ = tk::broker();
};

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

TEST_F(kafka_connector_test,
       event_time_is_the_minimum_over_partitions_unless_idle) {
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

TEST_F(kafka_connector_test,
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
  auto lag = [&](const std::string& label) {
    return testing::sum_of(slow.metrics(), "stream_kafka_consumer_lag_records",
                           label);
  };
  EXPECT_TRUE(eventually(
      [&] {
        auto total = lag("topic=\"" + topic + "\"");
        return lag("partition=\"0\"") > 0 && lag("partition=\"1\"") > 0 &&
               total > 100 && total < 200;
      },
      10s))
      << slow.metrics();
}

/// One exactly-once sink subtask's writer, as a task would drive it.
struct sink_writer {
  sink_writer(const std::string& brokers, const std::string& topic,
              metrics_registry& registry, std::string prefix = {},
              kafka::delivery guarantee = kafka::delivery::exactly_once) {
    ctx.job_name = "kafka-writer";
    ctx.operator_name = "out";
    ctx.metrics = &registry;
    ctx.options = &options;
    kafka::sink_options o;
    o.brokers = brokers;
    o.topic = topic;
    o.transactional_id_prefix = prefix.empty() ? topic : prefix;
    o.guarantee = guarantee;
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

TEST_F(kafka_connector_test,
       a_restored_sink_commits_what_its_predecessor_staged_once) {
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
    // The zombie is fenced: its commit fails (records 100..104 were only
    // buffered by it; the output below shows that checkpoint 1 went in
    // once, through the replacement).
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
    // A restore under another transactional id is refused: it would
    // neither find the old id's markers nor fence its open transaction.
    sink_writer renamed{brokers_, topic, registry, topic + "-renamed"};
    auto st = renamed.writer->restore(2, &state2);
    EXPECT_NE(st.message().find("was written with transactional id"),
              std::string::npos)
        << st.message();
  }
  EXPECT_EQ(testing::sum_of(registry.to_prometheus_text(),
                            "stream_kafka_recommitted_records_total", ""),
            10);
  std::vector<std::string> expected;
  for (int i = 0; i < 15; ++i)
    expected.push_back("record " + std::to_string(i));
  std::sort(expected.begin(), expected.end());
  auto actual = committed_values(brokers_, topic);
  EXPECT_TRUE(actual == expected) << line_diff(expected, actual);
}

TEST_F(kafka_connector_test,
       switching_to_at_least_once_fences_the_exactly_once_run) {
  auto topic = tk::unique_topic("switch");
  tk::create_topic(brokers_, topic, 1);
  metrics_registry registry;
  std::string staged;
  // An exactly-once run staged checkpoints 1 and 2 (checkpoint 2's
  // state holds both), committed checkpoint 1 (its marker says so), opened
  // the transaction of checkpoint 2 (flushed, still open) and died.
  sink_writer exactly{brokers_, topic, registry};
  ASSERT_TRUE(exactly.writer->restore(0, nullptr).ok());
  exactly.write(0, 5);
  std::string state1;
  ASSERT_TRUE(exactly.writer->snapshot(1, state1).ok());
  exactly.write(5, 12);
  ASSERT_TRUE(exactly.writer->snapshot(2, staged).ok());
  ASSERT_TRUE(exactly.writer->commit(1).ok());
  // The job is restored from checkpoint 2 with at-least-once delivery.
  const auto started = clock_type::now();
  sink_writer least{
      brokers_, topic, registry, {}, kafka::delivery::at_least_once};
  auto st = least.writer->restore(2, &staged);
  ASSERT_TRUE(st.ok()) << st.message();
  // Checkpoint 1 was committed (the marker keeps it from being written
  // twice); checkpoint 2's 7 records were not.
  EXPECT_EQ(testing::sum_of(registry.to_prometheus_text(),
                            "stream_kafka_recommitted_records_total", ""),
            7);
  least.write(12, 15);
  std::string ignored;
  ASSERT_TRUE(least.writer->snapshot(3, ignored).ok());
  // The old run is fenced: its open transaction was aborted, so a
  // read_committed consumer reads on at once (it would otherwise wait for
  // the 5-minute transaction timeout), and its commit now fails.
  std::vector<std::string> expected;
  for (int i = 0; i < 15; ++i)
    expected.push_back("record " + std::to_string(i));
  std::sort(expected.begin(), expected.end());
  auto actual = committed_values(brokers_, topic);
  EXPECT_TRUE(actual == expected) << line_diff(expected, actual);
  EXPECT_LT(clock_type::now() - started, 30s);
  EXPECT_FALSE(exactly.writer->commit(2).ok());
}

TEST_F(kafka_connector_test, a_position_deleted_by_retention_fails_the_job) {
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
