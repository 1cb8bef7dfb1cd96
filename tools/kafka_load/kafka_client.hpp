#pragma once

// The librdkafka producer kafka_load writes with, and the topic checks it
// makes before writing. Errors are thrown as kafka_load::failure (exit 1).

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace kafka_load {

/// A failure talking to the broker: printed as "kafka_load: <message>",
/// exit code 1.
struct failure {
  std::string message;
};

/// Every blocking request at start-up (metadata, topic creation) waits at
/// most this long, so an unreachable broker fails fast instead of hanging.
inline constexpr std::chrono::milliseconds request_timeout{10'000};

/// Counts of delivery reports, updated by the delivery report callback.
/// That callback runs inside rd_kafka_poll/rd_kafka_flush on the thread
/// that calls them (the only thread kafka_load has), so no locking.
struct delivery_stats {
  std::uint64_t delivered = 0;
  std::uint64_t failed = 0;
  /// The first delivery error, e.g. "Local: Message timed out".
  std::string first_error;
};

struct producer_deleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using producer = std::unique_ptr<rd_kafka_t, producer_deleter>;

/// How the producer acknowledges writes.
enum class acks_mode { all, leader };

/// Creates the producer: murmur2_random partitioning (as the Java client),
/// linger 5 ms, 256 KiB batches, no compression, messages time out after
/// 30 s. Idempotent with acks=all; plain with acks=1 (librdkafka refuses
/// idempotence without acks=all). `stats` must outlive the producer.
/// Throws failure when librdkafka refuses a setting.
producer make_producer(const std::string& brokers, acks_mode acks,
                       delivery_stats& stats);

/// Checks that `topic` exists. With `partitions` > 0 creates it with that
/// many partitions (replication factor 1) when missing and waits until its
/// metadata shows them all; an existing topic with another partition count
/// is an error. Returns the partition count. Throws failure when the broker
/// does not answer within request_timeout, or the topic is missing (and
/// `partitions` is 0) or has the wrong count.
int prepare_topic(rd_kafka_t* rk, const std::string& brokers,
                  const std::string& topic, int partitions);

}  // namespace kafka_load
