#include "kafka_support.hpp"

#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <thread>

#include "kafka/owned.hpp"

namespace stream::test::kafka {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

// Every single request to the broker waits at most this long. Generous:
// every wait ends as soon as its condition holds, and a broker that has
// just started, on a machine busy with a build, took over 10 s to give the
// partitions of a new topic their leaders.
constexpr milliseconds request_timeout{60'000};
constexpr milliseconds delivery_timeout{30'000};

using stream::kafka::client;
using stream::kafka::conf_ptr;
using stream::kafka::event_ptr;
using stream::kafka::message_ptr;
using stream::kafka::metadata_ptr;
using stream::kafka::new_topic_ptr;
using stream::kafka::options_ptr;
using stream::kafka::owned;
using stream::kafka::partition_list;
using stream::kafka::queue_ptr;
using stream::kafka::topic_ptr;
using config_resource_ptr =
    owned<rd_kafka_ConfigResource_t, rd_kafka_ConfigResource_destroy>;

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error{"kafka test support: " + what};
}

int to_ms(milliseconds d) { return static_cast<int>(d.count()); }

std::string seconds_text(milliseconds d) {
  return std::to_string(d.count() / 1000) + " s";
}

/// Delivery reports of one produce() call; its producer's only callback,
/// run on the calling thread inside rd_kafka_flush.
struct delivery_stats {
  std::size_t failed = 0;
  std::string first_error;
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto& stats = *static_cast<delivery_stats*>(opaque);
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && stats.failed++ == 0)
    stats.first_error = rd_kafka_err2str(m->err);
}

client make_client(rd_kafka_type_t type,
                   const std::map<std::string, std::string>& settings,
                   delivery_stats* stats = nullptr) {
  std::string error;
  auto rk = stream::kafka::new_client(
      type, settings, error, [stats](rd_kafka_conf_t* conf) {
        if (stats == nullptr) return;
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rd_kafka_conf_set_opaque(conf, stats);
      });
  if (!rk) fail("librdkafka: " + error);
  return rk;
}

client make_consumer(const std::string& brokers, bool committed_only) {
  return make_client(
      RD_KAFKA_CONSUMER,
      {{"bootstrap.servers", brokers},
       // Partitions are assigned, not subscribed: the group is never joined
       // and nothing is committed.
       {"group.id", "kafka-test-support-" + std::to_string(::getpid())},
       {"enable.auto.commit", "false"},
       {"enable.auto.offset.store", "false"},
       {"enable.partition.eof", "true"},
       {"auto.offset.reset", "earliest"},
       {"allow.auto.create.topics", "false"},
       {"isolation.level",
        committed_only ? "read_committed" : "read_uncommitted"}});
}

/// The metadata of `topic` alone (nullptr when `topic` is empty: brokers
/// only). Throws when no broker answers within request_timeout.
metadata_ptr fetch_metadata(rd_kafka_t* rk, const std::string& brokers,
                            const std::string& topic) {
  topic_ptr handle;
  if (!topic.empty()) handle.reset(rd_kafka_topic_new(rk, topic.c_str(), {}));
  const rd_kafka_metadata_t* raw = nullptr;
  auto err =
      rd_kafka_metadata(rk, 0, handle.get(), &raw, to_ms(request_timeout));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    fail("cannot reach the Kafka broker at " + brokers + " within " +
         seconds_text(request_timeout) + " (" + rd_kafka_err2str(err) + ")");
  return metadata_ptr{raw};
}

/// Partitions of `topic` and how many of them have a leader; -1 partitions
/// when the topic does not exist.
std::pair<int, int> partition_state(rd_kafka_t* rk, const std::string& brokers,
                                    const std::string& topic) {
  auto md = fetch_metadata(rk, brokers, topic);
  for (int t = 0; t < md->topic_cnt; ++t) {
    const auto& entry = md->topics[t];
    if (topic != entry.topic) continue;
    if (entry.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) break;
    if (entry.err != RD_KAFKA_RESP_ERR_NO_ERROR)
      fail("metadata of topic '" + topic + "': " + rd_kafka_err2str(entry.err));
    int with_leader = 0;
    for (int p = 0; p < entry.partition_cnt; ++p)
      if (entry.partitions[p].leader >= 0) ++with_leader;
    return {entry.partition_cnt, with_leader};
  }
  return {-1, 0};
}

int partition_count(rd_kafka_t* rk, const std::string& brokers,
                    const std::string& topic) {
  auto count = partition_state(rk, brokers, topic).first;
  if (count < 0) fail("topic '" + topic + "' does not exist");
  return count;
}

/// Waits for the admin result event on `queue`; the request itself times
/// out after request_timeout, the extra second covers the hand-over.
event_ptr admin_result(rd_kafka_queue_t* queue, const std::string& what) {
  event_ptr event{rd_kafka_queue_poll(queue, to_ms(request_timeout) + 1000)};
  if (!event)
    fail(what + ": no answer within " + seconds_text(request_timeout));
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR)
    fail(what + ": " + rd_kafka_event_error_string(event.get()));
  return event;
}

