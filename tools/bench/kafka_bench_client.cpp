#include "kafka_bench_client.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <stdexcept>

#include "kafka_support.hpp"

namespace kafka_bench {
namespace {

using clock_type = std::chrono::steady_clock;
using stream::kafka::event_ptr;
using stream::kafka::message_ptr;
using stream::kafka::partition_list;
using stream::kafka::queue_ptr;

// After the job ended, its output counts as read once every partition
// stood at its end this long: a fetch answers within 20 ms, so an end of
// partition seen before the last commit is long overtaken by then.
constexpr std::chrono::milliseconds drain_grace{1000};
constexpr std::chrono::seconds drain_limit{20};
constexpr std::chrono::seconds last_limit{10};
constexpr int delete_timeout_ms = 30'000;

client make_client(rd_kafka_type_t type,
                   const std::map<std::string, std::string>& settings) {
  std::string error;
  auto rk = stream::kafka::new_client(type, settings, error);
  if (!rk) throw std::runtime_error("librdkafka: " + error);
  return rk;
}

/// A consumer that is assigned partitions: it never joins its group nor
/// commits.
client make_consumer(const std::string& brokers, bool committed_only) {
  return make_client(
      RD_KAFKA_CONSUMER,
      {{"bootstrap.servers", brokers},
       {"group.id", "kafka-bench-" + std::to_string(::getpid())},
       {"enable.auto.commit", "false"},
       {"enable.partition.eof", "true"},
       {"fetch.wait.max.ms", "20"},
       {"isolation.level",
        committed_only ? "read_committed" : "read_uncommitted"}});
}

void assign(rd_kafka_t* rk, const std::string& topic,
            const std::vector<std::int64_t>& offsets) {
  partition_list list{
      rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size()))};
  for (std::size_t p = 0; p < offsets.size(); ++p)
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(),
                                      static_cast<std::int32_t>(p))
        ->offset = offsets[p];
  if (auto err = rd_kafka_assign(rk, list.get()); err)
    throw std::runtime_error("cannot assign the partitions of " + topic + ": " +
                             rd_kafka_err2str(err));
}

}  // namespace

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

window_reader::window_reader(const std::string& brokers,
                             const std::string& topic, int partitions)
    : rk_(make_consumer(brokers, true)), partitions_(partitions) {
  assign(rk_.get(), topic,
         std::vector<std::int64_t>(static_cast<std::size_t>(partitions),
                                   RD_KAFKA_OFFSET_BEGINNING));
  thread_ = std::jthread{[this](std::stop_token stop) { run(stop); }};
}

std::vector<window_sample> window_reader::finish() {
  job_done_ = true;
  thread_.join();
  if (!error_.empty()) throw std::runtime_error("output reader: " + error_);
  return std::move(samples_);
}

void window_reader::run(const std::stop_token& stop) {
  std::vector<bool> at_end(static_cast<std::size_t>(partitions_), false);
  clock_type::time_point done_at{};
  std::string last_error;
  while (!stop.stop_requested()) {
    message_ptr m{rd_kafka_consumer_poll(rk_.get(), 10)};
    const auto now = wall_ms();
    if (m) {
      auto p = static_cast<std::size_t>(m->partition);
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        at_end.at(p) = true;
      } else if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        last_error = rd_kafka_message_errstr(m.get());
      } else if (!note(*m, now)) {
        return;
      } else {
        at_end.at(p) = false;
      }
    }
    if (!job_done_) continue;
    if (done_at == clock_type::time_point{}) done_at = clock_type::now();
    const auto waited = clock_type::now() - done_at;
    if (waited >= drain_grace &&
        std::all_of(at_end.begin(), at_end.end(), [](bool b) { return b; }))
      return;
    if (waited > drain_limit) {
      error_ =
          "the output was not read to its end within 20 s after the job "
          "ended; last consumer error: " +
          (last_error.empty() ? "none" : last_error);
      return;
    }
  }
}

/// Notes a window summary; false (and the error) for anything else.
bool window_reader::note(const rd_kafka_message_t& m, std::int64_t now) {
  std::string value;
  if (m.payload != nullptr)
    value.assign(static_cast<const char*>(m.payload), m.len);
  long long start = 0;
  long long end = 0;
  auto at = value.find("window=[");
  if (at == std::string::npos ||
      std::sscanf(value.c_str() + at, "window=[%lld,%lld)", &start, &end) !=
          2) {
    error_ = "not a window summary: '" + value + "'";
    return false;
  }
  samples_.push_back({end, now});
  return true;
}

std::int64_t last_timestamp(const std::string& brokers,
                            const std::string& topic, int partitions) {
  auto ends = stream::test::kafka::end_offsets(brokers, topic);
  if (ends.size() != static_cast<std::size_t>(partitions) ||
      std::any_of(ends.begin(), ends.end(), [](auto e) { return e <= 0; }))
    throw std::runtime_error("a partition of " + topic + " is empty");
  for (auto& e : ends) --e;
  auto rk = make_consumer(brokers, false);
  assign(rk.get(), topic, ends);
  std::vector<std::int64_t> last(ends.size(), -1);
  const auto deadline = clock_type::now() + last_limit;
  while (std::any_of(last.begin(), last.end(), [](auto t) { return t < 0; })) {
    if (clock_type::now() > deadline)
      throw std::runtime_error("cannot read the newest views of " + topic +
                               " within 10 s");
    message_ptr m{rd_kafka_consumer_poll(rk.get(), 100)};
    if (m && m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
      last.at(static_cast<std::size_t>(m->partition)) =
          rd_kafka_message_timestamp(m.get(), nullptr);
  }
  return *std::min_element(last.begin(), last.end());
}

std::string delete_topics(const std::string& brokers,
                          const std::vector<std::string>& topics) {
  if (topics.empty()) return {};
  auto rk = make_client(RD_KAFKA_PRODUCER, {{"bootstrap.servers", brokers}});
  std::vector<rd_kafka_DeleteTopic_t*> specs;
  for (const auto& t : topics)
    specs.push_back(rd_kafka_DeleteTopic_new(t.c_str()));
  queue_ptr queue{rd_kafka_queue_new(rk.get())};
  rd_kafka_DeleteTopics(rk.get(), specs.data(), specs.size(), nullptr,
                        queue.get());
  rd_kafka_DeleteTopic_destroy_array(specs.data(), specs.size());
  event_ptr event{rd_kafka_queue_poll(queue.get(), delete_timeout_ms)};
  if (!event) return "no answer within 30 s";
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR)
    return rd_kafka_event_error_string(event.get());
  std::size_t count = 0;
  const auto* const* results = rd_kafka_DeleteTopics_result_topics(
      rd_kafka_event_DeleteTopics_result(event.get()), &count);
  std::string failed;
  for (std::size_t i = 0; i < count; ++i)
    if (rd_kafka_topic_result_error(results[i]) != RD_KAFKA_RESP_ERR_NO_ERROR)
      failed += std::string{failed.empty() ? "" : "; "} +
                rd_kafka_topic_result_name(results[i]) + ": " +
                rd_kafka_topic_result_error_string(results[i]);
  return failed;
}

}  // namespace kafka_bench
