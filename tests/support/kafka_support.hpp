#pragma once

// A small librdkafka client for the Kafka tests: the broker under test,
// topics, producing, reading back. Every function waits a bounded time and
// throws std::runtime_error with a message saying what failed, so a test
// body can call them directly. Each call makes its own short-lived client,
// so calls may run concurrently from several threads.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace stream::test::kafka {

/// The broker under test: $STREAM_TEST_KAFKA ("host:port"). Throws when it
/// is unset (saying how to get one) or when nothing answers a metadata
/// request within 10 s. The first successful check is remembered.
std::string broker();

/// A topic name unique to this process and call: prefix-pid-counter.
std::string unique_topic(const std::string& prefix);

/// Creates `topic` with `partitions` partitions (replication factor 1) and
/// the topic-level `configs`, then waits until the metadata shows every
/// partition with a leader (10 s). Throws when the topic exists already.
void create_topic(const std::string& brokers, const std::string& topic,
                  int partitions,
                  const std::map<std::string, std::string>& configs = {});

/// One record read back.
struct message {
  std::string key;
  std::string value;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::int64_t timestamp_ms = 0;
  std::map<std::string, std::string> headers;
};

/// Produces `key_values` in order with acks=all and idempotence, and waits
/// for every delivery (30 s). `partition` -1 partitions by key
/// (murmur2_random, as the Java client), otherwise writes to that one.
void produce(const std::string& brokers, const std::string& topic,
             const std::vector<std::pair<std::string, std::string>>& key_values,
             std::int32_t partition = -1);

/// Reads `topic` from the beginning of every partition (assigned, no
/// group, no commits) until every partition is read up to its high
/// watermark as it was at call time. With `committed_only`
/// (isolation.level read_committed) aborted records and transaction
/// markers are skipped, and a transaction still undecided at call time is
/// waited for: its commit markers are written after commit_transaction
/// returns, so reading right after a commit sees the commit. Records
/// written after the call are left out. Throws after `timeout`, naming how
/// many messages arrived and which partitions still missed data (with
/// read_committed, an open transaction keeps a partition there).
std::vector<message> read_all(
    const std::string& brokers, const std::string& topic,
    bool committed_only = true,
    std::chrono::milliseconds timeout = std::chrono::seconds{30});

/// Reads `topic` from the beginning until at least `count` messages arrived
/// or `timeout` passed, and returns what arrived (never throws for too
/// few: the test asserts on the count).
std::vector<message> read_at_least(const std::string& brokers,
                                   const std::string& topic, std::size_t count,
                                   std::chrono::milliseconds timeout,
                                   bool committed_only = true);

/// The high watermark of every partition of `topic`, by partition.
std::vector<std::int64_t> end_offsets(const std::string& brokers,
                                      const std::string& topic);

/// Commits `offsets` (by partition) of `topic` for consumer group `group`,
/// synchronously (10 s), as a consumer of that group would.
void commit_offsets(const std::string& brokers, const std::string& group,
                    const std::string& topic,
                    const std::vector<std::int64_t>& offsets);

/// Deletes the records of partition `partition` of `topic` before
/// `offset` (what retention does), synchronously (10 s).
void delete_records(const std::string& brokers, const std::string& topic,
                    std::int32_t partition, std::int64_t offset);

/// The broker's value of configuration `name` (DescribeConfigs on the
/// first broker in the metadata), e.g. "transaction.max.timeout.ms".
std::string broker_config(const std::string& brokers, const std::string& name);

}  // namespace stream::test::kafka
