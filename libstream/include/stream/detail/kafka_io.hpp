#pragma once

// The type-independent part of the Kafka connectors: options, and the
// reader and writer that own the librdkafka handles (behind pimpls, so that
// no public header includes librdkafka). The typed stages in
// kafka_stages.hpp drive them.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "stream/status.hpp"

namespace stream {
struct job_options;
}  // namespace stream

namespace stream::runtime {
struct stage_context;
}  // namespace stream::runtime

namespace stream::kafka {

/// Where a source starts when it does not restore from a checkpoint.
enum class start_from : std::uint8_t {
  earliest,   ///< The first offset still in each partition.
  latest,     ///< The end of each partition at start (only new messages).
  committed,  ///< The group's committed offsets; earliest where none.
  timestamp,  ///< The first message at or after `start_timestamp_ms`.
};

/// What a source does with a message its deserializer rejects. Every such
/// message is counted in `stream_bad_records_total`.
enum class bad_record_policy : std::uint8_t {
  skip,         ///< Report the first 1000 on stderr, go on.
  dead_letter,  ///< Write it to `dead_letter_topic` with the error, go on.
  fail,         ///< Fail the job (it restarts per the restart strategy).
};

/// The sink's delivery guarantee.
enum class delivery : std::uint8_t {
  at_least_once,  ///< Idempotent producer, flushed at every checkpoint.
  exactly_once,   ///< One Kafka transaction per checkpoint.
};

/// "earliest", "latest", "committed", "timestamp" and back.
result<start_from> parse_start_from(std::string_view text);
/// "skip", "dead-letter", "fail" and back.
result<bad_record_policy> parse_bad_record_policy(std::string_view text);
/// "at-least-once", "exactly-once" and back.
result<delivery> parse_delivery(std::string_view text);
std::string_view to_string(start_from v) noexcept;
std::string_view to_string(bad_record_policy v) noexcept;
std::string_view to_string(delivery v) noexcept;

/// Options of a Kafka source.
struct source_options {
  /// Bootstrap servers, "host:port[,host:port...]".
  std::string brokers = "127.0.0.1:9092";
  std::string topic;
  /// Consumer group for `start_from::committed` and for the offsets
  /// committed after each completed checkpoint (monitoring only: the
  /// checkpoint holds the positions). Empty: "<job>-<operator>".
  std::string group_id;
  start_from start = start_from::earliest;
  /// For `start_from::timestamp`: milliseconds since the epoch.
  std::int64_t start_timestamp_ms = 0;
  /// Stop at the end offsets the partitions had when the job first started
  /// (kept in checkpoints), instead of reading forever.
  bool bounded = false;
  /// Records per second over all subtasks; 0 = as fast as possible.
  double rate = 0;
  /// Messages a subtask keeps fetched ahead of its reading, split evenly
  /// over its partitions (librdkafka's `queued.min.messages`, unless
  /// `properties` sets it). librdkafka 2.0.2 fetches again for a partition
  /// whose queue reached its share only about a second later, so a subtask
  /// that catches up on a backlog reads at most about this many records
  /// per second; each prefetched message holds about 0.35 KB of memory.
  std::size_t prefetch = 500'000;
  bad_record_policy bad_records = bad_record_policy::skip;
  /// Required for `bad_record_policy::dead_letter`.
  std::string dead_letter_topic;
  /// Further librdkafka consumer properties (e.g. security settings);
  /// they override the connector's defaults.
  std::map<std::string, std::string> properties;
};

/// Options of a Kafka sink.
struct sink_options {
  /// Bootstrap servers, "host:port[,host:port...]".
  std::string brokers = "127.0.0.1:9092";
  std::string topic;
  delivery guarantee = delivery::exactly_once;
  /// Subtask s uses the transactional id "<prefix>-<s>", the same across
  /// restarts, so that a restarted subtask fences its predecessor and
  /// aborts its open transaction. Empty: "<job>-<operator>".
  std::string transactional_id_prefix;
  /// Kafka's `transaction.timeout.ms`: the broker aborts a transaction left
  /// open this long. Must exceed the checkpoint interval and be at most the
  /// broker's `transaction.max.timeout.ms` (Kafka's default: 15 min).
  std::chrono::milliseconds transaction_timeout{std::chrono::minutes{5}};
  /// Further librdkafka producer properties; they override the defaults.
  std::map<std::string, std::string> properties;
};

/// A consumed message, as the source's deserializer sees it. The views are
/// valid only during the call.
struct message {
  std::string_view key;
  std::string_view value;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::int64_t timestamp_ms = 0;  ///< The message's timestamp.
};

/// A message to produce, as the sink's serializer returns it.
struct record {
  std::string key;  ///< Empty: no key (partitioned round-robin).
  std::string value;
};

}  // namespace stream::kafka

