// The seed's example on Kafka: page views from a topic ("user,page,ts"
// lines, key = user), keyed by user, 10-second tumbling event-time windows,
// a process window function, one summary per user and window into another
// topic, exactly once:
//
//   tools/kafka-broker start
//   tools/kafka-broker topics --create --topic page-views --partitions 4
//   tools/kafka-broker topics --create --topic views-per-user --partitions 4
//   build/tools/kafka_load/kafka_load --topic page-views --rate 5000
//   build/examples/windowed_process_kafka --checkpoint-interval 2s
//       --checkpoint-dir /tmp/wpk     (one line)
//
// Event time is tracked per partition (bounded out-of-orderness of 2 s,
// partitions without views for --idle-timeout stop holding it back).
// Messages that do not parse are counted and, by default, written to the
// dead-letter topic with the error in the header "stream.error".

#include <chrono>

#include "stream/kafka.hpp"
#include "stream/options.hpp"
#include "stream/run.hpp"
#include "windowed_process.hpp"

namespace {

namespace kafka = stream::kafka;

template <class T>
T need(stream::result<T> r, const char* flag) {
  if (!r)
    throw std::invalid_argument{std::string{"--"} + flag + ": " +
                                r.error().message()};
  return std::move(*r);
}

std::chrono::milliseconds duration_arg(const stream::environment& env,
                                       const char* name) {
  auto d = need(stream::parse_duration(env.arg(name)), name);
  return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

kafka::source_options input_options(const stream::environment& env) {
  kafka::source_options in;
  in.brokers = env.arg("brokers");
  in.topic = env.arg("input-topic");
  in.group_id = env.arg("group");
  in.start = need(kafka::parse_start_from(env.arg("start")), "start");
  in.start_timestamp_ms =
      static_cast<std::int64_t>(env.arg_u64("start-timestamp"));
  in.bounded = env.arg_u64("bounded") != 0;
  in.rate = env.arg_double("read-rate");
  in.prefetch = env.arg_u64("prefetch");
  in.bad_records = need(kafka::parse_bad_record_policy(env.arg("bad-records")),
                        "bad-records");
  in.dead_letter_topic = env.arg("dead-letter-topic");
  return in;
}

kafka::sink_options output_options(const stream::environment& env) {
  kafka::sink_options out;
  out.brokers = env.arg("brokers");
  out.topic = env.arg("output-topic");
  out.guarantee = need(kafka::parse_delivery(env.arg("delivery")), "delivery");
  out.transaction_timeout = duration_arg(env, "transaction-timeout");
  out.transactional_id_prefix = env.arg("transactional-id");
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  return stream::run(
      argc, argv,
      [](stream::environment& env) {
        auto strategy = windowed_process::view_watermarks().with_idleness(
            duration_arg(env, "idle-timeout"));
        auto views = kafka::source<windowed_process::page_view>(
                         env, input_options(env),
                         [](const kafka::message& m) {
                           return windowed_process::parse_csv(m.value);
                         },
                         strategy)
                         .name("page_views");
        kafka::sink(windowed_process::summarize_views(views),
                    output_options(env),
                    [](const windowed_process::user_window& w) {
                      return kafka::record{std::to_string(w.user),
                                           windowed_process::to_line(w)};
                    })
            .name("output");
      },
      {{"brokers", "Kafka bootstrap servers", "127.0.0.1:9092"},
       {"input-topic", "topic of page views (\"user,page,ts\")", "page-views"},
       {"output-topic", "topic for one summary per user and window",
        "views-per-user"},
       {"group", "consumer group (start=committed, monitoring commits)", ""},
       {"start", "earliest, latest, committed or timestamp", "earliest"},
       {"start-timestamp", "ms since the epoch, for --start timestamp", "0",
        stream::option_kind::unsigned_integer},
       {"bounded", "1: stop at the end offsets seen at the first start", "0",
        stream::option_kind::unsigned_integer, 0, 1},
       {"read-rate", "views read per second, 0 = unlimited", "0",
        stream::option_kind::number, 0},
       {"prefetch",
        "messages a source subtask fetches ahead, split over its "
        "partitions (about 0.35 KB each)",
        std::to_string(kafka::source_options{}.prefetch),
        stream::option_kind::unsigned_integer},
       {"bad-records", "skip, dead-letter or fail", "dead-letter"},
       {"dead-letter-topic", "where unparsable messages go",
        "page-views-dead-letters"},
       {"delivery", "exactly-once or at-least-once", "exactly-once"},
       {"transaction-timeout", "Kafka transaction timeout (exactly-once)",
        "5m"},
       {"transactional-id", "transactional id prefix (default job-operator)",
        ""},
       {"idle-timeout", "a partition without views this long is idle", "5s"}});
}