options_ptr admin_options(rd_kafka_t* rk, rd_kafka_admin_op_t op) {
  options_ptr options{rd_kafka_AdminOptions_new(rk, op)};
  std::array<char, 512> error{};
  rd_kafka_AdminOptions_set_request_timeout(
      options.get(), to_ms(request_timeout), error.data(), error.size());
  return options;
}

message to_message(const rd_kafka_message_t& m) {
  message out;
  if (m.key != nullptr)
    out.key.assign(static_cast<const char*>(m.key), m.key_len);
  if (m.payload != nullptr)
    out.value.assign(static_cast<const char*>(m.payload), m.len);
  out.partition = m.partition;
  out.offset = m.offset;
  out.timestamp_ms = rd_kafka_message_timestamp(&m, nullptr);
  rd_kafka_headers_t* headers = nullptr;
  // The headers belong to the message; rd_kafka_message_headers only
  // parses them.
  if (rd_kafka_message_headers(&m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    std::size_t size = 0;
    for (std::size_t i = 0;
         rd_kafka_header_get_all(headers, i, &name, &value, &size) ==
         RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i)
      out.headers[name] =
          value != nullptr ? std::string{static_cast<const char*>(value), size}
                           : std::string{};
  }
  return out;
}

/// Assigns every partition of `topic` from its beginning; returns the
/// partition count.
int assign_all(rd_kafka_t* rk, const std::string& brokers,
               const std::string& topic) {
  int partitions = partition_count(rk, brokers, topic);
  partition_list list{rd_kafka_topic_partition_list_new(partitions)};
  for (int p = 0; p < partitions; ++p)
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
  if (auto err = rd_kafka_assign(rk, list.get()); err)
    fail("cannot assign the partitions of '" + topic +
         "': " + rd_kafka_err2str(err));
  return partitions;
}

/// The low and high watermark of one partition. Retries while the
/// partition has no ready leader: for a moment after a topic is created
/// the metadata names a leader that still answers "not leader".
std::pair<std::int64_t, std::int64_t> watermarks(rd_kafka_t* rk,
                                                 const std::string& topic,
                                                 std::int32_t partition) {
  const auto deadline = steady_clock::now() + request_timeout;
  for (;;) {
    std::int64_t low = 0;
    std::int64_t high = 0;
    auto err = rd_kafka_query_watermark_offsets(
        rk, topic.c_str(), partition, &low, &high, to_ms(request_timeout));
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return {low, high};
    const bool transient = err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
                           err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
                           err == RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE ||
                           err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    if (!transient || steady_clock::now() > deadline)
      fail("end offsets of '" + topic + "' [" + std::to_string(partition) +
           "]: " + rd_kafka_err2str(err));
    std::this_thread::sleep_for(milliseconds{50});
  }
}

/// Where read_all stands in one partition.
struct partition_progress {
  std::int64_t end = 0;      ///< The end offset at call time.
  std::int64_t reached = 0;  ///< The next offset to read.
  bool done = false;
};

/// Every partition's offsets at call time: from the low watermark to the
/// high watermark. `rk` must read uncommitted: ListOffsets answers with
/// the consumer's isolation level, and under read_committed its "high
/// watermark" is the last stable offset, which stays behind a transaction
/// whose commit markers are not written yet.
std::vector<partition_progress> end_positions(rd_kafka_t* rk,
                                              const std::string& brokers,
                                              const std::string& topic) {
  std::vector<partition_progress> progress(partition_count(rk, brokers, topic));
  for (std::size_t p = 0; p < progress.size(); ++p) {
    auto [low, high] = watermarks(rk, topic, static_cast<std::int32_t>(p));
    progress[p] = {high, low, high <= low};
  }
  return progress;
}

[[noreturn]] void fail_read_all(const std::string& topic, milliseconds timeout,
                                std::size_t got,
                                const std::vector<partition_progress>& progress,
                                const std::string& last_error,
                                bool committed_only) {
  std::string missing;
  for (std::size_t p = 0; p < progress.size(); ++p)
    if (!progress[p].done)
      missing += (missing.empty() ? "" : ", ") + std::to_string(p) +
                 " (at offset " + std::to_string(progress[p].reached) + " of " +
                 std::to_string(progress[p].end) + ")";
  fail("read_all('" + topic + "') timed out after " + seconds_text(timeout) +
       " with " + std::to_string(got) + " messages; still missing data from " +
       "partition " + missing +
       (committed_only ? " (read_committed: is a transaction still open?)"
                       : "") +
       (last_error.empty() ? "" : "; last consumer error: " + last_error));
}

}  // namespace

