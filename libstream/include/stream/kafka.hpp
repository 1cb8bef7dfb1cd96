#pragma once

// Kafka connectors: a replayable source (partition offsets in checkpoints,
// per-partition watermarks) and a sink that writes at least once or exactly
// once (Kafka transactions driven by checkpoints). librdkafka stays behind
// `stream/detail/kafka_io.hpp`; this header needs only the standard library.
//
//   auto views = stream::kafka::source<page_view>(env, in, parse, strategy);
//   stream::kafka::sink(summaries, out, [](const user_window& w) {
//     return stream::kafka::record{std::to_string(w.user), to_line(w)};
//   });

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "stream/data_stream.hpp"
#include "stream/detail/kafka_stages.hpp"
#include "stream/environment.hpp"
#include "stream/event_time.hpp"
#include "stream/status.hpp"

namespace stream::kafka {

/// Adds a Kafka source reading `options.topic`. Partition p is read by
/// subtask `p % parallelism`; a subtask without partitions is idle. Each
/// consumed message is handed to `deserialize(const message&) ->
/// result<T>`; an error is handled per `options.bad_records`. With a
/// `strategy`, the source tracks event time per partition (the strategy's
/// timestamp assigner, bounded out-of-orderness and idleness apply to each
/// partition) and emits the minimum over its active partitions as its
/// watermark, so a slow partition holds event time back and an idle one
/// does not.
template <class T, class Deserialize>
data_stream<T> source(environment& env, source_options options,
                      Deserialize deserialize,
                      std::optional<watermark_strategy<T>> strategy = {}) {
  if (strategy && !strategy->timestamps())
    throw std::invalid_argument{
        "kafka::source: the watermark strategy needs a timestamp assigner "
        "(with_timestamp_assigner)"};
  auto check = [options](const job_options& job) {
    return detail::check_source(options, job);
  };
  auto stream = env.add_source<T>(
      "kafka_source",
      [options, deserialize, strategy](const runtime::stage_context& ctx,
                                       runtime::stage_object* next) {
        return std::unique_ptr<runtime::stage_object>{
            new detail::source_stage<T, Deserialize>(ctx, next, options,
                                                     deserialize, strategy)};
      },
      std::move(check));
  if (strategy) return stream.with_timestamps(*strategy->timestamps());
  return stream;
}

/// Adds a Kafka sink writing `serialize(const T&) -> record` to
/// `options.topic`, at least once or exactly once (`options.guarantee`).
/// Exactly once needs checkpoints (`--checkpoint-interval`): records become
/// visible to `read_committed` consumers when the checkpoint after them
/// completes. The job refuses to start when the topic is missing, the
/// broker is unreachable, checkpoints are off (exactly once), or the
/// transaction timeout does not fit the broker's `transaction.max.timeout.ms`
/// and the checkpoint interval.
template <class T, class Serialize>
data_sink sink(const data_stream<T>& in, sink_options options,
               Serialize serialize) {
  static_assert(std::is_invocable_r_v<record, Serialize&, const T&>,
                "kafka::sink: serialize must be callable as "
                "record(const T&)");
  auto check = [options](const job_options& job) {
    return detail::check_sink(options, job);
  };
  return in.sink(
      "kafka_sink",
      [options, serialize](const runtime::stage_context& ctx,
                           runtime::stage_object*) {
        return std::unique_ptr<runtime::stage_object>{
            new detail::sink_stage<T, Serialize>(ctx, options, serialize)};
      },
      std::move(check));
}

}  // namespace stream::kafka
