// The seed's example: page views keyed by user, a 10-second tumbling
// event-time window, and a process window function that receives the key,
// the window and all of its elements, emitting one summary per user and
// window:
//
//   user=17 window=[1700000000000,1700000010000) views=12 pages=9
//
//   build/examples/windowed_process --records 1000000 --output windows.txt
//   build/examples/windowed_process --rate 20000 --status-interval 5s
//
// Views come from the generator with event times up to 1.9 s out of order;
// the watermark trails the largest timestamp by 2 s, so none is late.

#include "windowed_process.hpp"

#include "stream/run.hpp"

int main(int argc, char** argv) {
  return stream::run(
      argc, argv,
      [](stream::environment& env) {
        const auto records = env.arg_u64("records");
        const auto per_second = env.arg_u64("views-per-second");
        const auto users = env.arg_u64("users");
        if (per_second == 0 || per_second > 1'000'000)
          throw std::invalid_argument{
              "--views-per-second must be between 1 and 1000000"};
        if (users == 0) throw std::invalid_argument{"--users must be > 0"};
        stream::generator_options gen;
        gen.count = records == 0 ? UINT64_MAX : records;
        gen.rate = env.arg_double("rate");
        auto summaries = windowed_process::build(env, users, per_second, gen);
        if (env.has_arg("output")) {
          summaries.map(windowed_process::to_line)
              .name("format")
              .write_text_file(env.arg("output"))
              .name("output");
        } else {
          summaries.discard().name("output");
        }
      },
      {{"records", "views to generate, 0 = unbounded", "0",
        stream::option_kind::unsigned_integer},
       {"users", "distinct users", "1000",
        stream::option_kind::unsigned_integer, 1},
       {"views-per-second", "views per second of event time", "1000",
        stream::option_kind::unsigned_integer, 1},
       {"rate", "views per second of processing time, 0 = unlimited", "0",
        stream::option_kind::number, 0},
       {"output",
        "file for one summary line per user and window "
        "(default: count and drop)",
        ""}});
}
