// The windowed_process example on Kafka, broker -> job -> broker on
// loopback, in one run:
// 1. throughput, at-least-once against exactly-once: one input topic (4
//    partitions) filled once by kafka_load, read by bounded runs of
//    windowed_process_kafka (parallelism 2, checkpoints every second) into
//    fresh output topics, the two modes alternating; every run must read
//    every view and commit one message per (user, window) pair;
// 2. end-to-end latency at a fixed input rate: per mode an unbounded job
//    on fresh topics, kafka_load writing views stamped with the wall clock,
//    and a read_committed consumer here that notes, per window message,
//    (wall clock at receipt) - (window end);
// 3. catch-up throughput and peak RSS of bounded at-least-once runs at
//    several source prefetch settings (--prefetch).
//
//   kafka_bench [--records N] [--runs N] [--rate R] [--latency-seconds S]
//               [--brokers HOST:PORT] [--report FILE]
//
// Without --brokers it starts its own broker with tools/kafka-broker
// (127.0.0.1:19094, folder <build>/kafka-bench) and stops it at the end.

#include "kafka_bench.hpp"

#include <stdlib.h>  // mkdtemp, getloadavg
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "bench_report.hpp"
#include "kafka_bench_client.hpp"
#include "kafka_bench_setup.hpp"
#include "kafka_support.hpp"
#include "process.hpp"
#include "windowed_process.hpp"

