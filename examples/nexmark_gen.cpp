// Writes generated Nexmark events as JSON lines (stream/nexmark.hpp), the
// input format of the nexmark_q* binaries' --input.
//
//   build/examples/nexmark_gen --events 100000 --output events.jsonl
//
// Dataflow: generator (parallelism 1, so lines follow the event order) ->
// map (to_json) -> text file.

#include <stdexcept>
#include <string>

#include "nexmark/common.hpp"

namespace {

namespace nq = nexmark_queries;
namespace nx = stream::nexmark;

void build(stream::environment& env) {
  if (!env.has_arg("output"))
    throw std::invalid_argument{"--output is required"};
  const auto config = nq::generator_settings(env);
  const auto count = env.arg_u64("events");
  stream::generator_options gen;
  gen.count = count == 0 ? UINT64_MAX : count;
  env.from_generator(
         [config](std::uint64_t i) { return nx::make_event(config, i); }, gen)
      .name("nexmark_generator")
      .parallelism(1)
      .map([](const nx::event& e) { return nx::to_json(e); })
      .name("to_json")
      .parallelism(1)
      .write_text_file(env.arg("output"))
      .name("output");
}

}  // namespace

int main(int argc, char** argv) {
  return stream::run(
      argc, argv, build,
      {{"events", "events to generate, 0 = unbounded", "1000000",
        stream::option_kind::unsigned_integer},
       {"seed", "generator seed (0: the standard stream)", "0",
        stream::option_kind::unsigned_integer},
       {"event-rate", "generated events per second of event time", "10000",
        stream::option_kind::number, 1},
       {"output", "file for the JSON lines (required)", ""}});
}