std::string broker() {
  const char* env = std::getenv("STREAM_TEST_KAFKA");
  if (env == nullptr || *env == '\0')
    fail(
        "STREAM_TEST_KAFKA is not set: run the Kafka tests through ctest, "
        "whose fixture starts tools/kafka-broker, or start one and set "
        "STREAM_TEST_KAFKA=host:port");
  static std::atomic<bool> reached{false};
  if (!reached) {
    auto rk = make_client(RD_KAFKA_PRODUCER, {{"bootstrap.servers", env}});
    fetch_metadata(rk.get(), env, {});
    reached = true;
  }
  return env;
}

std::string unique_topic(const std::string& prefix) {
  static std::atomic<unsigned> counter{0};
  return prefix + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter++);
}

void create_topic(const std::string& brokers, const std::string& topic,
                  int partitions,
                  const std::map<std::string, std::string>& configs) {
  auto rk = make_client(RD_KAFKA_PRODUCER, {{"bootstrap.servers", brokers}});
  std::array<char, 512> error{};
  new_topic_ptr spec{rd_kafka_NewTopic_new(topic.c_str(), partitions, 1,
                                           error.data(), error.size())};
  if (!spec) fail("cannot create topic '" + topic + "': " + error.data());
  for (const auto& [name, value] : configs)
    if (auto err = rd_kafka_NewTopic_set_config(spec.get(), name.c_str(),
                                                value.c_str());
        err)
      fail("topic config " + name + "=" + value + ": " + rd_kafka_err2str(err));
  auto options = admin_options(rk.get(), RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(
      options.get(), to_ms(request_timeout), error.data(), error.size());
  queue_ptr queue{rd_kafka_queue_new(rk.get())};
  auto* raw_spec = spec.get();
  rd_kafka_CreateTopics(rk.get(), &raw_spec, 1, options.get(), queue.get());
  auto event = admin_result(queue.get(), "creating topic '" + topic + "'");
  std::size_t count = 0;
  const auto* const* results = rd_kafka_CreateTopics_result_topics(
      rd_kafka_event_CreateTopics_result(event.get()), &count);
  for (std::size_t i = 0; i < count; ++i)
    if (rd_kafka_topic_result_error(results[i]) != RD_KAFKA_RESP_ERR_NO_ERROR)
      fail("cannot create topic '" + topic +
           "': " + rd_kafka_topic_result_error_string(results[i]));
  // The controller creates the partitions asynchronously.
  const auto deadline = steady_clock::now() + request_timeout;
  for (;;) {
    auto [count_now, with_leader] = partition_state(rk.get(), brokers, topic);
    if (count_now == partitions && with_leader == partitions) break;
    if (steady_clock::now() > deadline)
      fail("topic '" + topic + "' shows " + std::to_string(with_leader) +
           " of " + std::to_string(partitions) +
           " partitions with a leader after " + seconds_text(request_timeout));
    std::this_thread::sleep_for(milliseconds{50});
  }
  // Ready when every leader answers, so that a test can read at once.
  end_positions(make_consumer(brokers, false).get(), brokers, topic);
}

void produce(const std::string& brokers, const std::string& topic,
             const std::vector<std::pair<std::string, std::string>>& key_values,
             std::int32_t partition) {
  delivery_stats stats;
  auto rk = make_client(
      RD_KAFKA_PRODUCER,
      {{"bootstrap.servers", brokers},
       {"acks", "all"},
       {"enable.idempotence", "true"},
       {"partitioner", "murmur2_random"},
       {"linger.ms", "5"},
       {"message.timeout.ms", std::to_string(delivery_timeout.count())}},
      &stats);
  const auto deadline = steady_clock::now() + delivery_timeout;
  for (const auto& [key, value] : key_values) {
    for (;;) {
      auto err = rd_kafka_producev(
          rk.get(), RD_KAFKA_V_TOPIC(topic.c_str()),
          RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA
                                             : partition),
          RD_KAFKA_V_KEY(key.data(), key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL ||
          steady_clock::now() > deadline)
        fail("cannot produce to '" + topic + "': " + rd_kafka_err2str(err));
      rd_kafka_poll(rk.get(), 10);
    }
  }
  rd_kafka_flush(rk.get(), to_ms(delivery_timeout));
  if (stats.failed > 0)
    fail(std::to_string(stats.failed) + " of " +
         std::to_string(key_values.size()) + " messages to '" + topic +
         "' were not delivered: " + stats.first_error);
  if (auto left = rd_kafka_outq_len(rk.get()); left > 0)
    fail(std::to_string(left) + " messages to '" + topic +
         "' still undelivered after " + seconds_text(delivery_timeout));
}

std::vector<message> read_all(const std::string& brokers,
                              const std::string& topic, bool committed_only,
                              milliseconds timeout) {
  auto progress =
      end_positions(make_consumer(brokers, false).get(), brokers, topic);
  auto rk = make_consumer(brokers, committed_only);
  assign_all(rk.get(), brokers, topic);
  std::vector<message> out;
  std::string last_error;
  const auto deadline = steady_clock::now() + timeout;
  auto pending = [&] {
    for (const auto& p : progress)
      if (!p.done) return true;
    return false;
  };
  while (pending()) {
    if (steady_clock::now() > deadline)
      fail_read_all(topic, timeout, out.size(), progress, last_error,
                    committed_only);
    message_ptr m{rd_kafka_consumer_poll(rk.get(), 100)};
    if (!m) continue;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR &&
        m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      last_error = rd_kafka_message_errstr(m.get());
      continue;
    }
    auto& p = progress.at(static_cast<std::size_t>(m->partition));
    // Transaction markers and aborted records occupy offsets but are never
    // delivered: only the EOF's offset (the fetch position) passes them.
    // Under read_committed the EOF comes at the last stable offset, so an
    // EOF below `end` means a transaction is still undecided: keep reading.
    // Records written after the call are left out.
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->offset < p.end)
      out.push_back(to_message(*m));
    p.reached = std::max(p.reached, m->err != RD_KAFKA_RESP_ERR_NO_ERROR
                                        ? m->offset
                                        : m->offset + 1);
    if (p.reached >= p.end) p.done = true;
  }
  return out;
}