namespace stream::kafka::detail {

/// librdkafka's `queued.min.messages` for a subtask reading `partitions`
/// partitions: its share of `prefetch`, within librdkafka's range.
std::size_t queued_min_messages(std::size_t prefetch,
                                std::size_t partitions) noexcept;

/// Where a source subtask is in one partition (what its checkpoint holds).
struct partition_position {
  std::int32_t partition = 0;
  std::int64_t next_offset = 0;
  /// Bounded sources: the offset to stop at; -1 for unbounded.
  std::int64_t stop_offset = -1;
};

/// One source subtask's consumer: the partitions `p % parallelism ==
/// subtask`, assigned (not subscribed), positions tracked here. Not
/// thread-safe: used by the task's actor only.
class reader {
 public:
  /// A data message of a poll, with the index of its partition in
  /// `partitions()`.
  struct polled {
    std::size_t index = 0;
    message view;
  };

  /// Connects, reads the topic's partition count and picks this subtask's
  /// partitions. Errors: broker unreachable, topic missing, bad properties.
  static result<std::unique_ptr<reader>> open(
      const source_options& options, const runtime::stage_context& ctx);
  ~reader();

  /// The partitions of this subtask, ascending.
  const std::vector<std::int32_t>& partitions() const noexcept;

  /// Resolves start (and, when bounded, stop) offsets per the options and
  /// assigns the partitions. Called once, unless `restore` was.
  status start();
  /// Continues at positions from `positions()`. Error when they name other
  /// partitions than this subtask has (the job ran with another
  /// parallelism or the topic changed).
  status restore(const std::vector<partition_position>& positions);
  std::vector<partition_position> positions() const;

  /// Replaces `out` with at most `max` messages that are already fetched,
  /// without waiting (a plain loop over them, no call per message); their
  /// views stay valid until the next poll. Consumer errors fail with an
  /// exception.
  void poll(std::size_t max, std::vector<polled>& out);
  /// Bounded: every partition reached its stop offset.
  bool finished() const noexcept;
  /// Partition `index` (of `partitions()`) reached its end and nothing
  /// arrived since (or it reached its stop offset).
  bool at_end(std::size_t index) const noexcept;
  /// The topic's partition count (all subtasks').
  std::size_t topic_partitions() const noexcept;

  /// Writes `msg` to the dead-letter topic with headers naming the error,
  /// topic, partition and offset. Asynchronous; `flush_dead_letters`
  /// waits for delivery.
  status dead_letter(const message& msg, std::string_view error);
  /// Waits (bounded) until every dead letter so far is stored.
  status flush_dead_letters();

  /// After a completed checkpoint: commits `positions` to the group
  /// (asynchronous, for monitoring tools).
  void commit_to_group(const std::vector<partition_position>& positions);
  /// Updates the consumer lag gauges (cheap: cached end offsets).
  void update_lag();

 private:
  struct impl;
  explicit reader(std::unique_ptr<impl> self);
  std::unique_ptr<impl> self_;
};

/// One sink subtask's producer. At least once: produces at once, flushes at
/// every checkpoint. Exactly once: records since the last barrier are kept
/// (they are part of the checkpoint, the "pre-commit") and written in a
/// transaction committed when the checkpoint completes; the transaction
/// also commits a marker (the checkpoint id, as an offset of a consumer
/// group of this subtask), so that a restore can tell whether a staged
/// transaction already got committed. Not thread-safe.
class writer {
 public:
  static result<std::unique_ptr<writer>> open(
      const sink_options& options, const runtime::stage_context& ctx);
  ~writer();

  /// Errors (delivery, fenced producer, broker) fail the task.
  status write(std::string key, std::string value);
  /// Checkpoint `id`'s barrier: flushes (at least once) or stages the
  /// records since the last barrier; `state` receives what a restore needs.
  status snapshot(std::int64_t id, std::string& state);
  /// Checkpoint `id` completed: commits what was staged up to it.
  status commit(std::int64_t id);
  /// Before any record: fences older producers of this subtask (aborting
  /// their open transaction) and commits staged records of the restored
  /// checkpoint that were not committed yet. `state` is null on a fresh
  /// start.
  status restore(std::int64_t checkpoint_id, const std::string* state);
  /// End of input without checkpoints: writes and commits everything.
  status finish();

 private:
  struct impl;
  explicit writer(std::unique_ptr<impl> self);
  std::unique_ptr<impl> self_;
};

/// Start-up checks (see `job_graph::node::check`), bounded by 10 s each:
/// the broker answers and the topic exists; for an exactly-once sink, the
/// transaction timeout exceeds the checkpoint interval and is at most the
/// broker's `transaction.max.timeout.ms`.
status check_source(const source_options& options, const job_options& job);
status check_sink(const sink_options& options, const job_options& job);

}  // namespace stream::kafka::detail
