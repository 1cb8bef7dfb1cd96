#pragma once

// unique_ptr for librdkafka objects, each with its own destroy function:
// `owned<rd_kafka_queue_t, rd_kafka_queue_destroy>`. Header-only, shared by
// libstream's connectors, the Kafka tests' client, the load generator and
// the Kafka benchmark.

#include <librdkafka/rdkafka.h>

#include <memory>

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

}  // namespace stream::kafka
