#pragma once

// What every Nexmark query binary shares: its command-line options, the
// event source (the generator or a JSON-lines file) with timestamps and
// watermarks, and the JSON-lines result sink.
//
// Options (besides the common ones of `stream::run`):
//   --input FILE        Nexmark JSON lines (stream/nexmark.hpp); when absent,
//                       the generator
//   --events N          generated events, default 1000000, 0 = unbounded
//   --seed N            generator seed, default 0 (the standard stream)
//   --event-rate R      generated events per second of event time, default
//                       10000 (it sets the timestamps, not the speed)
//   --bad-records P     skip (default) or fail on a line that does not parse
//   --output FILE       one JSON object per result line; when absent the
//                       results are counted and dropped (as Flink's
//                       blackhole sink)

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stream/environment.hpp"
#include "stream/nexmark.hpp"
#include "stream/run.hpp"

namespace nexmark_queries {

/// The options above, followed by `extra` (a query's own).
std::vector<stream::app_option> options(
    std::vector<stream::app_option> extra = {});

/// The generator settings of `--seed` and `--event-rate`; throws
/// std::invalid_argument naming the option when they are out of range.
stream::nexmark::generator_config generator_settings(
    const stream::environment& env);

/// The events of the job: `--input` parsed line by line (parallelism 1) or
/// `--events` generated ones, with event-time timestamps (`timestamp()`)
/// and watermarks lagging the largest timestamp by 4 s, the Nexmark
/// standard. Throws std::invalid_argument for a bad option value.
stream::data_stream<stream::nexmark::event> events(stream::environment& env);

/// Builds one JSON object, field by field, in the order given. Keys are
/// written as they are (they must not need escaping); string values are
/// escaped; doubles are printed in their shortest round-trip form (null when
/// not finite). Not thread-safe; cheap to create per record.
class json_object {
 public:
  json_object& add_int(std::string_view key, std::int64_t value);
  json_object& add_double(std::string_view key, double value);
  json_object& add_string(std::string_view key, std::string_view value);

  /// The finished object; the builder is empty afterwards.
  std::string take();

 private:
  void add_key(std::string_view key);

  std::string text_;
};

/// Appends `value` to `out` as a JSON string literal: `"` and `\` escaped,
/// control characters as \n, \r, \t or \u00XX, other bytes as they are.
void append_json_string(std::string_view value, std::string& out);

/// Sends `results` to `--output` as JSON lines (`to_json(const T&) ->
/// std::string`, operator "format", sink "output"), or counts and drops
/// them ("output") when no output is given.
template <class T, class ToJson>
void write_results(const stream::environment& env,
                   const stream::data_stream<T>& results, ToJson to_json) {
  if (env.has_arg("output")) {
    results.map(std::move(to_json))
        .name("format")
        .write_text_file(env.arg("output"))
        .name("output");
  } else {
    results.discard().name("output");
  }
}

}  // namespace nexmark_queries