namespace kafka_bench {
namespace {

namespace fs = std::filesystem;
namespace test_kafka = stream::test::kafka;
using bench::format;
using stream::testing::child_process;
using clock_type = std::chrono::steady_clock;

// -- 1. throughput ------------------------------------------------------------

/// How many (user, window) pairs the first `records` views fall into: the
/// number of messages a job writes for them.
std::size_t expected_windows(std::uint64_t records) {
  std::unordered_set<std::uint64_t> pairs;
  for (std::uint64_t i = 0; i < records; ++i) {
    auto v = windowed_process::make_view(i, users, views_per_second);
    pairs.insert(static_cast<std::uint64_t>(v.ts / window_ms) * users + v.user);
  }
  return pairs.size();
}

/// Writes `extra` views with kafka_load; returns its records/s.
double run_loader(context& c, const std::string& what, const std::string& topic,
                  std::uint64_t records, const std::vector<std::string>& extra,
                  seconds limit) {
  auto argv = command(
      c.loader, {{"--brokers", c.brokers},
                 {"--topic", topic},
                 {"--partitions", std::to_string(partitions)},
                 {"--records", std::to_string(records)},
                 {"--users", std::to_string(users)},
                 {"--views-per-second", std::to_string(views_per_second)}});
  argv.insert(argv.end(), extra.begin(), extra.end());
  note_command(c, what, argv);
  auto p = start(c, argv, topic.substr(c.tag.size() + 1) + "-load");
  expect_success(*p, "kafka_load", limit);
  // "kafka_load: wrote N records (M malformed) to T in X s (R records/s)"
  auto out = p->out();
  unsigned long long written = 0;
  double rate = -1;
  auto at = out.find("wrote ");
  if (at == std::string::npos ||
      std::sscanf(out.c_str() + at,
                  "wrote %llu records (%*u malformed) to %*s "
                  "in %*f s (%lf records/s)",
                  &written, &rate) != 2 ||
      written != records)
    throw std::runtime_error("kafka_load did not report " +
                             std::to_string(records) + " records:\n" + out);
  return rate;
}

std::vector<std::string> job_argv(const context& c, const std::string& mode,
                                  const std::string& name,
                                  const std::string& in,
                                  const std::string& out) {
  return command(c.job, {{"--brokers", c.brokers},
                         {"--input-topic", in},
                         {"--output-topic", out},
                         {"--dead-letter-topic", c.dead_letters},
                         {"--delivery", mode},
                         {"--parallelism", "2"},
                         {"--checkpoint-interval", "1s"},
                         {"--checkpoint-dir", c.dir + "/" + name},
                         {"--transactional-id", c.tag + "-" + name},
                         {"--metrics-address", ""},
                         {"--job-name", name}});
}

/// A bounded run of the job; `prefetch` 0 leaves the job's default.
throughput_run run_bounded(context& c, const std::string& mode, int run,
                           const std::string& input, std::size_t windows,
                           std::uint64_t prefetch = 0) {
  const auto name =
      prefetch == 0
          ? format("tp-%d-%s", run, mode.c_str())
          : format("pf-%llu-%s", static_cast<unsigned long long>(prefetch),
                   mode.c_str());
  const auto output = c.tag + "-" + name;
  create_topics(c, {output});
  auto argv = job_argv(c, mode, name, input, output);
  argv.insert(argv.end(), {"--bounded", "1", "--start", "earliest"});
  if (prefetch != 0)
    argv.insert(argv.end(), {"--prefetch", std::to_string(prefetch)});
  note_command(c,
               prefetch == 0 ? "bounded job, " + mode
                             : "bounded job with --prefetch, " + mode,
               argv);
  throughput_run r{mode, -1, load_average(), -1, prefetch};
  auto job = start(c, argv, name);
  auto err =
      expect_success(*job, "job " + name, secs(120 + c.s.records / 10'000));
  r.max_rss_kb = job->max_rss_kb();
  // "<prog>: job finished after X s, N records from sources (R records/s)"
  unsigned long long read = 0;
  auto at = err.find("job finished after ");
  if (at == std::string::npos ||
      std::sscanf(err.c_str() + at, "job finished after %lf s, %llu",
                  &r.seconds, &read) != 2 ||
      read != c.s.records)
    throw std::runtime_error(
        format("job %s did not read all %llu views\n", name.c_str(),
               static_cast<unsigned long long>(c.s.records)) +
        tail(err));
  auto got = test_kafka::read_all(c.brokers, output, true, read_limit).size();
  if (got != windows)
    throw std::runtime_error(
        format("job %s committed %zu messages to %s, expected one per (user, "
               "window) pair: %zu\n",
               name.c_str(), got, output.c_str(), windows));
  std::fprintf(stderr,
               "kafka_bench: %s: %.3f s, %.0f records/s, peak RSS %ld KB\n",
               name.c_str(), r.seconds,
               static_cast<double>(c.s.records) / r.seconds, r.max_rss_kb);
  return r;
}

// -- 2. latency ---------------------------------------------------------------

/// Waits for the job's first complete checkpoint: its sources have then
/// resolved `latest` to offsets, so no view written afterwards is missed.
void wait_until_running(const context& c, const std::string& name,
                        child_process& job) {
  const auto folder = fs::path(c.dir) / name / name;
  const auto deadline = clock_type::now() + job_ready_limit;
  auto complete = [&] {
    std::error_code ec;
    for (fs::directory_iterator it{folder, ec}, end; !ec && it != end;
         it.increment(ec)) {
      if (fs::exists(it->path() / "_metadata", ec)) return true;
    }
    return false;
  };
  while (!complete()) {
    if (job.err().find("job failed") != std::string::npos)
      throw std::runtime_error("job " + name + " failed\n" + tail(job.err()));
    if (clock_type::now() > deadline)
      throw std::runtime_error(
          format("job %s completed no checkpoint within "
                 "%lld s\n",
                 name.c_str(),
                 static_cast<long long>(job_ready_limit.count())) +
          tail(job.err()));
    std::this_thread::sleep_for(poll_period);
  }
}

/// Sorts the samples into kept windows, the partial first one and those
/// only the job's stop closed (their end plus the bound is past the views).
void classify(latency_run& r,
              const std::vector<kafka_bench::window_sample>& samples,
              std::int64_t last_view_ms) {
  for (const auto& s : samples) {
    if (s.end_ms < r.loader_start_ms + window_ms)
      ++r.partial;
    else if (s.end_ms + windowed_process::max_delay_ms > last_view_ms)
      ++r.at_stop;
    else
      r.by_window[s.end_ms].push_back(s.received_ms - s.end_ms);
  }
  if (r.by_window.empty())
    throw std::runtime_error(
        "no window closed while views arrived (raise --latency-seconds)");
}

latency_run run_latency(context& c, const std::string& mode) {
  const auto name = "latency-" + mode;
  const auto input = c.tag + "-" + name + "-in";
  const auto output = c.tag + "-" + name + "-out";
  create_topics(c, {input, output});
  latency_run r;
  r.mode = mode;
  r.load = load_average();
  kafka_bench::window_reader reader{c.brokers, output, partitions};
  // The loader may wait up to one window for a boundary (below).
  const std::uint64_t stop_after = c.s.latency_seconds + 8 + window_ms / 1000;
  auto argv = job_argv(c, mode, name, input, output);
  // Drained: the report counts the windows the stop closes.
  argv.insert(argv.end(), {"--start", "latest", "--drain", "--stop-after",
                           std::to_string(stop_after) + "s"});
  note_command(c, "unbounded job, " + mode, argv);
  auto job = start(c, argv, name);
  wait_until_running(c, name, *job);
  // Start just before a window boundary: the first full window begins
  // with the load, and the most windows close before it ends.
  const auto boundary =
      (wall_ms() + loader_lead_ms) / window_ms * window_ms + window_ms;
  std::this_thread::sleep_for(
      milliseconds{boundary - loader_lead_ms - wall_ms()});
  r.loader_start_ms = wall_ms();
  const auto records = c.s.rate * c.s.latency_seconds;
  run_loader(c, "latency load", input, records,
             {"--rate", std::to_string(c.s.rate), "--event-time", "now"},
             secs(c.s.latency_seconds + 60));
  const auto last_view_ms =
      kafka_bench::last_timestamp(c.brokers, input, partitions);
  expect_success(*job, "job " + name, secs(stop_after + 60));
  classify(r, reader.finish(), last_view_ms);
  std::fprintf(stderr, "kafka_bench: %s latency: %zu windows kept\n",
               mode.c_str(), r.by_window.size());
  return r;
}

// -- driver -------------------------------------------------------------------

void usage(FILE* to) {
  std::fputs(
      "usage: kafka_bench [--records N] [--runs N] [--rate R] "
      "[--latency-seconds S]\n                   [--brokers HOST:PORT] "
      "[--report FILE]\n\n"
      "  --records N          views for the throughput runs (3000000)\n"
      "  --runs N             bounded runs per delivery mode (3)\n"
      "  --rate R             views/s for the latency runs (20000)\n"
      "  --latency-seconds S  length of the latency load, >= 15 (30)\n"
      "  --brokers HOST:PORT  use this broker instead of starting one with\n"
      "                       tools/kafka-broker on 127.0.0.1:19094\n"
      "  --report FILE        also write the markdown report there\n",
      to);
}

/// The value of `name` (or `fallback`); exits with 2 unless it is a
/// whole number of at least `min`.
std::uint64_t count_flag(int argc, char** argv, const char* name,
                         std::uint64_t fallback, std::uint64_t min) {
  const auto text = bench::flag(argc, argv, name, std::to_string(fallback));
  std::uint64_t value = 0;
  auto [end, ec] =
      std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc{} && end == text.data() + text.size() && value >= min)
    return value;
  std::fprintf(stderr,
               "kafka_bench: %s must be a whole number >= %llu, not "
               "'%s'\n",
               name, static_cast<unsigned long long>(min), text.c_str());
  std::exit(2);
}

/// The settings, or exit 0 (--help) or 2 (a bad command line).
settings parse(int argc, char** argv) {
  static const std::vector<std::string> known{"--records", "--runs",
                                              "--rate",    "--latency-seconds",
                                              "--brokers", "--report"};
  for (int i = 1; i < argc; i += 2) {
    if (std::strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      std::exit(0);
    }
    if (std::find(known.begin(), known.end(), argv[i]) == known.end() ||
        i + 1 >= argc) {
      std::fprintf(stderr, "kafka_bench: %s '%s'\n",
                   i + 1 >= argc ? "missing value after" : "unknown flag",
                   argv[i]);
      usage(stderr);
      std::exit(2);
    }
  }
  settings s;
  s.records = count_flag(argc, argv, "--records", s.records, 1);
  s.runs = count_flag(argc, argv, "--runs", s.runs, 1);
  s.rate = count_flag(argc, argv, "--rate", s.rate, 1);
  // 15 s: one full window that the views' own watermark closes.
  s.latency_seconds =
      count_flag(argc, argv, "--latency-seconds", s.latency_seconds, 15);
  s.brokers = bench::flag(argc, argv, "--brokers", "");
  s.report = bench::flag(argc, argv, "--report", "");
  return s;
}

std::string run_all(context& c, double start_load,
                    clock_type::time_point started) {
  const auto input = c.tag + "-input";
  c.dead_letters = c.tag + "-dead-letters";
  try {
    create_topics(c, {input, c.dead_letters});
  } catch (const std::exception& e) {
    throw std::runtime_error("cannot create topics on the broker at " +
                             c.brokers + " (is it up?): " + e.what());
  }
  std::fprintf(stderr, "kafka_bench: writing %llu views\n",
               static_cast<unsigned long long>(c.s.records));
  auto fill_rate = run_loader(c, "fill", input, c.s.records, {},
                              secs(60 + c.s.records / 20'000));
  const auto windows = expected_windows(c.s.records);
  std::vector<throughput_run> runs;
  for (int i = 1; i <= static_cast<int>(c.s.runs); ++i)
    for (const char* mode : modes)
      runs.push_back(run_bounded(c, mode, i, input, windows));
  std::vector<latency_run> latency;
  for (const char* mode : modes) latency.push_back(run_latency(c, mode));
  std::vector<throughput_run> prefetch;
  for (auto n : kafka_bench::prefetches)
    prefetch.push_back(run_bounded(c, modes[0], 1, input, windows, n));

  kafka_bench::results r{c.s,
                         c.brokers,
                         start_load,
                         0,
                         {},
                         fill_rate,
                         windows,
                         std::move(runs),
                         std::move(latency),
                         std::move(prefetch)};
  r.seconds =
      std::chrono::duration<double>(clock_type::now() - started).count();
  r.commands = c.commands;
  return kafka_bench::format_report(r);
}

int drive(context& c) {
  const auto started = clock_type::now();
  const auto load = load_average();
  std::fprintf(stderr, "kafka_bench: 1-minute load average %.2f\n", load);
  char tmpl[] = "/tmp/kafka-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  c.dir = tmpl;
  c.tag = "kafka-bench-" + std::to_string(::getpid());
  std::unique_ptr<own_broker> broker;
  if (c.s.brokers.empty())
    broker = std::make_unique<own_broker>(c);
  else
    c.brokers = c.s.brokers;
  auto report = run_all(c, load, started);
  if (broker)
    broker->succeeded();
  else if (auto error = kafka_bench::delete_topics(c.brokers, c.topics);
           !error.empty())
    std::fprintf(stderr, "kafka_bench: could not delete the topics %s-*: %s\n",
                 c.tag.c_str(), error.c_str());
  broker.reset();
  std::error_code ec;
  fs::remove_all(c.dir, ec);
  bench::publish(report, c.s.report);
  std::fprintf(
      stderr, "kafka_bench: done after %.0f s\n",
      std::chrono::duration<double>(clock_type::now() - started).count());
  return 0;
}

}  // namespace
}  // namespace kafka_bench

int main(int argc, char** argv) {
  kafka_bench::context c;
  c.s = kafka_bench::parse(argc, argv);
  try {
    return kafka_bench::drive(c);
  } catch (const std::exception& e) {
    // The children are gone (destructors), the broker stopped; their logs
    // stay for a look.
    std::fprintf(stderr, "kafka_bench: %s\nlogs kept in %s", e.what(),
                 c.dir.c_str());
    if (!c.s.brokers.empty() && !c.topics.empty())
      std::fprintf(stderr, ", topics %s-* on %s", c.tag.c_str(),
                   c.brokers.c_str());
    std::fputs("\n", stderr);
    return 1;
  }
}
