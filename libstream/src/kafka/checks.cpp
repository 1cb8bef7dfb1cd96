// Start-up checks of the Kafka connectors, run by the coordinator before any
// task is deployed.

#include <charconv>

#include "kafka/client.hpp"
#include "stream/detail/kafka_io.hpp"
#include "stream/options.hpp"

namespace stream::kafka::detail {

namespace {

/// A client for the checks, with the connector's own properties (security
/// settings) applied.
result<client> admin_client(
    const std::string& brokers,
    const std::map<std::string, std::string>& properties) {
  std::map<std::string, std::string> settings{
      {"bootstrap.servers", brokers},
      {"client.id", "stream-check"},
      {"allow.auto.create.topics", "false"}};
  for (const auto& [k, v] : properties) settings[k] = v;
  return make_client(RD_KAFKA_PRODUCER, settings);
}

status topic_exists(rd_kafka_t* rk, const std::string& brokers,
                    const std::string& topic) {
  auto count = partition_count(rk, brokers, topic);
  return count ? status{} : count.error();
}

/// A broker configuration value, read with DescribeConfigs from the broker
/// that answered the metadata request.
result<std::string> broker_config(rd_kafka_t* rk, const std::string& name) {
  const rd_kafka_metadata_t* md = nullptr;
  auto err = rd_kafka_metadata(rk, 0, nullptr, &md, broker_timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return status{errc::io_error, std::string{"cannot read metadata: "} +
                                      rd_kafka_err2str(err)};
  auto broker = std::to_string(md->orig_broker_id);
  rd_kafka_metadata_destroy(md);
  auto* resource =
      rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_BROKER, broker.c_str());
  auto* queue = rd_kafka_queue_new(rk);
  rd_kafka_DescribeConfigs(rk, &resource, 1, nullptr, queue);
  auto* event = rd_kafka_queue_poll(queue, broker_timeout_ms);
  result<std::string> out =
      status{errc::not_found, "broker " + broker + " did not report " + name};
  if (!event) {
    out = status{errc::io_error, "no answer to DescribeConfigs"};
  } else if (rd_kafka_event_error(event)) {
    out = status{errc::io_error, rd_kafka_event_error_string(event)};
  } else {
    std::size_t n = 0;
    const auto* found = rd_kafka_DescribeConfigs_result_resources(
        rd_kafka_event_DescribeConfigs_result(event), &n);
    for (std::size_t r = 0; r < n; ++r) {
      std::size_t count = 0;
      const auto* entries = rd_kafka_ConfigResource_configs(found[r], &count);
      for (std::size_t i = 0; i < count; ++i) {
        const char* value = rd_kafka_ConfigEntry_value(entries[i]);
        if (name == rd_kafka_ConfigEntry_name(entries[i]) && value)
          out = std::string{value};
      }
    }
  }
  if (event) rd_kafka_event_destroy(event);
  rd_kafka_queue_destroy(queue);
  rd_kafka_ConfigResource_destroy(resource);
  return out;
}

/// What can be refused without asking the broker.
status check_sink_config(const sink_options& options, const job_options& job) {
  auto timeout = options.transaction_timeout.count();
  auto interval = job.checkpoint_interval.count();
  if (interval == 0)
    return {errc::invalid_config,
            "an exactly-once Kafka sink commits at checkpoints: set a "
            "checkpoint interval (--checkpoint-interval), or write at least "
            "once"};
  if (timeout <= interval)
    return {errc::invalid_config,
            "the transaction timeout (" + std::to_string(timeout) +
                " ms) must exceed the checkpoint interval (" +
                std::to_string(interval) +
                " ms): a transaction stays open from one checkpoint to the "
                "next, and the broker would abort it"};
  return {};
}

status check_transaction_timeout(rd_kafka_t* rk, const sink_options& options) {
  auto timeout = options.transaction_timeout.count();
  auto max = broker_config(rk, "transaction.max.timeout.ms");
  if (!max)
    return {max.error().code(),
            "cannot read the broker's transaction.max.timeout.ms at " +
                options.brokers + ": " + max.error().message()};
  long long limit = 0;
  auto [end, ec] =
      std::from_chars(max->data(), max->data() + max->size(), limit);
  if (ec != std::errc{})
    return {errc::io_error,
            "the broker's transaction.max.timeout.ms is not a number: " + *max};
  if (timeout > limit)
    return {errc::invalid_config,
            "the transaction timeout (" + std::to_string(timeout) +
                " ms) exceeds the broker's transaction.max.timeout.ms (" +
                *max +
                " ms): the broker would refuse every transaction; lower the "
                "transaction timeout or raise the broker's limit"};
  return {};
}

}  // namespace

status check_source(const source_options& options, const job_options&) {
  if (options.topic.empty())
    return {errc::invalid_config, "Kafka source: no topic given"};
  if (options.rate < 0)
    return {errc::invalid_config, "Kafka source: the rate must be >= 0"};
  if (options.prefetch < min_prefetch)
    return {errc::invalid_config,
            "Kafka source: prefetch " + std::to_string(options.prefetch) +
                " is too small: a subtask keeps at least " +
                std::to_string(min_prefetch) + " messages fetched ahead"};
  if (options.bad_records == bad_record_policy::dead_letter &&
      options.dead_letter_topic.empty())
    return {errc::invalid_config,
            "Kafka source: bad records go to a dead-letter topic, but none "
            "is given"};
  auto rk = admin_client(options.brokers, options.properties);
  if (!rk) return rk.error();
  if (auto st = topic_exists(rk->get(), options.brokers, options.topic);
      !st.ok())
    return st;
  if (options.bad_records == bad_record_policy::dead_letter)
    return topic_exists(rk->get(), options.brokers, options.dead_letter_topic);
  return {};
}

status check_sink(const sink_options& options, const job_options& job) {
  if (options.topic.empty())
    return {errc::invalid_config, "Kafka sink: no topic given"};
  bool exactly_once = options.guarantee == delivery::exactly_once;
  if (exactly_once) {
    if (auto st = check_sink_config(options, job); !st.ok()) return st;
  }
  auto rk = admin_client(options.brokers, options.properties);
  if (!rk) return rk.error();
  if (auto st = topic_exists(rk->get(), options.brokers, options.topic);
      !st.ok())
    return st;
  if (!exactly_once) return {};
  return check_transaction_timeout(rk->get(), options);
}

}  // namespace stream::kafka::detail
