// Exactly-once output through failures, restarts and restores: sensor
// readings keyed by sensor into a 1-second event-time window and a keyed
// running total, written by exactly-once file sinks (part files appear when
// the checkpoint covering them completes).
//
//   build/examples/exactly_once --readings 200000 --rate 50000
//       --checkpoint-interval 200ms --output /tmp/eo --fail-at 30000,120000
//
// Kill it (even with kill -9) and start it again with
// `--restore /tmp/stream-checkpoints/exactly_once`: the part files under
// --output then hold each line exactly once, the same lines as a run that
// never failed.

#include "exactly_once.hpp"

#include <algorithm>
#include <charconv>
#include <mutex>
#include <set>
#include <sstream>

#include "stream/run.hpp"

namespace {

/// The readings of --fail-at, each failing once per process.
exactly_once::failure_fn parse_failures(const std::string& text) {
  if (text.empty()) return {};
  auto targets = std::make_shared<std::set<std::uint64_t>>();
  std::stringstream in{text};
  std::string item;
  while (std::getline(in, item, ',')) {
    std::uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec != std::errc{} || ptr != item.data() + item.size())
      throw std::invalid_argument{"--fail-at: '" + item +
                                  "' is not a reading number"};
    targets->insert(v);
  }
  auto mtx = std::make_shared<std::mutex>();
  return [targets, mtx](std::uint64_t seq) {
    std::lock_guard<std::mutex> guard{*mtx};
    return targets->erase(seq) > 0;
  };
}

}  // namespace

int main(int argc, char** argv) {
  return stream::run(
      argc, argv,
      [](stream::environment& env) {
        const auto sensors = env.arg_u64("sensors");
        if (sensors == 0) throw std::invalid_argument{"--sensors must be > 0"};
        if (!env.has_arg("output"))
          throw std::invalid_argument{"--output DIR is required"};
        stream::generator_options gen;
        const auto readings = env.arg_u64("readings");
        gen.count = readings == 0 ? UINT64_MAX : readings;
        gen.rate = env.arg_double("rate");
        exactly_once::build(env, sensors, gen,
                            parse_failures(env.arg("fail-at")),
                            env.arg("output"));
      },
      {{"readings", "readings to generate, 0 = unbounded", "0",
        stream::option_kind::unsigned_integer},
       {"sensors", "distinct sensors", "100",
        stream::option_kind::unsigned_integer, 1},
       {"rate", "readings per second, 0 = unlimited", "0",
        stream::option_kind::number, 0},
       {"output", "directory of the part files (windows/, totals/)", ""},
       {"fail-at",
        "comma-separated reading numbers whose processing throws once, to "
        "watch recovery",
        ""}});
}