std::vector<message> read_at_least(const std::string& brokers,
                                   const std::string& topic, std::size_t count,
                                   milliseconds timeout, bool committed_only) {
  auto rk = make_consumer(brokers, committed_only);
  assign_all(rk.get(), brokers, topic);
  std::vector<message> out;
  const auto deadline = steady_clock::now() + timeout;
  while (out.size() < count && steady_clock::now() < deadline) {
    message_ptr m{rd_kafka_consumer_poll(rk.get(), 100)};
    if (m && m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
      out.push_back(to_message(*m));
  }
  return out;
}

std::vector<std::int64_t> end_offsets(const std::string& brokers,
                                      const std::string& topic) {
  auto rk = make_consumer(brokers, false);
  auto progress = end_positions(rk.get(), brokers, topic);
  std::vector<std::int64_t> out;
  for (const auto& p : progress) out.push_back(p.end);
  return out;
}

std::string broker_config(const std::string& brokers, const std::string& name) {
  auto rk = make_client(RD_KAFKA_PRODUCER, {{"bootstrap.servers", brokers}});
  auto md = fetch_metadata(rk.get(), brokers, {});
  if (md->broker_cnt == 0)
    fail("the metadata of " + brokers + " lists no broker");
  const auto id = std::to_string(md->brokers[0].id);
  config_resource_ptr resource{
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_BROKER, id.c_str())};
  auto options = admin_options(rk.get(), RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
  queue_ptr queue{rd_kafka_queue_new(rk.get())};
  auto* raw_resource = resource.get();
  rd_kafka_DescribeConfigs(rk.get(), &raw_resource, 1, options.get(),
                           queue.get());
  const auto what = "configuration of broker " + id;
  auto event = admin_result(queue.get(), "describing the " + what);
  std::size_t count = 0;
  const auto* const* resources = rd_kafka_DescribeConfigs_result_resources(
      rd_kafka_event_DescribeConfigs_result(event.get()), &count);
  for (std::size_t r = 0; r < count; ++r) {
    if (rd_kafka_ConfigResource_error(resources[r]))
      fail(what + ": " + rd_kafka_ConfigResource_error_string(resources[r]));
    std::size_t entries = 0;
    const auto* const* configs =
        rd_kafka_ConfigResource_configs(resources[r], &entries);
    for (std::size_t e = 0; e < entries; ++e) {
      if (name != rd_kafka_ConfigEntry_name(configs[e])) continue;
      const char* value = rd_kafka_ConfigEntry_value(configs[e]);
      if (value == nullptr) fail(what + ": " + name + " has no value");
      return value;
    }
  }
  fail(what + " has no entry '" + name + "'");
}

void commit_offsets(const std::string& brokers, const std::string& group,
                    const std::string& topic,
                    const std::vector<std::int64_t>& offsets) {
  auto rk = make_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", brokers},
                                            {"group.id", group},
                                            {"enable.auto.commit", "false"}});
  auto* list =
      rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size()));
  for (std::size_t p = 0; p < offsets.size(); ++p)
    rd_kafka_topic_partition_list_add(list, topic.c_str(),
                                      static_cast<std::int32_t>(p))
        ->offset = offsets[p];
  auto err = rd_kafka_commit(rk.get(), list, 0);
  rd_kafka_topic_partition_list_destroy(list);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    fail("committing offsets of group " + group + ": " + rd_kafka_err2str(err));
  rd_kafka_consumer_close(rk.get());
}

