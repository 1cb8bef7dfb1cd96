#pragma once

// The exactly_once job, shared by the example binary and its tests: sensor
// readings with event time, keyed by sensor, into
// - a 1-second tumbling event-time window (count and sum per sensor), and
// - a keyed process function with a running count and sum in value state
//   that reports every 50th reading of a sensor, and the final totals from
//   an event-time timer that fires at the end of input,
// both written to exactly-once file sinks. Failures can be injected at
// chosen readings to watch the job recover without losing or repeating a
// line of output.

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>

#include "stream/codec.hpp"
#include "stream/data_stream.hpp"
#include "stream/environment.hpp"
#include "stream/windows.hpp"

namespace exactly_once {

struct reading {
  std::uint64_t seq = 0;  ///< Index of the reading: where it came from.
  std::uint64_t sensor = 0;
  std::int64_t ts = 0;  ///< Event time, ms since the epoch.
  std::int64_t value = 0;
};
STREAM_FIELDS(reading, seq, sensor, ts, value);

inline constexpr std::int64_t base_time = 1'700'000'000'000;
/// Readings arrive up to this much out of order (the watermark allows it).
inline constexpr std::int64_t max_delay_ms = 200;

inline std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/// Reading `i`: one per millisecond of event time, up to 150 ms early.
inline reading make_reading(std::uint64_t i, std::uint64_t sensors) {
  auto h = mix(i);
  return reading{i, h % sensors,
                 base_time + static_cast<std::int64_t>(i) -
                     static_cast<std::int64_t>((h >> 32) % 150),
                 static_cast<std::int64_t>((h >> 16) % 1000)};
}

/// Event time far beyond every reading: its timer fires at the end of input.
inline constexpr std::int64_t end_of_time = base_time + 1'000'000'000'000;

/// Per sensor, a count and a sum in value state; a line every 50 readings
/// (independent of the order in which parallel sources deliver them) and
/// the totals when the end-of-input timer fires.
struct running_totals {
  void process(const std::uint64_t& sensor, const reading& r,
               stream::keyed_context<std::uint64_t>& ctx,
               stream::emitter<std::string>& out) {
    auto count = ctx.get_value_state<std::uint64_t>("count");
    auto sum = ctx.get_value_state<std::int64_t>("sum");
    auto n = count.value().value_or(0) + 1;
    if (n == 1) ctx.register_event_time_timer(end_of_time);
    count.update(n);
    sum.update(sum.value().value_or(0) + r.value);
    if (n % 50 == 0)
      out.emit("total sensor " + std::to_string(sensor) + " readings " +
               std::to_string(n));
  }

  void on_timer(std::int64_t, const std::uint64_t& sensor,
                stream::keyed_context<std::uint64_t>& ctx,
                stream::emitter<std::string>& out) {
    auto count = ctx.get_value_state<std::uint64_t>("count");
    auto sum = ctx.get_value_state<std::int64_t>("sum");
    out.emit("final sensor " + std::to_string(sensor) + " readings " +
             std::to_string(count.value().value_or(0)) + " sum " +
             std::to_string(sum.value().value_or(0)));
  }
};

/// Thrown by the injected failures.
class injected_failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Decides whether reading `seq` fails (called once per reading and
/// attempt; it must say yes once per failure it injects). May be empty.
using failure_fn = std::function<bool(std::uint64_t seq)>;

/// generator -> fault injection -> timestamps -> key_by(sensor) ->
///   window: "window <end> sensor <s> count <n> sum <v>" -> <out>/windows
///   process: "total sensor <s> readings <n>" every 50 readings and
///            "final sensor <s> readings <n> sum <v>" at the end ->
///            <out>/totals
inline void build(stream::environment& env, std::uint64_t sensors,
                  stream::generator_options generator, failure_fn fail,
                  const std::string& output) {
  auto readings =
      env.from_generator(
             [sensors](std::uint64_t i) { return make_reading(i, sensors); },
             generator)
          .name("readings")
          .map([fail = std::move(fail)](const reading& r) {
            if (fail && fail(r.seq))
              throw injected_failure{"injected failure at reading " +
                                     std::to_string(r.seq)};
            return r;
          })
          .name("faults")
          .assign_timestamps_and_watermarks(
              stream::watermark_strategy<reading>::for_bounded_out_of_orderness(
                  std::chrono::milliseconds{max_delay_ms})
                  .with_timestamp_assigner(
                      [](const reading& r) { return r.ts; }))
          .name("timestamps");
  auto by_sensor = readings.key_by([](const reading& r) { return r.sensor; });
  by_sensor.window(stream::tumbling_event_time_windows(std::chrono::seconds{1}))
      .process<std::string>([](const std::uint64_t& sensor,
                               const stream::time_window& w,
                               const std::vector<reading>& rs,
                               stream::emitter<std::string>& out) {
        std::int64_t sum = 0;
        for (const auto& r : rs) sum += r.value;
        out.emit("window " + std::to_string(w.end) + " sensor " +
                 std::to_string(sensor) + " count " +
                 std::to_string(rs.size()) + " sum " + std::to_string(sum));
      })
      .name("windows")
      .write_files(output + "/windows")
      .name("window_files");
  by_sensor.process<std::string>(running_totals{})
      .name("totals")
      .write_files(output + "/totals")
      .name("total_files");
}

}  // namespace exactly_once
