#pragma once

// kafka_bench's own Kafka client pieces (librdkafka): the consumer that
// times window messages as they arrive, the newest view of a topic, and
// deleting topics. Topic creation and counting come from the Kafka tests'
// support code (tests/support/kafka_support.hpp). Every call waits a
// bounded time and throws std::runtime_error saying what failed.

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kafka/owned.hpp"

namespace kafka_bench {

using stream::kafka::client;

/// Wall-clock milliseconds since the epoch: the clock of the views'
/// timestamps (kafka_load --event-time now).
std::int64_t wall_ms();

/// One window message as received.
struct window_sample {
  std::int64_t end_ms = 0;       ///< the window's end (event time)
  std::int64_t received_ms = 0;  ///< wall clock at receipt
};

/// Reads the `partitions` partitions of a topic of window summaries
/// ("user=U window=[S,E) ...") from their beginning, read_committed, on a
/// thread of its own, and notes every message's window end and time of
/// receipt. The broker answers an empty fetch after 20 ms
/// (fetch.wait.max.ms), so a message is received at most that late. The
/// samples belong to the thread until finish() joined it; the destructor
/// stops and joins it too.
class window_reader {
 public:
  /// Starts reading; throws when the consumer cannot be made or assigned.
  window_reader(const std::string& brokers, const std::string& topic,
                int partitions);

  /// Call after the job ended: reads what is left (every partition at its
  /// end for a second), joins the thread and returns the samples. Throws
  /// when a message was not a window summary or the rest could not be
  /// read within 20 s.
  std::vector<window_sample> finish();

 private:
  void run(const std::stop_token& stop);
  bool note(const rd_kafka_message_t& m, std::int64_t now);

  client rk_;
  int partitions_;
  std::atomic<bool> job_done_{false};
  std::vector<window_sample> samples_;
  std::string error_;
  std::jthread thread_;  // last: stopped and joined before the rest goes
};

/// The smallest of the newest message timestamps of the `partitions`
/// partitions of `topic` (every partition must hold a message): the views
/// up to it are in every partition. Waits 10 s at most.
std::int64_t last_timestamp(const std::string& brokers,
                            const std::string& topic, int partitions);

/// Deletes `topics`; returns what failed, empty when nothing did. Waits
/// 30 s at most.
std::string delete_topics(const std::string& brokers,
                          const std::vector<std::string>& topics);

}  // namespace kafka_bench