void delete_records(const std::string& brokers, const std::string& topic,
                    std::int32_t partition, std::int64_t offset) {
  auto rk = make_client(RD_KAFKA_PRODUCER, {{"bootstrap.servers", brokers}});
  partition_list offsets{rd_kafka_topic_partition_list_new(1)};
  rd_kafka_topic_partition_list_add(offsets.get(), topic.c_str(), partition)
      ->offset = offset;
  auto* request = rd_kafka_DeleteRecords_new(offsets.get());
  auto options = admin_options(rk.get(), RD_KAFKA_ADMIN_OP_DELETERECORDS);
  queue_ptr queue{rd_kafka_queue_new(rk.get())};
  rd_kafka_DeleteRecords(rk.get(), &request, 1, options.get(), queue.get());
  rd_kafka_DeleteRecords_destroy(request);
  auto event = admin_result(queue.get(), "deleting records of " + topic);
  const auto* result = rd_kafka_DeleteRecords_result_offsets(
      rd_kafka_event_DeleteRecords_result(event.get()));
  if (result->cnt != 1 || result->elems[0].err != RD_KAFKA_RESP_ERR_NO_ERROR)
    fail("deleting records of " + topic + ": " +
         rd_kafka_err2str(result->cnt ? result->elems[0].err
                                      : RD_KAFKA_RESP_ERR__FAIL));
}

}  // namespace stream::test::kafka
