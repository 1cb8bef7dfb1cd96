// The benchmark job: bid-like records from the generator, the price
// converted (x 0.908), keyed by auction, with a running sum and count per
// auction.
//
//   build/examples/keyed_sum --records 50000000 --parallelism 2
//   build/examples/keyed_sum --rate 1000000 --status-interval 5s

#include "keyed_sum.hpp"

#include "stream/run.hpp"

int main(int argc, char** argv) {
  return stream::run(
      argc, argv,
      [](stream::environment& env) {
        const auto records = env.arg_u64("records");
        stream::generator_options gen;
        gen.count = records == 0 ? UINT64_MAX : records;
        gen.rate = env.arg_double("rate");
        auto totals = keyed_sum::build(env, env.arg_u64("keys"), gen);
        if (env.has_arg("output")) {
          totals.write_text_file(env.arg("output")).name("output");
        } else {
          totals.discard().name("output");
        }
      },
      {{"records", "records to generate, 0 = unbounded", "0",
        stream::option_kind::unsigned_integer},
       {"keys", "distinct auctions", "10000",
        stream::option_kind::unsigned_integer, 1},
       {"rate", "records per second over all sources, 0 = unlimited", "0",
        stream::option_kind::number, 0},
       {"output",
        "file for auction<TAB>sum<TAB>count lines (default: count and drop)",
        ""}});
}
