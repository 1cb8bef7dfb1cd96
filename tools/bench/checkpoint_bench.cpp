// What checkpoints cost and how fast a job recovers, in one run:
// 1. W0 throughput with checkpoints off, every 1 s and every 10 s, on both
//    state backends;
// 2. snapshot size and duration (total, synchronous, asynchronous) for
//    10,000 and 1,000,000 keys on both backends;
// 3. recovery time of a job with about 100 MB of keyed state: injected
//    failure -> first record processed after the restore.
//
//   checkpoint_bench [--seconds N] [--report FILE] [--state-dir DIR]
//                    [--checkpoint-dir DIR] [--recovery-keys N]

#include <stdlib.h>  // mkdtemp, getloadavg

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_report.hpp"
#include "keyed_sum.hpp"
#include "stream/metrics.hpp"
#include "stream/run.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using bench::measurement;
using std::chrono::milliseconds;

constexpr std::uint64_t w0_keys = 10000;
// Every wait on the job polls at this period and gives up after
// `wait_limit`, so a checkpoint that never completes fails the bench instead
// of hanging it. 10 ms resolves every checkpoint at a 500 ms interval.
constexpr milliseconds poll_period{10};
constexpr std::chrono::seconds wait_limit{120};
constexpr milliseconds snapshot_interval{500};
constexpr std::size_t snapshot_samples = 5;
constexpr std::uint32_t max_failures = 3;
constexpr std::size_t payload_bytes = 72;

using bench::format;

