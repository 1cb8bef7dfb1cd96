#pragma once

// unique_ptr for librdkafka objects, each with its own destroy function
// (`owned<rd_kafka_queue_t, rd_kafka_queue_destroy>`), and client creation
// from a property list. Header-only, shared by libstream's connectors, the
// Kafka tests' client, the load generator and the Kafka benchmark.

#include <librdkafka/rdkafka.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

namespace stream::kafka {

template <auto destroy>
struct destroyer {
  template <class T>
  void operator()(T* p) const {
    destroy(p);
  }
};

template <class T, auto destroy>
using owned = std::unique_ptr<T, destroyer<destroy>>;

using client = owned<rd_kafka_t, rd_kafka_destroy>;
using conf_ptr = owned<rd_kafka_conf_t, rd_kafka_conf_destroy>;
using metadata_ptr =
    owned<const rd_kafka_metadata_t, rd_kafka_metadata_destroy>;
using topic_ptr = owned<rd_kafka_topic_t, rd_kafka_topic_destroy>;
using partition_list = owned<rd_kafka_topic_partition_list_t,
                             rd_kafka_topic_partition_list_destroy>;
using message_ptr = owned<rd_kafka_message_t, rd_kafka_message_destroy>;
using options_ptr =
    owned<rd_kafka_AdminOptions_t, rd_kafka_AdminOptions_destroy>;
using queue_ptr = owned<rd_kafka_queue_t, rd_kafka_queue_destroy>;
using event_ptr = owned<rd_kafka_event_t, rd_kafka_event_destroy>;
using new_topic_ptr = owned<rd_kafka_NewTopic_t, rd_kafka_NewTopic_destroy>;

/// Creates a consumer or producer from `settings`; `extra` may set
/// callbacks on the configuration. Null with `error` set ("property k=v:
/// reason" or why the client could not be made) when librdkafka refuses.
inline client new_client(
    rd_kafka_type_t type, const std::map<std::string, std::string>& settings,
    std::string& error,
    const std::function<void(rd_kafka_conf_t*)>& extra = {}) {
  conf_ptr conf{rd_kafka_conf_new()};
  char reason[512];
  for (const auto& [key, value] : settings) {
    if (rd_kafka_conf_set(conf.get(), key.c_str(), value.c_str(), reason,
                          sizeof reason) != RD_KAFKA_CONF_OK) {
      error = "property " + key + "=" + value + ": " + reason;
      return nullptr;
    }
  }
  if (extra) extra(conf.get());
  client rk{rd_kafka_new(type, conf.get(), reason, sizeof reason)};
  if (!rk) {
    error = std::string{"cannot create a client: "} + reason;
    return nullptr;
  }
  conf.release();  // rd_kafka_new owns it now
  return rk;
}

}  // namespace stream::kafka
