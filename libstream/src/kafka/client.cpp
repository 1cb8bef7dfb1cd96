#include "kafka/client.hpp"

#include <string_view>

#include "stream/detail/kafka_io.hpp"
#include "stream/options.hpp"
#include "stream/runtime/stage.hpp"

namespace stream::kafka {

namespace {

template <class E, std::size_t N>
result<E> parse_enum(std::string_view text, const char* what,
                     const std::pair<std::string_view, E> (&names)[N]) {
  std::string valid;
  for (const auto& [name, value] : names) {
    if (name == text) return value;
    valid += valid.empty() ? "" : ", ";
    valid += name;
  }
  return status{errc::invalid_argument, std::string{"unknown "} + what + " '" +
                                            std::string{text} +
                                            "' (valid: " + valid + ")"};
}

template <class E, std::size_t N>
std::string_view enum_name(E v,
                           const std::pair<std::string_view, E> (&names)[N]) {
  for (const auto& [name, value] : names)
    if (value == v) return name;
  return "?";
}

constexpr std::pair<std::string_view, start_from> start_names[] = {
    {"earliest", start_from::earliest},
    {"latest", start_from::latest},
    {"committed", start_from::committed},
    {"timestamp", start_from::timestamp}};
constexpr std::pair<std::string_view, bad_record_policy> policy_names[] = {
    {"skip", bad_record_policy::skip},
    {"dead-letter", bad_record_policy::dead_letter},
    {"fail", bad_record_policy::fail}};
constexpr std::pair<std::string_view, delivery> delivery_names[] = {
    {"at-least-once", delivery::at_least_once},
    {"exactly-once", delivery::exactly_once}};

}  // namespace

result<start_from> parse_start_from(std::string_view text) {
  return parse_enum(text, "Kafka start position", start_names);
}
result<bad_record_policy> parse_bad_record_policy(std::string_view text) {
  return parse_enum(text, "bad record policy", policy_names);
}
result<delivery> parse_delivery(std::string_view text) {
  return parse_enum(text, "delivery guarantee", delivery_names);
}
std::string_view to_string(start_from v) noexcept {
  return enum_name(v, start_names);
}
std::string_view to_string(bad_record_policy v) noexcept {
  return enum_name(v, policy_names);
}
std::string_view to_string(delivery v) noexcept {
  return enum_name(v, delivery_names);
}

}  // namespace stream::kafka

namespace stream::kafka::detail {

result<client> make_client(rd_kafka_type_t type,
                           const std::map<std::string, std::string>& settings,
                           const std::function<void(rd_kafka_conf_t*)>& extra) {
  std::string error;
  auto rk = new_client(type, settings, error, extra);
  if (!rk) return status{errc::invalid_config, "Kafka " + error};
  return rk;
}

std::string client_id(const runtime::stage_context& ctx) {
  return "stream-" + ctx.job_name + "-" + ctx.operator_name + "-" +
         std::to_string(ctx.subtask);
}

result<int> partition_count(rd_kafka_t* rk, const std::string& brokers,
                            const std::string& topic) {
  rd_kafka_topic_t* handle = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  if (!handle)
    return status{errc::invalid_config,
                  "invalid Kafka topic name '" + topic.substr(0, 300) + "'"};
  const rd_kafka_metadata_t* md = nullptr;
  auto err = rd_kafka_metadata(rk, 0, handle, &md, broker_timeout_ms);
  rd_kafka_topic_destroy(handle);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return status{errc::io_error, "cannot reach Kafka at " + brokers +
                                      " within " +
                                      std::to_string(broker_timeout_ms / 1000) +
                                      " s: " + rd_kafka_err2str(err)};
  status failed;
  int count = 0;
  if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    auto terr = md->topic_cnt == 1 ? md->topics[0].err
                                   : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    failed = {errc::not_found, "Kafka topic '" + topic + "' at " + brokers +
                                   ": " + rd_kafka_err2str(terr) +
                                   " (create it first)"};
  } else {
    count = md->topics[0].partition_cnt;
  }
  rd_kafka_metadata_destroy(md);
  if (!failed.ok()) return failed;
  return count;
}

std::string take_error(rd_kafka_error_t* error) {
  if (!error) return {};
  std::string text = rd_kafka_error_string(error);
  rd_kafka_error_destroy(error);
  return text;
}

}  // namespace stream::kafka::detail