double seconds_of(clock_type::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::string ms(double seconds) { return format("%.1f ms", seconds * 1e3); }

std::string megabytes(double bytes) { return format("%.2f MB", bytes / 1e6); }

// Other work on the machine skews throughput: every run notes the 1-minute
// load average when it ends.
double load_average() {
  double load = -1;
  return getloadavg(&load, 1) == 1 ? load : -1;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

/// A fresh directory `<base>/<prefix>-XXXXXX`, removed with its contents on
/// destruction.
class scratch_dir {
 public:
  scratch_dir(const std::string& base, const char* prefix) {
    std::string pattern = base + "/" + prefix + "-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr)
      throw std::runtime_error{"cannot create " + pattern + ": " +
                               std::strerror(errno)};
    path_ = pattern;
  }
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// Where the runs put their state and checkpoints (fresh folders below).
struct bench_dirs {
  std::string state;
  std::string checkpoints;
};

/// Sum of the series of `name`, only those of operator `op` when given.
double metric(const std::vector<stream::metrics_registry::family>& families,
              std::string_view name, std::string_view op = {}) {
  double total = 0;
  for (const auto& f : families) {
    if (f.name != name) continue;
    for (const auto& s : f.samples) {
      bool match = op.empty();
      for (const auto& [k, v] : s.labels) match |= k == "operator" && v == op;
      if (match) total += s.value;
    }
  }
  return total;
}

double metric(const stream::metrics_registry& r, std::string_view name,
              std::string_view op = {}) {
  return metric(r.snapshot(), name, op);
}

/// The coordinator's gauges of the last completed checkpoint.
struct checkpoint_sample {
  std::int64_t id = 0;
  double duration = 0;  ///< seconds, trigger to completion
  double sync = 0;      ///< seconds, longest synchronous phase of a task
  double async = 0;     ///< seconds, longest background write of a task
  double alignment = 0;
  double size_bytes = 0;
};

/// The median of one gauge over `samples`.
double median_of(const std::vector<checkpoint_sample>& samples,
                 double checkpoint_sample::*gauge) {
  std::vector<double> values;
  for (const auto& s : samples) values.push_back(s.*gauge);
  return median(std::move(values));
}

std::int64_t last_id(const stream::metrics_registry& r) {
  return static_cast<std::int64_t>(
      metric(r, "stream_checkpoint_last_completed_id"));
}

// The coordinator sets the gauges before the id: read the id, then the
// gauges, and retry when another checkpoint completed in between (which
// takes microseconds against checkpoints at least 500 ms apart, so a few
// tries always suffice).
checkpoint_sample last_checkpoint(const stream::metrics_registry& r) {
  for (int attempt = 0;; ++attempt) {
    auto id = last_id(r);
    auto f = r.snapshot();
    checkpoint_sample s;
    s.id = static_cast<std::int64_t>(
        metric(f, "stream_checkpoint_last_completed_id"));
    if (s.id != id && attempt < 10) continue;
    s.duration = metric(f, "stream_checkpoint_duration_seconds");
    s.sync = metric(f, "stream_checkpoint_sync_seconds");
    s.async = metric(f, "stream_checkpoint_async_seconds");
    s.alignment = metric(f, "stream_checkpoint_alignment_seconds");
    s.size_bytes = metric(f, "stream_checkpoint_size_bytes");
    return s;
  }
}

/// A job running on a helper thread, as its watcher sees it.
struct job_control {
  std::shared_ptr<stream::metrics_registry> registry =
      std::make_shared<stream::metrics_registry>();
  std::atomic<bool> stop{false};
  std::atomic<bool> ended{false};
};

/// Polls `done()` until it holds; throws after `wait_limit` or when the job
/// ended first.
template <class Pred>
void wait_until(const job_control& job, Pred done, const std::string& what) {
  auto deadline = clock_type::now() + wait_limit;
  while (!done()) {
    if (job.ended) throw std::runtime_error{"the job ended before " + what};
    if (clock_type::now() > deadline)
      throw std::runtime_error{
          format("timed out after %lld s waiting for ",
                 static_cast<long long>(wait_limit.count())) +
          what};
    std::this_thread::sleep_for(poll_period);
  }
}

/// Runs the job of `env` on a helper thread while `watch()` runs on this
/// one, then stops it gracefully. Throws when the job or `watch` failed.
template <class Watch>
stream::job_report run_watched(stream::environment& env, job_control& job,
                               const std::string& name, Watch watch) {
  stream::execution_hooks hooks;
  hooks.registry = job.registry;
  hooks.stop = &job.stop;
  std::optional<stream::result<stream::job_report>> report;
  std::thread runner{[&] {
    report.emplace(stream::execute(env, hooks));
    job.ended = true;
  }};
  std::string watch_error;
  try {
    watch();
  } catch (const std::exception& e) {
    watch_error = e.what();
  }
  job.stop = true;
  runner.join();
  if (!*report)
    throw std::runtime_error{name + " failed: " + report->error().to_string()};
  if (!watch_error.empty()) throw std::runtime_error{name + ": " + watch_error};
  std::fprintf(stderr, "%s: %.3f s, %llu records, %u restarts\n", name.c_str(),
               seconds_of((*report)->elapsed),
               static_cast<unsigned long long>((*report)->source_records),
               (*report)->restarts);
  return **report;
}

stream::job_options base_options(const std::string& backend,
                                 const scratch_dir& state,
                                 const scratch_dir& checkpoints,
                                 milliseconds interval) {
  stream::job_options o;
  o.parallelism = 1;
  o.metrics_address.clear();
  o.state_backend = backend;
  o.state_dir = state.path();
  o.checkpoint_dir = checkpoints.path();
  o.checkpoint_interval = interval;
  return o;
}

// ---- 1. W0 throughput ------------------------------------------------------

struct throughput_run {
  std::string backend;
  std::uint32_t threads = 1;  ///< of the actor scheduler
  milliseconds interval{0};
  measurement run;
  std::uint64_t completed = 0;  ///< including the one at the end of input
  double load = 0;              ///< 1-minute load average at the end
  /// The checkpoints seen completing while records flowed, in order.
  std::vector<checkpoint_sample> samples;
};

throughput_run w0_run(const std::string& backend, std::uint32_t threads,
                      milliseconds interval, std::chrono::seconds length,
                      const bench_dirs& dirs) {
  scratch_dir state{dirs.state, "w0-state"};
  scratch_dir checkpoints{dirs.checkpoints, "w0-chk"};
  // windowed_bench's runtime runs use parallelism 1 on one thread.
  auto o = base_options(backend, state, checkpoints, interval);
  o.threads = threads;
  o.job_name = "w0";
  stream::environment env{o};
  keyed_sum::build_windowed(env, w0_keys, {}).discard();
  throughput_run out{backend, threads, interval, {}, 0, 0, {}};
  auto name =
      "W0, " + backend + format(", %u thread(s), checkpoints ", threads) +
      (interval.count() == 0
           ? std::string{"off"}
           : format("every %lld ms", static_cast<long long>(interval.count())));
  job_control job;
  const auto& r = *job.registry;
  auto report = run_watched(env, job, name, [&] {
    auto end = clock_type::now() + length;
    std::int64_t seen = 0;
    while (clock_type::now() < end && !job.ended) {
      if (last_id(r) != seen) {
        out.samples.push_back(last_checkpoint(r));
        seen = out.samples.back().id;
      }
      std::this_thread::sleep_for(poll_period);
    }
  });
  out.completed = static_cast<std::uint64_t>(
      metric(r, "stream_checkpoints_completed_total"));
  out.run = {name, report.source_records, seconds_of(report.elapsed)};
  out.load = load_average();
  return out;
}

/// Throughput lost against the run of the same backend without checkpoints,
/// in percent.
double loss_percent(const std::vector<throughput_run>& runs,
                    const throughput_run& run) {
  auto off = std::find_if(runs.begin(), runs.end(), [&](const auto& o) {
    return o.backend == run.backend && o.threads == run.threads &&
           o.interval.count() == 0;
  });
  return 100.0 * (1.0 - run.run.rate() / off->run.rate());
}

std::string checkpoint_cells(const throughput_run& run,
                             std::chrono::seconds length) {
  if (run.interval.count() == 0) return "- | - | - | - | -";
  auto due = static_cast<long long>(length / run.interval);
  if (run.samples.empty()) return format("0 of %lld | - | - | - | -", due);
  const auto& last = run.samples.back();
  return format(
      "%zu of %lld | %s (%s) | %s | %s | %.0f B", run.samples.size(), due,
      ms(last.duration).c_str(),
      ms(median_of(run.samples, &checkpoint_sample::duration)).c_str(),
      ms(last.sync).c_str(), ms(last.async).c_str(), last.size_bytes);
}

std::string throughput_section(const std::vector<throughput_run>& runs,
                               std::chrono::seconds length) {
  std::string out = "## 1. W0 throughput with periodic checkpoints\n\n";
  out += format(
      "`keyed_sum::build_windowed` as in windowed_bench's runtime runs "
      "(10,000 keys, 1-second tumbling event-time windows, parallelism 1, "
      "one scheduler thread like windowed_bench; two more rows with two "
      "scheduler threads; the checkpoint writer has a thread of its own). "
      "Unbounded generator, stopped after %lld s of wall time; records/s = "
      "source records / job time (including the drain and, with checkpoints "
      "on, the final checkpoint at the end of input, which 'completed' "
      "counts). 'while running' counts the checkpoints seen completing "
      "before the stop, against the number due at the interval; 'last' is "
      "the last of those, with the median duration over all of them. 'load' "
      "is the 1-minute load average when the run ended: other work on the "
      "machine lowers the throughput of a run.\n\n",
      static_cast<long long>(length.count()));
  out +=
      "| backend | threads | checkpoints | load | records | seconds "
      "| records/s | loss vs off | completed | while running "
      "| last: duration (median) | sync | async | size |\n"
      "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
      "\n";
  for (const auto& r : runs) {
    bool on = r.interval.count() > 0;
    out += format(
        "| %s | %u | %s | %.2f | %llu | %.3f | %.0f | %s | %llu | %s |\n",
        r.backend.c_str(), r.threads,
        on ? format("every %.0f s", r.interval.count() / 1e3).c_str() : "off",
        r.load, static_cast<unsigned long long>(r.run.records), r.run.seconds,
        r.run.rate(),
        on ? format("%.1f%%", loss_percent(runs, r)).c_str() : "-",
        static_cast<unsigned long long>(r.completed),
        checkpoint_cells(r, length).c_str());
  }
  out += "\nGoal: under 10% loss at a 1 s interval. Measured:";
  for (const auto& r : runs) {
    if (r.interval != milliseconds{1000}) continue;
    auto loss = loss_percent(runs, r);
    out += format(" %s with %u thread(s) %.1f%% (%s);", r.backend.c_str(),
                  r.threads, loss, loss < 10 ? "met" : "NOT met");
  }
  out.back() = '.';
  return out + "\n\n";
}

// ---- 2. Snapshot duration by state size ------------------------------------

struct snapshot_run {
  std::string backend;
  std::uint64_t keys = 0;
  std::vector<checkpoint_sample> samples;  ///< each taken with every key
};

// generator (key i % keys) -> key_by -> count per key: after `keys` records
// the state holds exactly `keys` entries, and never more.
snapshot_run snapshot_sizes(const std::string& backend, std::uint64_t keys,
                            const bench_dirs& dirs) {
  scratch_dir state{dirs.state, "snap-state"};
  scratch_dir checkpoints{dirs.checkpoints, "snap-chk"};
  auto o = base_options(backend, state, checkpoints, snapshot_interval);
  o.job_name = "snapshot";
  stream::environment env{o};
  env.from_generator([keys](std::uint64_t i) { return i % keys; })
      .name("keys")
      .key_by([](const std::uint64_t& k) { return k; })
      .aggregate(
          std::uint64_t{0}, [](std::uint64_t& n, const std::uint64_t&) { ++n; },
          [](const std::uint64_t&, const std::uint64_t& n) { return n; })
      .name("count_per_key")
      .discard();
  snapshot_run out{backend, keys, {}};
  job_control job;
  const auto& r = *job.registry;
  run_watched(env, job,
              format("snapshot, %s, %llu keys", backend.c_str(),
                     static_cast<unsigned long long>(keys)),
              [&] {
                wait_until(
                    job,
                    [&] {
                      return metric(r, "stream_records_in_total",
                                    "count_per_key") >= keys;
                    },
                    "every key to exist");
                // The next checkpoint may have started before the last key
                // arrived; the one after it has every key.
                auto first = last_id(r) + 2;
                wait_until(
                    job,
                    [&] {
                      auto id = last_id(r);
                      if (id >= first &&
                          (out.samples.empty() || out.samples.back().id != id))
                        out.samples.push_back(last_checkpoint(r));
                      return out.samples.size() >= snapshot_samples;
                    },
                    "snapshots of the full state");
              });
  return out;
}

std::string snapshot_section(const std::vector<snapshot_run>& runs) {
  std::string out = "## 2. Snapshot duration by state size\n\n";
  out += format(
      "generator (key = i mod N) -> key_by -> rolling count per key, so the "
      "state holds exactly N keys; parallelism 1, one scheduler thread per "
      "core, checkpoint every %lld ms, "
      "input at full speed throughout. Median (and last) of %zu consecutive "
      "checkpoints completed with every key in the state. Sync = longest "
      "synchronous phase of a task (processing paused); async = longest "
      "background write.\n\n",
      static_cast<long long>(snapshot_interval.count()), snapshot_samples);
  out +=
      "| backend | keys | size | duration (last) | sync (last) | async (last) "
      "| alignment | checkpoint ids |\n"
      "|---|---:|---:|---:|---:|---:|---:|---|\n";
  for (const auto& r : runs) {
    auto med = [&](double checkpoint_sample::*gauge) {
      return median_of(r.samples, gauge);
    };
    const auto& last = r.samples.back();
    out += format(
        "| %s | %llu | %s | %s (%s) | %s (%s) | %s (%s) | %s | %lld-%lld |\n",
        r.backend.c_str(), static_cast<unsigned long long>(r.keys),
        megabytes(med(&checkpoint_sample::size_bytes)).c_str(),
        ms(med(&checkpoint_sample::duration)).c_str(),
        ms(last.duration).c_str(), ms(med(&checkpoint_sample::sync)).c_str(),
        ms(last.sync).c_str(), ms(med(&checkpoint_sample::async)).c_str(),
        ms(last.async).c_str(), ms(med(&checkpoint_sample::alignment)).c_str(),
        static_cast<long long>(r.samples.front().id),
        static_cast<long long>(last.id));
  }
  return out + "\n";
}

// ---- 3. Recovery -----------------------------------------------------------

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             clock_type::now().time_since_epoch())
      .count();
}

/// Shared by the bench thread and the job's operators; outlives the job.
struct failure_probe {
  std::atomic<bool> fail{false};         ///< set by the bench: throw once
  std::atomic<std::uint32_t> thrown{0};  ///< failures injected so far
  std::array<std::atomic<std::int64_t>, max_failures> thrown_ns{};
  std::array<std::atomic<std::int64_t>, max_failures> first_record_ns{};
};

// After the keyed state. Each attempt runs its own copy: the failing
// attempt's copy saw its first record long before the failure, so a copy
// whose first record finds n failures injected belongs to the attempt
// restored after failure n, whatever the dying tasks still process.
struct first_record_probe {
  failure_probe* probe;
  bool seen = false;
  std::uint64_t operator()(const std::uint64_t& key) {
    if (!seen) {
      seen = true;
      auto n = probe->thrown.load();
      if (n > 0) probe->first_record_ns[n - 1] = now_ns();
    }
    return key;
  }
};

struct recovery_run {
  std::string backend;
  milliseconds delay{0};
  std::uint64_t keys = 0;
  double size_bytes = 0;                ///< of the checkpoint restored
  std::vector<double> to_first_record;  ///< seconds, per failure
  std::vector<double> last_recovery;    ///< stream_last_recovery_seconds
  std::uint32_t restarts = 0;
};

void build_recovery_job(stream::environment& env, std::uint64_t keys,
                        failure_probe* probe) {
  env.from_generator([keys](std::uint64_t i) { return i % keys; })
      .name("keys")
      .map([probe](const std::uint64_t& k) {
        if (probe->fail.load(std::memory_order_relaxed) &&
            probe->fail.exchange(false)) {
          auto n = probe->thrown.load();
          probe->thrown_ns[n] = now_ns();
          probe->thrown = n + 1;
          throw std::runtime_error{"injected failure"};
        }
        return k;
      })
      .name("faults")
      .key_by([](const std::uint64_t& k) { return k; })
      .aggregate(
          std::string{},
          [](std::string& value, const std::uint64_t& k) {
            if (!value.empty()) return;
            value.assign(payload_bytes, 'x');
            auto digits = std::to_string(k);
            value.replace(0, digits.size(), digits);
          },
          [](const std::uint64_t& k, const std::string&) { return k; })
      .name("state")
      .map(first_record_probe{probe})
      .name("probe")
      .discard();
}

// Waits for a checkpoint of the full state, then injects `max_failures`
// failures one after the other, each once the previous recovery finished
// and a checkpoint completed after it.
void inject_failures(job_control& job, failure_probe& probe,
                     recovery_run& out) {
  const auto& r = *job.registry;
  wait_until(
      job,
      [&] { return metric(r, "stream_records_in_total", "state") >= out.keys; },
      "every key to exist");
  auto full = last_id(r) + 2;
  for (std::uint32_t f = 0; f < max_failures; ++f) {
    wait_until(
        job, [&] { return last_id(r) >= full; },
        "a checkpoint of the full state");
    out.size_bytes = last_checkpoint(r).size_bytes;
    auto recovered = metric(r, "stream_recovery_seconds_total");
    probe.fail = true;
    wait_until(
        job, [&] { return probe.first_record_ns[f] != 0; },
        "the first record after recovery");
    wait_until(
        job,
        [&] { return metric(r, "stream_recovery_seconds_total") > recovered; },
        "stream_last_recovery_seconds");
    out.to_first_record.push_back(
        static_cast<double>(probe.first_record_ns[f] - probe.thrown_ns[f]) *
        1e-9);
    out.last_recovery.push_back(metric(r, "stream_last_recovery_seconds"));
    full = last_id(r) + 1;
  }
}

recovery_run recovery(const std::string& backend, milliseconds delay,
                      std::uint64_t keys, const bench_dirs& dirs) {
  scratch_dir state{dirs.state, "recovery-state"};
  scratch_dir checkpoints{dirs.checkpoints, "recovery-chk"};
  auto o = base_options(backend, state, checkpoints, milliseconds{1000});
  o.job_name = "recovery";
  o.restart_strategy = "fixed-delay";
  o.restart_delay = delay;
  stream::environment env{o};
  failure_probe probe;
  build_recovery_job(env, keys, &probe);
  recovery_run out{backend, delay, keys, 0, {}, {}, 0};
  job_control job;
  auto name = format("recovery, %s, restart delay %lld ms", backend.c_str(),
                     static_cast<long long>(delay.count()));
  auto report =
      run_watched(env, job, name, [&] { inject_failures(job, probe, out); });
  out.restarts = report.restarts;
  return out;
}

std::string list_ms(const std::vector<double>& v) {
  std::string out;
  for (auto s : v) out += (out.empty() ? "" : ", ") + format("%.0f", s * 1e3);
  return out;
}

std::string recovery_section(const std::vector<recovery_run>& runs) {
  std::string out = "## 3. Recovery time\n\n";
  out += format(
      "generator (key = i mod N) -> map (throws when the bench asks) -> "
      "key_by -> rolling aggregate keeping a %zu-byte string per key -> map "
      "(notes the first record of each attempt) -> discard; parallelism 1, "
      "one scheduler thread per core, "
      "checkpoint every 1 s, restart strategy fixed-delay. Once a checkpoint "
      "of the full state completed, the bench injects a failure; %u failures "
      "per run, the next one after the recovery and one more checkpoint. "
      "'failure -> first record' runs from the throw to the first record "
      "the restored keyed operator processes (steady_clock); "
      "stream_last_recovery_seconds from the coordinator noticing the "
      "failure to every task running again with restored state.\n\n",
      payload_bytes, max_failures);
  out +=
      "| backend | restart delay | keys | checkpoint size | failure -> first "
      "record: median (each, ms) | stream_last_recovery_seconds: median "
      "(each, ms) | restarts |\n"
      "|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : runs) {
    out += format(
        "| %s | %lld ms | %llu | %s | %s (%s) | %s (%s) | %u |\n",
        r.backend.c_str(), static_cast<long long>(r.delay.count()),
        static_cast<unsigned long long>(r.keys),
        megabytes(r.size_bytes).c_str(), ms(median(r.to_first_record)).c_str(),
        list_ms(r.to_first_record).c_str(), ms(median(r.last_recovery)).c_str(),
        list_ms(r.last_recovery).c_str(), r.restarts);
  }
  out += "\nGoal: under 1 s for 100 MB (restart delay 0). Measured:";
  for (const auto& r : runs) {
    if (r.delay.count() != 0) continue;
    auto worst =
        *std::max_element(r.to_first_record.begin(), r.to_first_record.end());
    out +=
        format(" %s %s worst of %u at %s (%s);", r.backend.c_str(),
               ms(worst).c_str(), max_failures, megabytes(r.size_bytes).c_str(),
               worst < 1.0 ? "met" : "NOT met");
  }
  out.back() = '.';
  return out + "\n";
}

