#pragma once

// kafka_bench's setup and results, shared by the driver (kafka_bench.cpp)
// and the report (kafka_bench_report.cpp).

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kafka_bench {

inline constexpr const char* modes[] = {"at-least-once", "exactly-once"};
inline constexpr int partitions = 4;
/// The loader's views: as many users and as dense in event time as its
/// defaults, passed explicitly so that the expected output is computed
/// from the same views.
inline constexpr std::uint64_t users = 1000;
inline constexpr std::uint64_t views_per_second = 1000;
inline constexpr std::int64_t window_ms = 10'000;
/// The latency loader starts this long before a window boundary, so that
/// the first full window starts with the load (the one before is partial).
inline constexpr std::int64_t loader_lead_ms = 1000;

/// The command line.
struct settings {
  std::uint64_t records = 3'000'000;
  std::uint64_t runs = 3;
  std::uint64_t rate = 20'000;
  std::uint64_t latency_seconds = 30;
  std::string brokers;  ///< empty: start a broker
  std::string report;
};

/// The source prefetch (`--prefetch`) of the runs of section 3.
inline constexpr std::uint64_t prefetches[] = {200'000, 500'000, 1'000'000,
                                               2'000'000};

/// One bounded run.
struct throughput_run {
  std::string mode;
  double seconds = 0;          ///< as the job printed it
  double load = -1;            ///< 1-minute load average at the start
  long max_rss_kb = -1;        ///< the job process's peak resident set
  std::uint64_t prefetch = 0;  ///< 0: the job's default
};

/// One latency run: the latencies (ms) of the windows that the views' own
/// watermark closed, by window end.
struct latency_run {
  std::string mode;
  double load = -1;
  std::int64_t loader_start_ms = 0;
  std::map<std::int64_t, std::vector<std::int64_t>> by_window;
  std::size_t partial = 0;  ///< messages of the partial first window
  std::size_t at_stop = 0;  ///< messages of windows only the stop closed
};

/// Everything the report shows.
struct results {
  settings s;
  std::string brokers;
  double load = -1;  ///< at the start
  double seconds = 0;
  std::vector<std::string> commands;  ///< "what:\n    `command`"
  double fill_rate = 0;               ///< kafka_load's records/s
  std::size_t windows = 0;            ///< (user, window) pairs of the input
  std::vector<throughput_run> throughput;
  std::vector<latency_run> latency;
  std::vector<throughput_run> prefetch;  ///< section 3
};

/// The markdown report.
std::string format_report(const results& r);

}  // namespace kafka_bench
