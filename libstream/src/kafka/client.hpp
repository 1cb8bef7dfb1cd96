#pragma once

// librdkafka handles and the few calls every Kafka piece needs. Private to
// libstream.

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "kafka/owned.hpp"
#include "stream/status.hpp"

namespace stream::runtime {
struct stage_context;
}  // namespace stream::runtime

namespace stream::kafka::detail {

/// Every blocking call to the broker waits at most this long.
inline constexpr int broker_timeout_ms = 10'000;

/// The smallest `source_options::prefetch` accepted.
inline constexpr std::size_t min_prefetch = 1'000;

/// Creates a consumer or producer from `settings` (applied in order, later
/// ones win); `extra` may set callbacks on the configuration. Errors name
/// the property that librdkafka refused.
result<client> make_client(
    rd_kafka_type_t type, const std::map<std::string, std::string>& settings,
    const std::function<void(rd_kafka_conf_t*)>& extra = {});

/// "stream-<job>-<operator>-<subtask>": the client id brokers log.
std::string client_id(const runtime::stage_context& ctx);

/// The number of partitions of `topic`; errors say when the broker does
/// not answer or the topic does not exist.
result<int> partition_count(rd_kafka_t* rk, const std::string& brokers,
                            const std::string& topic);

/// The message of `error` (which this destroys); empty for null.
std::string take_error(rd_kafka_error_t* error);

}  // namespace stream::kafka::detail
