#include "kafka_client.hpp"

#include <array>
#include <cstdio>
#include <map>
#include <thread>
#include <utility>

#include "kafka/owned.hpp"

namespace kafka_load {
namespace {

using stream::kafka::conf_ptr;
using stream::kafka::event_ptr;
using stream::kafka::metadata_ptr;
using stream::kafka::new_topic_ptr;
using stream::kafka::options_ptr;
using stream::kafka::queue_ptr;
using stream::kafka::topic_ptr;

int timeout_ms(std::chrono::milliseconds d) {
  return static_cast<int>(d.count());
}

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
  auto& stats = *static_cast<delivery_stats*>(opaque);
  if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    ++stats.delivered;
    return;
  }
  if (stats.failed++ == 0) stats.first_error = rd_kafka_err2str(message->err);
}

// librdkafka logs from its own threads; stderr writes are atomic per call.
void on_log(const rd_kafka_t*, int level, const char* facility,
            const char* text) {
  std::fprintf(stderr, "kafka_load: librdkafka %s (level %d): %s\n", facility,
               level, text);
}

/// What the broker's metadata says about one topic.
struct topic_state {
  bool exists = false;
  int partitions = 0;
  int with_leader = 0;  ///< Partitions that have a leader, ready to write.
};

topic_state describe(rd_kafka_t* rk, const std::string& brokers,
                     const std::string& topic) {
  // A metadata request for this topic alone; the producer does not
  // auto-create topics (allow.auto.create.topics=false), so asking is safe.
  topic_ptr handle{rd_kafka_topic_new(rk, topic.c_str(), nullptr)};
  const rd_kafka_metadata_t* raw = nullptr;
  auto err =
      rd_kafka_metadata(rk, 0, handle.get(), &raw, timeout_ms(request_timeout));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    throw failure{"cannot reach the Kafka broker at " + brokers + " within " +
                  std::to_string(request_timeout.count() / 1000) + " s (" +
                  rd_kafka_err2str(err) + ")"};
  metadata_ptr md{raw};
  for (int t = 0; t < md->topic_cnt; ++t) {
    const auto& entry = md->topics[t];
    if (topic != entry.topic) continue;
    if (entry.err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) return {};
    if (entry.err != RD_KAFKA_RESP_ERR_NO_ERROR)
      throw failure{"metadata of topic '" + topic +
                    "': " + rd_kafka_err2str(entry.err)};
    topic_state state{true, entry.partition_cnt, 0};
    for (int p = 0; p < entry.partition_cnt; ++p)
      if (entry.partitions[p].leader >= 0) ++state.with_leader;
    return state;
  }
  return {};
}

void create(rd_kafka_t* rk, const std::string& topic, int partitions) {
  std::array<char, 512> error{};
  new_topic_ptr spec{rd_kafka_NewTopic_new(topic.c_str(), partitions, 1,
                                           error.data(), error.size())};
  if (!spec)
    throw failure{"cannot create topic '" + topic + "': " + error.data()};
  options_ptr options{
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS)};
  rd_kafka_AdminOptions_set_request_timeout(
      options.get(), timeout_ms(request_timeout), error.data(), error.size());
  rd_kafka_AdminOptions_set_operation_timeout(
      options.get(), timeout_ms(request_timeout), error.data(), error.size());
  queue_ptr queue{rd_kafka_queue_new(rk)};
  auto* raw_spec = spec.get();
  rd_kafka_CreateTopics(rk, &raw_spec, 1, options.get(), queue.get());
  // The request times out on its own after request_timeout; the extra
  // second only covers the hand-over of the result.
  event_ptr event{
      rd_kafka_queue_poll(queue.get(), timeout_ms(request_timeout) + 1000)};
  if (!event)
    throw failure{"creating topic '" + topic + "' got no answer within " +
                  std::to_string(request_timeout.count() / 1000) + " s"};
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR)
    throw failure{"cannot create topic '" + topic +
                  "': " + rd_kafka_event_error_string(event.get())};
  std::size_t count = 0;
  const auto* const* results = rd_kafka_CreateTopics_result_topics(
      rd_kafka_event_CreateTopics_result(event.get()), &count);
  for (std::size_t i = 0; i < count; ++i) {
    auto err = rd_kafka_topic_result_error(results[i]);
    // Someone else creating it at the same moment is fine: the partition
    // count is checked afterwards.
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR &&
        err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
      throw failure{"cannot create topic '" + topic +
                    "': " + rd_kafka_topic_result_error_string(results[i])};
  }
}

}  // namespace

producer make_producer(const std::string& brokers, acks_mode acks,
                       delivery_stats& stats) {
  const bool all = acks == acks_mode::all;
  const std::map<std::string, std::string> settings{
      {"bootstrap.servers", brokers},
      {"client.id", "kafka_load"},
      {"acks", all ? "all" : "1"},
      {"enable.idempotence", all ? "true" : "false"},
      {"partitioner", "murmur2_random"},
      {"linger.ms", "5"},
      {"batch.size", "262144"},
      // Let batch.size, not the message count, close a batch.
      {"batch.num.messages", "100000"},
      {"compression.type", "none"},
      // A broker that stops answering fails the messages after 30 s
      // instead of retrying forever.
      {"message.timeout.ms", "30000"},
      {"allow.auto.create.topics", "false"},
  };
  std::string error;
  auto rk = stream::kafka::new_client(
      RD_KAFKA_PRODUCER, settings, error, [&stats](rd_kafka_conf_t* conf) {
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rd_kafka_conf_set_opaque(conf, &stats);
        rd_kafka_conf_set_log_cb(conf, on_log);
      });
  if (!rk) throw failure{"librdkafka: " + error};
  return producer{rk.release()};
}

int prepare_topic(rd_kafka_t* rk, const std::string& brokers,
                  const std::string& topic, int partitions) {
  auto state = describe(rk, brokers, topic);
  if (partitions == 0) {
    if (!state.exists)
      throw failure{"topic '" + topic +
                    "' does not exist; create it or pass --partitions N"};
    return state.partitions;
  }
  if (!state.exists) create(rk, topic, partitions);
  // The controller creates the topic asynchronously: poll until every
  // partition has a leader, within request_timeout.
  const auto deadline = std::chrono::steady_clock::now() + request_timeout;
  for (;;) {
    if (state.exists && state.partitions != partitions)
      throw failure{"topic '" + topic + "' has " +
                    std::to_string(state.partitions) + " partitions, not the " +
                    std::to_string(partitions) + " that --partitions asks for"};
    if (state.exists && state.with_leader == partitions) return partitions;
    if (std::chrono::steady_clock::now() > deadline)
      throw failure{"topic '" + topic + "' shows " +
                    std::to_string(state.with_leader) + " of " +
                    std::to_string(partitions) +
                    " partitions with a leader after " +
                    std::to_string(request_timeout.count() / 1000) + " s"};
    std::this_thread::sleep_for(std::chrono::milliseconds{100});
    state = describe(rk, brokers, topic);
  }
}

}  // namespace kafka_load