int run_bench(int argc, char** argv) {
  const auto started = clock_type::now();
  const auto load_at_start = load_average();
  std::chrono::seconds length{bench::number_flag(argc, argv, "--seconds", 25)};
  auto recovery_keys =
      bench::number_flag(argc, argv, "--recovery-keys", 1'200'000);
  auto report_path = bench::flag(argc, argv, "--report", "");
  bench_dirs dirs;
  dirs.state = bench::flag(argc, argv, "--state-dir", "/tmp");
  dirs.checkpoints = bench::flag(argc, argv, "--checkpoint-dir", dirs.state);

  std::vector<throughput_run> w0;
  for (const char* backend : {"memory", "leveldb"}) {
    for (auto interval :
         {milliseconds{0}, milliseconds{1000}, milliseconds{10000}})
      w0.push_back(w0_run(backend, 1, interval, length, dirs));
  }
  // On one scheduler thread checkpoints complete late (in multiples of the
  // 100 ms flush timeout) and triggers come seconds late; on two they are
  // on time, which shows what checkpoints at the interval cost.
  for (auto interval : {milliseconds{0}, milliseconds{1000}})
    w0.push_back(w0_run("memory", 2, interval, length, dirs));
  std::vector<snapshot_run> snapshots;
  for (const char* backend : {"memory", "leveldb"}) {
    for (std::uint64_t keys : {10'000ULL, 1'000'000ULL})
      snapshots.push_back(snapshot_sizes(backend, keys, dirs));
  }
  std::vector<recovery_run> recoveries;
  recoveries.push_back(
      recovery("memory", milliseconds{0}, recovery_keys, dirs));
  recoveries.push_back(
      recovery("leveldb", milliseconds{0}, recovery_keys, dirs));
  // The default restart delay, for comparison.
  recoveries.push_back(recovery("memory", stream::job_options{}.restart_delay,
                                recovery_keys, dirs));

  std::string out = "# Checkpoints: overhead, snapshot duration, recovery\n\n";
  out += format(
      "Machine: %u hardware threads (std::thread::hardware_concurrency); "
      "1-minute load average %.2f at the start, %.2f at the end. Every "
      "figure below comes from one run of checkpoint_bench (%.0f s in all), "
      "state and checkpoints in fresh folders under %s and %s.\n\n",
      std::thread::hardware_concurrency(), load_at_start, load_average(),
      seconds_of(clock_type::now() - started), dirs.state.c_str(),
      dirs.checkpoints.c_str());
  out += throughput_section(w0, length);
  out += snapshot_section(snapshots);
  out += recovery_section(recoveries);
  bench::publish(out, report_path);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run_bench(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "checkpoint_bench: %s\n", e.what());
    return 1;
  }
}
