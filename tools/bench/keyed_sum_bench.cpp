// keyed_sum through the runtime against a hand-written single-threaded loop
// doing the same work (generator, map, hash map per key), in one run.
//
//   keyed_sum_bench [--records N] [--batch1-records N] [--report FILE]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench_report.hpp"
#include "keyed_sum.hpp"
#include "stream/run.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

constexpr std::uint64_t keys = 10000;

using bench::measurement;

// The limit: the same records, the same conversion and the same per-key
// running totals, with nothing in between. The result of every update is
// folded into a checksum so that the compiler cannot drop the work.
measurement hand_loop(std::uint64_t n) {
  auto start = clock_type::now();
  std::unordered_map<std::uint64_t, keyed_sum::auction_total> totals;
  std::uint64_t checksum = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    auto b = keyed_sum::to_euro(keyed_sum::make_bid(i, keys));
    auto [it, fresh] =
        totals.try_emplace(b.auction, keyed_sum::auction_total{0, 0, 0});
    keyed_sum::add_bid(it->second, b);
    keyed_sum::auction_total out{b.auction, it->second.sum, it->second.count};
    checksum += out.sum ^ out.count;
  }
  auto secs = std::chrono::duration<double>(clock_type::now() - start).count();
  if (checksum == 42) std::puts("");  // keeps `checksum` observable
  return {"hand-written loop", n, secs};
}

measurement runtime(std::uint64_t n, std::uint32_t batch_size,
                    std::uint32_t threads, const std::string& name,
                    std::uint32_t parallelism = 1) {
  stream::job_options o;
  o.parallelism = parallelism;
  o.threads = threads;
  o.batch_size = batch_size;
  o.metrics_address.clear();
  stream::environment env{o};
  stream::generator_options gen;
  gen.count = n;
  keyed_sum::build(env, keys, gen).discard();
  auto report = stream::execute(env);
  if (!report) {
    std::fprintf(stderr, "%s failed: %s\n", name.c_str(),
                 report.error().to_string().c_str());
    std::exit(1);
  }
  return {name, report->source_records,
          std::chrono::duration<double>(report->elapsed).count()};
}

}  // namespace

int main(int argc, char** argv) {
  auto n = bench::number_flag(argc, argv, "--records", 50'000'000);
  auto n1 = bench::number_flag(argc, argv, "--batch1-records", 2'000'000);
  auto report_path = bench::flag(argc, argv, "--report", "");
  std::vector<measurement> runs;
  runs.push_back(hand_loop(n));
  runs.push_back(runtime(n, 1024, 1, "runtime, 1 thread, batch 1024"));
  runs.push_back(runtime(n, 1024, 2, "runtime, 2 threads, batch 1024"));
  // Parallelism 2 routes every record by its key group (hash and copy);
  // with one keyed subtask the router passes batches through whole.
  runs.push_back(
      runtime(n, 1024, 2, "runtime, 2 threads, parallelism 2, batch 1024", 2));
  runs.push_back(runtime(n1, 1, 1, "runtime, 1 thread, batch 1"));
  runs.push_back(
      runtime(n1, 1024, 1, "runtime, 1 thread, batch 1024 (same n)"));

  std::string out;
  out += "# keyed_sum benchmark\n\n";
  out +=
      "10,000 keys; generator -> map(price x 0.908) -> key_by(auction) -> "
      "running sum and count; parallelism 1 unless a row says otherwise.\n\n";
  out += bench::table(runs);
  char line[256];
  std::snprintf(line, sizeof line,
                "\nBatch 1024 vs batch 1 (1 thread, same records): %.1fx\n",
                runs[5].rate() / runs[4].rate());
  out += line;
  bench::publish(out, report_path);
  return 0;
}
