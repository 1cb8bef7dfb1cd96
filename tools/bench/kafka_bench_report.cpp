// kafka_bench's markdown report: the setup, the commands, the throughput
// and the latency tables.

#include <algorithm>
#include <thread>

#include "bench_report.hpp"
#include "kafka_bench.hpp"
#include "stream/detail/kafka_io.hpp"
#include "windowed_process.hpp"

namespace kafka_bench {
namespace {

using bench::format;

/// The job's `--prefetch` when not given: the source's default.
const std::size_t default_prefetch = stream::kafka::source_options{}.prefetch;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/// Nearest-rank percentile of sorted `v` (p in (0, 1]).
std::int64_t percentile(const std::vector<std::int64_t>& v, double p) {
  auto rank = static_cast<std::size_t>(p * static_cast<double>(v.size()));
  if (static_cast<double>(rank) < p * static_cast<double>(v.size())) ++rank;
  return v[std::max<std::size_t>(rank, 1) - 1];
}

std::string throughput_section(const results& r) {
  const auto n = static_cast<double>(r.s.records);
  auto out = format(
      "## 1. Throughput, at-least-once vs exactly-once\n\n"
      "%llu views in 4 partitions (%llu users, %llu views per second of "
      "event time), read by bounded jobs from the earliest offsets; the "
      "modes alternate. records/s = views / the job's own `job finished "
      "after X s` (start and final commit included). Every run read every "
      "view and committed %zu messages, one per (user, window) pair.\n\n"
      "kafka_load filled the input topic at %.0f records/s (acks=all, "
      "idempotent).\n\n"
      "| mode | run | load avg | seconds | records/s | peak RSS MB |\n"
      "|---|---:|---:|---:|---:|---:|\n",
      static_cast<unsigned long long>(r.s.records),
      static_cast<unsigned long long>(users),
      static_cast<unsigned long long>(views_per_second), r.windows,
      r.fill_rate);
  std::map<std::string, std::vector<double>> rates;
  for (std::size_t i = 0; i < r.throughput.size(); ++i) {
    const auto& t = r.throughput[i];
    rates[t.mode].push_back(n / t.seconds);
    out += format("| %s | %zu | %.2f | %.3f | %.0f | %.0f |\n", t.mode.c_str(),
                  i / 2 + 1, t.load, t.seconds, n / t.seconds,
                  static_cast<double>(t.max_rss_kb) / 1024);
  }
  out += "\n| mode | median records/s | range |\n|---|---:|---:|\n";
  for (const char* mode : modes) {
    const auto& v = rates[mode];
    out += format("| %s | %.0f | %.0f - %.0f |\n", mode, median(v),
                  *std::min_element(v.begin(), v.end()),
                  *std::max_element(v.begin(), v.end()));
  }
  out += format("\nExactly-once / at-least-once (medians): **%.1f%%**.\n\n",
                100.0 * median(rates[modes[1]]) / median(rates[modes[0]]));
  return out;
}

std::string prefetch_section(const results& r) {
  const auto n = static_cast<double>(r.s.records);
  auto out = format(
      "## 3. Source prefetch\n\n"
      "The same bounded at-least-once job, one run per `--prefetch` "
      "(messages a source subtask keeps fetched ahead, split over its "
      "partitions; default %llu). librdkafka 2.0.2 fetches again for a "
      "partition whose local queue reached its share only about a second "
      "later, so catching up is bounded by about prefetch records per "
      "second and subtask; the memory for it is the peak RSS of the job "
      "process (2 source subtasks, windows, sink).\n\n"
      "| prefetch | load avg | seconds | records/s | peak RSS MB |\n"
      "|---:|---:|---:|---:|---:|\n",
      static_cast<unsigned long long>(default_prefetch));
  for (const auto& t : r.prefetch)
    out +=
        format("| %llu | %.2f | %.3f | %.0f | %.0f |\n",
               static_cast<unsigned long long>(t.prefetch), t.load, t.seconds,
               n / t.seconds, static_cast<double>(t.max_rss_kb) / 1024);
  return out + "\n";
}

std::string latency_rows(const latency_run& r) {
  std::vector<std::int64_t> all;
  for (const auto& [end, v] : r.by_window)
    all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  const auto bound = windowed_process::max_delay_ms;
  return format(
      "| %s | %.2f | %zu | %zu | %lld | %lld | %lld | %lld | %lld "
      "| %zu | %zu |\n",
      r.mode.c_str(), r.load, r.by_window.size(), all.size(),
      static_cast<long long>(percentile(all, 0.5)),
      static_cast<long long>(percentile(all, 0.99)),
      static_cast<long long>(all.back()),
      static_cast<long long>(percentile(all, 0.5) - bound),
      static_cast<long long>(percentile(all, 0.99) - bound), r.partial,
      r.at_stop);
}

std::string window_rows(const latency_run& r) {
  std::string out;
  for (auto [end, v] : r.by_window) {
    std::sort(v.begin(), v.end());
    out +=
        format("| %s | +%.1f s | %zu | %lld | %lld | %lld |\n", r.mode.c_str(),
               static_cast<double>(end - r.loader_start_ms) / 1000, v.size(),
               static_cast<long long>(v.front()),
               static_cast<long long>(percentile(v, 0.5)),
               static_cast<long long>(v.back()));
  }
  return out;
}

std::string latency_section(const results& r) {
  auto out = format(
      "## 2. End-to-end latency at %llu views/s\n\n"
      "Per mode: an unbounded job from the latest offsets on fresh topics; "
      "once it completed a checkpoint, kafka_load writes %llu s of views "
      "stamped with the wall clock (`--event-time now`), starting %lld ms "
      "before a window boundary (so the job runs for the load + 8 s + up to "
      "10 s of waiting for the boundary). A read_committed consumer in the "
      "bench "
      "(fetch.wait.max.ms 20) notes, per window message, latency = wall "
      "clock at receipt - window end. Left out: the partial first window "
      "(end < loader start + 10 s) and windows whose end + 2 s lies past "
      "the last view, which only the job's stop (draining) closes.\n\n"
      "A window closes only when the watermark passes its end, i.e. after a "
      "view 2 s (the out-of-orderness bound) past the end arrived in every "
      "partition, plus up to one watermark interval (200 ms); with "
      "exactly-once its messages become visible only when the checkpoint "
      "after it commits the transaction (up to one checkpoint interval, "
      "1 s, more). The columns '- 2 s' take the bound out: what the runtime "
      "and Kafka add.\n\n"
      "| mode | load avg | windows | messages | p50 ms | p99 ms | max ms | "
      "p50 - 2 s | p99 - 2 s | left out: partial | left out: closed at stop "
      "|\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
      static_cast<unsigned long long>(r.s.rate),
      static_cast<unsigned long long>(r.s.latency_seconds),
      static_cast<long long>(loader_lead_ms));
  for (const auto& l : r.latency) out += latency_rows(l);
  out +=
      "\nPer window (end relative to the loader's start):\n\n"
      "| mode | window end | messages | min ms | p50 ms | max ms |\n"
      "|---|---:|---:|---:|---:|---:|\n";
  for (const auto& l : r.latency) out += window_rows(l);
  return out +
         "\nA window's messages (one per user) fire together and arrive "
         "within a few ms, and watermarks (every 200 ms) and checkpoints "
         "(every 1 s) keep the same phase against window ends (multiples of "
         "10 s) for the whole job: within one job every window waits about "
         "as long, so each mode's figures are close to one sample of that "
         "phase; exactly-once adds 0 - 1 s depending on it.\n\n";
}

}  // namespace

std::string format_report(const results& r) {
  std::string out =
      "# Kafka: windowed_process_kafka, broker -> job -> broker\n\n";
  out += format(
      "Machine: %u hardware threads (nproc), 1-minute load average %.2f at "
      "the start. Broker %s (%s), job and bench on loopback on this "
      "machine. The bench took %.0f s.\n\nCommands (`$DIR` a temporary "
      "folder):\n\n",
      std::thread::hardware_concurrency(), r.load, r.brokers.c_str(),
      r.s.brokers.empty() ? "single-node Kafka started by tools/kafka-broker"
                          : "given with --brokers",
      r.seconds);
  for (const auto& cmd : r.commands) out += "- " + cmd + "\n";
  return out + "\n" + throughput_section(r) + latency_section(r) +
         prefetch_section(r);
}

}  // namespace kafka_bench
