// W0 across processes, and how fast the cluster roles recover from a lost
// worker, in one run. The binary is both the driver and the job: with
// `--role` on the command line it is the W0 topology binary
// (`stream::run`); without, it starts copies of itself as a coordinator and
// workers on loopback and measures:
// a. W0 throughput at parallelism 2, local role (one process, 2 threads)
//    against a coordinator and two 1-slot workers (the keyed exchange
//    crosses processes as encoded byte buffers), 3 runs each;
// b. a worker that hosts tasks killed with SIGKILL, 5 times: time to
//    detection (`worker <id> lost`) and to the first record after the
//    restart (`records flowing again`), then restarted under its id;
// c. the same with SIGSTOP (a hung worker, found by heartbeats), 3 times.
//
//   cluster_bench [--records N] [--report FILE]

#include <curl/curl.h>
#include <signal.h>
#include <stdlib.h>  // mkdtemp, getloadavg

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_report.hpp"
#include "cluster_support.hpp"
#include "keyed_sum.hpp"
#include "process.hpp"
#include "scrape.hpp"
#include "stream/run.hpp"

namespace {

namespace fs = std::filesystem;
using stream::testing::child_process;
using stream::testing::count_of;
using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::uint64_t w0_keys = 10000;
// Every wait polls the children's stderr at this period (it bounds the
// resolution of the detection and recovery times) and fails the bench with
// a message after its own limit instead of hanging it.
constexpr milliseconds poll_period{2};
constexpr seconds run_limit{180};
constexpr seconds start_limit{30};
constexpr seconds detect_limit{15};
constexpr seconds recover_limit{30};
constexpr seconds exit_limit{30};
constexpr int throughput_runs = 3;
constexpr int kills = 5;
constexpr int hangs = 3;
// Recovery runs generate at this rate, unbounded, until SIGTERM.
constexpr const char* recovery_rate = "2000000";

// -- job mode -----------------------------------------------------------------

int run_job(int argc, char** argv) {
  return stream::run(
      argc, argv,
      [](stream::environment& env) {
        const auto records = env.arg_u64("records");
        stream::generator_options gen;
        gen.count = records == 0 ? UINT64_MAX : records;
        gen.rate = env.arg_double("rate");
        keyed_sum::build_windowed(env, w0_keys, gen).discard().name("output");
      },
      {{"records", "records to generate, 0 = unbounded", "0",
        stream::option_kind::unsigned_integer},
       {"rate", "records per second over all sources, 0 = unlimited", "0",
        stream::option_kind::number}});
}

// -- driver helpers -----------------------------------------------------------

using bench::format;

/// The number after the `nth` (0-based) occurrence of `needle`, or -1.
double number_after(const std::string& text, const std::string& needle,
                    std::size_t nth = 0) {
  auto pos = text.find(needle);
  for (; pos != std::string::npos && nth > 0; --nth)
    pos = text.find(needle, pos + needle.size());
  if (pos == std::string::npos) return -1;
  return std::strtod(text.c_str() + pos + needle.size(), nullptr);
}

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t)
      .count();
}

/// Polls `ready` until it holds; throws "timed out waiting for `what`"
/// with `context()` after `limit`. Returns the milliseconds since `since`
/// at the first poll that saw it.
template <class Ready, class Context>
double wait_until(Ready ready, const std::string& what, milliseconds limit,
                  Context context,
                  clock_type::time_point since = clock_type::now()) {
  const auto deadline = clock_type::now() + limit;
  while (!ready()) {
    if (clock_type::now() >= deadline)
      throw std::runtime_error(
          format("timed out after %lld ms waiting for %s\n",
                 static_cast<long long>(limit.count()), what.c_str()) +
          context());
    std::this_thread::sleep_for(poll_period);
  }
  return ms_since(since);
}

std::string join(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    out += a.empty() ? "\"\"" : a;
  }
  return out;
}

/// The last lines of `text`, for error messages.
std::string tail(const std::string& text, std::size_t lines = 25) {
  auto pos = text.size();
  for (std::size_t i = 0; i <= lines && pos != std::string::npos && pos > 0;
       ++i)
    pos = text.rfind('\n', pos - 1);
  return pos == std::string::npos ? text : text.substr(pos + 1);
}

// -- a job as a coordinator and workers ---------------------------------------

/// A W0 job run as a coordinator and 1-slot workers (1 thread each) on
/// loopback: the ports, folder (checkpoints) and command lines of a
/// test-support cluster, the logs in `logs` (kept after a failure). Every
/// child dies with the driver, so none outlives a crashed bench.
class cluster {
 public:
  cluster(const std::string& self, std::string logs, int parallelism,
          const std::vector<std::string>& job)
      : roles_(self, "w0", parallelism),
        logs_(std::move(logs)),
        command_(roles_.job_command(job, "", roles_.checkpoints())) {
    command_.insert(command_.end(), {"--threads", "1"});
    fs::create_directories(logs_);
  }

  const std::string& dir() const { return roles_.dir(); }
  long long latest_checkpoint() const { return roles_.latest_checkpoint(); }
  std::vector<std::string> coordinator_argv() const {
    return roles_.coordinator_command(command_);
  }
  std::vector<std::string> worker_argv(const std::string& id) const {
    return roles_.worker_command(command_, id, 1);
  }

  void start_coordinator() {
    coordinator_ = start(coordinator_argv(), "coordinator");
  }
  /// Starts (or restarts, under the same id) a worker.
  void start_worker(const std::string& id) {
    if (auto it = workers_.find(id); it != workers_.end()) {
      it->second->signal(SIGKILL);
      it->second->wait(exit_limit);
    }
    workers_[id] = start(worker_argv(id), id + "-" + std::to_string(++starts_));
  }

  child_process& coordinator() { return *coordinator_; }
  child_process& worker(const std::string& id) { return *workers_.at(id); }
  std::string log() const { return "coordinator stderr:\n" + tail(err()); }
  std::string err() const { return coordinator_->err(); }

  /// The job's status from the REST API; throws when it is an error.
  nlohmann::json status() const {
    const auto url = roles_.rest_url() + "/api/v1/job";
    const auto body = stream::testing::http_get(url);
    auto json = nlohmann::json::parse(body, nullptr, false);
    if (json.is_discarded() || !json.is_object() || json.contains("error"))
      throw std::runtime_error("GET " + url + ": " + body);
    return json;
  }

  /// Waits for the coordinator's exit (code 0) and then the workers'.
  /// Returns the workers' exit codes that were not 0, as text.
  std::string wait_for_end(milliseconds limit) {
    int rc = coordinator_->wait(limit);
    if (rc != 0)
      throw std::runtime_error(format("coordinator exited with %d\n", rc) +
                               log());
    std::string bad;
    for (auto& [id, w] : workers_) {
      if (int wrc = w->wait(exit_limit); wrc != 0)
        bad += format("%s exited with %d; ", id.c_str(), wrc);
    }
    return bad;
  }

 private:
  std::unique_ptr<child_process> start(const std::vector<std::string>& argv,
                                       const std::string& name) const {
    return std::make_unique<child_process>(
        argv, stream::testing::child_options{{}, logs_ + "/" + name, true});
  }

  stream::testing::cluster roles_;
  std::string logs_;
  std::vector<std::string> command_;  ///< the job's, without role flags
  std::unique_ptr<child_process> coordinator_;
  std::map<std::string, std::unique_ptr<child_process>> workers_;
  int starts_ = 0;
};

// -- a. throughput ------------------------------------------------------------

struct throughput_run {
  double seconds = 0;      ///< as printed by the job
  double startup_ms = -1;  ///< coordinator start -> first record (cluster)
  double load = -1;        ///< 1-minute load average at the start
};

// Other work on the machine skews throughput: every run notes it.
double load_average() {
  double load = -1;
  return getloadavg(&load, 1) == 1 ? load : -1;
}

struct context {
  std::string self;
  std::string dir;
  std::uint64_t records = 0;
  std::vector<std::string> commands;  ///< for the report, one per setting
  int run = 0;
};

/// Notes `argv` for the report with `c.dir` and `job_dir` (a cluster's
/// folder) written `$DIR`.
void note_command(context& c, const std::string& what,
                  const std::vector<std::string>& argv,
                  const std::string& job_dir = "") {
  auto line = join(argv);
  for (const auto& dir : {c.dir, job_dir}) {
    for (auto pos = line.find(dir); !dir.empty() && pos != std::string::npos;
         pos = line.find(dir))
      line.replace(pos, dir.size(), "$DIR");
  }
  line.replace(0, c.self.size(), "cluster_bench");
  // The first run of each setting stands for the others (same flags,
  // other folders and ports).
  auto entry = what + ":\n    " + line;
  auto same = [&](const std::string& e) { return e.starts_with(what + ":"); };
  if (std::none_of(c.commands.begin(), c.commands.end(), same))
    c.commands.push_back(entry);
}

std::vector<std::string> throughput_job(const context& c) {
  return {"--records", std::to_string(c.records)};
}

throughput_run run_local(context& c) {
  auto dir = c.dir + "/local-" + std::to_string(++c.run);
  fs::create_directories(dir);
  std::vector<std::string> argv{c.self, "--role", "local", "--job-name", "w0"};
  argv.insert(argv.end(),
              {"--parallelism", "2", "--threads", "2", "--metrics-address", "",
               "--checkpoint-dir", dir + "/checkpoints"});
  auto job = throughput_job(c);
  argv.insert(argv.end(), job.begin(), job.end());
  note_command(c, "local role, one process", argv);
  const auto load = load_average();
  child_process p{argv,
                  stream::testing::child_options{{}, dir + "/local", true}};
  int rc = p.wait(run_limit);
  auto err = p.err();
  if (rc != 0)
    throw std::runtime_error(format("local run exited with %d\n", rc) +
                             tail(err));
  // "<prog>: job finished after X s, N records from sources (R records/s)"
  double secs = -1;
  unsigned long long sources = 0;
  auto at = err.find("job finished after ");
  if (at == std::string::npos ||
      std::sscanf(err.c_str() + at, "job finished after %lf s, %llu", &secs,
                  &sources) != 2 ||
      sources != c.records)
    throw std::runtime_error("local run did not read all records\n" +
                             tail(err));
  return {secs, -1, load};
}

throughput_run run_cluster(context& c) {
  cluster job{c.self, c.dir + "/cluster-" + std::to_string(++c.run), 2,
              throughput_job(c)};
  note_command(c, "coordinator", job.coordinator_argv(), job.dir());
  note_command(c, "2 workers (w1, w2)", job.worker_argv("w1"), job.dir());
  const auto load = load_average();
  job.start_coordinator();
  job.start_worker("w1");
  job.start_worker("w2");
  auto bad = job.wait_for_end(run_limit);
  if (!bad.empty()) throw std::runtime_error("workers: " + bad);
  auto err = job.err();
  return {number_after(err, "job finished after "),
          number_after(err, "records flowing "), load};
}

// -- b. and c. recovery -------------------------------------------------------

struct failure_sample {
  std::string worker;
  double detected_ms = -1;   ///< signal -> `worker <id> lost`
  double recovered_ms = -1;  ///< signal -> `records flowing again`
  double reported_ms = -1;   ///< detection -> first record, as printed
  std::size_t restarts = 0;  ///< restarts the coordinator began meanwhile
};

/// Waits until the job runs all its tasks, every worker has registered as
/// often as it was started and a checkpoint newer than `after` is complete.
void wait_until_steady(cluster& job, const std::map<std::string, int>& starts,
                       long long after) {
  auto log = [&] { return job.log(); };
  wait_until(
      [&] {
        auto err = job.err();
        for (const auto& [id, n] : starts) {
          if (count_of(err, "worker " + id + " registered") <
              static_cast<std::size_t>(n))
            return false;
        }
        return true;
      },
      "every worker to register", start_limit, log);
  wait_until([&] { return job.latest_checkpoint() > after; },
             format("a checkpoint after checkpoint %lld", after), start_limit,
             log);
  wait_until(
      [&] {
        auto s = job.status();
        if (s["state"] != "running") return false;
        for (const auto& t : s["tasks"]) {
          if (t["state"] != "running") return false;
        }
        return true;
      },
      "all tasks running", start_limit, log);
}

/// A worker that hosts tasks, per the REST API; the `nth` one in turn.
std::string busy_worker(cluster& job, int nth) {
  std::vector<std::string> busy;
  // Named: a range-for over a member of a temporary would dangle.
  const auto status = job.status();
  for (const auto& w : status["workers"]) {
    if (w["used"].get<int>() > 0) busy.push_back(w["id"]);
  }
  if (busy.empty())
    throw std::runtime_error("no worker hosts tasks\n" + job.log());
  return busy[static_cast<std::size_t>(nth) % busy.size()];
}

/// Signals a busy worker with `sig` and times detection and recovery; the
/// worker is killed (if only stopped) and restarted once it was detected.
failure_sample fail_worker(cluster& job, std::map<std::string, int>& starts,
                           int sig, int nth) {
  failure_sample s;
  s.worker = busy_worker(job, nth);
  const auto lost = "worker " + s.worker + " lost:";
  const std::string flowing = "records flowing again ";
  auto before = job.err();
  auto lost_before = count_of(before, lost);
  auto flowing_before = count_of(before, flowing);
  auto restarts_before = count_of(before, "; restart ");
  auto log = [&] { return job.log(); };
  const auto at = clock_type::now();
  job.worker(s.worker).signal(sig);
  s.detected_ms = wait_until(
      [&] { return count_of(job.err(), lost) > lost_before; },
      "worker " + s.worker + " to be detected as lost", detect_limit, log, at);
  // As Kubernetes would: the dead (or, by its liveness probe, the hung) pod
  // is replaced by a new one under the same name, which becomes the spare.
  job.start_worker(s.worker);
  ++starts[s.worker];
  s.recovered_ms =
      wait_until([&] { return count_of(job.err(), flowing) > flowing_before; },
                 "records flowing again", recover_limit, log, at);
  auto err = job.err();
  s.reported_ms = number_after(err, flowing, flowing_before);
  s.restarts = count_of(err, "; restart ") - restarts_before;
  return s;
}

std::vector<failure_sample> recovery(context& c, int sig, int times,
                                     const std::string& what,
                                     std::string& exit_note) {
  cluster job{c.self, c.dir + "/" + what, 3,
              std::vector<std::string>{"--records", "0", "--rate",
                                       recovery_rate, "--checkpoint-interval",
                                       "1s", "--restart-strategy",
                                       "fixed-delay", "--restart-delay", "0",
                                       "--restart-attempts", "50"}};
  note_command(c, "coordinator (recovery)", job.coordinator_argv(), job.dir());
  note_command(c, "4 workers w1..w4 (recovery)", job.worker_argv("w1"),
               job.dir());
  job.start_coordinator();
  std::map<std::string, int> starts;
  for (const char* id : {"w1", "w2", "w3", "w4"}) {
    job.start_worker(id);
    starts[id] = 1;
  }
  std::vector<failure_sample> samples;
  long long checkpoint = -1;
  for (int i = 0; i < times; ++i) {
    wait_until_steady(job, starts, checkpoint);
    samples.push_back(fail_worker(job, starts, sig, i));
    const auto& s = samples.back();
    std::fprintf(stderr,
                 "%s %d: worker %s detected after %.0f ms, records flowing "
                 "%.0f ms after the signal\n",
                 what.c_str(), i + 1, s.worker.c_str(), s.detected_ms,
                 s.recovered_ms);
    checkpoint = job.latest_checkpoint();
  }
  job.coordinator().signal(SIGTERM);
  exit_note += job.wait_for_end(exit_limit);
  return samples;
}

// -- report -------------------------------------------------------------------

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string throughput_section(const context& c,
                               const std::vector<throughput_run>& local,
                               const std::vector<throughput_run>& remote) {
  std::string out = "## a. W0 throughput, parallelism 2\n\n";
  out += format(
      "%llu records; records/s = records / the job's own `job finished "
      "after X s`. The cluster's time runs from the coordinator's start, so "
      "it includes the workers' start and registration; 'after first "
      "record' leaves that out.\n\n",
      static_cast<unsigned long long>(c.records));
  out +=
      "| setting | run | load avg | seconds | records/s | first record "
      "after (ms) | records/s after first record |\n"
      "|---|---:|---:|---:|---:|---:|---:|\n";
  auto rows = [&](const char* name, const std::vector<throughput_run>& runs) {
    for (std::size_t i = 0; i < runs.size(); ++i) {
      const auto& r = runs[i];
      const auto n = static_cast<double>(c.records);
      std::string startup = "-";
      std::string steady = "-";
      if (r.startup_ms >= 0) {
        startup = format("%.0f", r.startup_ms);
        steady = format("%.0f", n / (r.seconds - r.startup_ms / 1000));
      }
      out += format("| %s | %zu | %.2f | %.3f | %.0f | %s | %s |\n", name,
                    i + 1, r.load, r.seconds, n / r.seconds, startup.c_str(),
                    steady.c_str());
    }
  };
  rows("local role, 1 process, 2 threads", local);
  rows("coordinator + 2 workers x 1 slot, 1 thread each", remote);
  auto rates = [&](const std::vector<throughput_run>& runs) {
    std::vector<double> v;
    for (const auto& r : runs)
      v.push_back(static_cast<double>(c.records) / r.seconds);
    return v;
  };
  auto l = rates(local);
  auto r = rates(remote);
  out += "\n| setting | median records/s | range |\n|---|---:|---:|\n";
  out += format("| local role | %.0f | %.0f - %.0f |\n", median(l),
                *std::min_element(l.begin(), l.end()),
                *std::max_element(l.begin(), l.end()));
  out += format("| coordinator + 2 workers | %.0f | %.0f - %.0f |\n", median(r),
                *std::min_element(r.begin(), r.end()),
                *std::max_element(r.begin(), r.end()));
  out += format("\nAcross processes / local role (medians): **%.1f%%**.\n\n",
                100.0 * median(r) / median(l));
  return out;
}

std::string failure_table(const std::vector<failure_sample>& samples,
                          const char* signal_name) {
  auto out = format(
      "| # | worker | detected (ms after %s) | first record (ms after %s) | "
      "detection -> first record, as the coordinator printed (ms) | "
      "restarts |\n|---:|---|---:|---:|---:|---:|\n",
      signal_name, signal_name);
  std::vector<double> d;
  std::vector<double> r;
  std::vector<double> p;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const auto& s = samples[i];
    out += format("| %zu | %s | %.0f | %.0f | %.0f | %zu |\n", i + 1,
                  s.worker.c_str(), s.detected_ms, s.recovered_ms,
                  s.reported_ms, s.restarts);
    d.push_back(s.detected_ms);
    r.push_back(s.recovered_ms);
    p.push_back(s.reported_ms);
  }
  out += format("| median | | %.0f | %.0f | %.0f | |\n", median(d), median(r),
                median(p));
  out += format("| max | | %.0f | %.0f | %.0f | |\n\n",
                *std::max_element(d.begin(), d.end()),
                *std::max_element(r.begin(), r.end()),
                *std::max_element(p.begin(), p.end()));
  return out;
}

double max_of(const std::vector<failure_sample>& v,
              double failure_sample::*field) {
  double m = 0;
  for (const auto& s : v) m = std::max(m, s.*field);
  return m;
}

std::string goals(const std::vector<failure_sample>& killed,
                  const std::vector<failure_sample>& hung) {
  std::string out =
      "## Goals\n\nEvery run counts: a goal is met when the maximum is "
      "below it.\n\n| goal | max measured (ms) | met |\n|---|---:|---|\n";
  auto row = [&](const char* goal, double value, double limit) {
    out += format("| %s | %.0f | %s |\n", goal, value,
                  value < limit ? "met" : "**not met**");
  };
  row("killed worker detected < 1 s",
      max_of(killed, &failure_sample::detected_ms), 1000);
  row("hung worker detected < 3 s", max_of(hung, &failure_sample::detected_ms),
      3000);
  row("recovery < 3 s: killed worker, kill -> first record",
      max_of(killed, &failure_sample::recovered_ms), 3000);
  row("recovery < 3 s: hung worker, detection -> first record",
      max_of(hung, &failure_sample::reported_ms), 3000);
  return out + "\n";
}

int drive(context& c, int argc, char** argv) {
  // 300 M: at least 5 s for the faster setting (the local role, about
  // 48 M records/s on an idle 2-core machine), so startup weighs little.
  c.records = bench::number_flag(argc, argv, "--records", 300'000'000);
  auto report_path = bench::flag(argc, argv, "--report", "");
  c.self = fs::read_symlink("/proc/self/exe").string();
  const auto load = load_average();
  char tmpl[] = "/tmp/cluster-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  c.dir = tmpl;
  curl_global_init(CURL_GLOBAL_DEFAULT);

  // Interleaved, so a change in the machine's load hits both settings.
  std::vector<throughput_run> local;
  std::vector<throughput_run> remote;
  for (int i = 0; i < throughput_runs; ++i) {
    local.push_back(run_local(c));
    std::fprintf(stderr, "local %d: %.3f s\n", i + 1, local.back().seconds);
    remote.push_back(run_cluster(c));
    std::fprintf(stderr, "cluster %d: %.3f s\n", i + 1, remote.back().seconds);
  }
  std::string exit_note;
  auto killed = recovery(c, SIGKILL, kills, "kill", exit_note);
  auto hung = recovery(c, SIGSTOP, hangs, "hang", exit_note);
  curl_global_cleanup();
  std::error_code ec;
  fs::remove_all(c.dir, ec);

  std::string out = "# Cluster roles: W0 across processes, worker failures\n\n";
  out += format(
      "Machine: %u hardware threads (nproc), 1-minute load average %.2f at "
      "the start. Every process runs on loopback on this machine.\n\n",
      std::thread::hardware_concurrency(), load);
  out += "Commands (`$DIR` a temporary folder, ports picked free):\n\n";
  for (const auto& cmd : c.commands) out += "- " + cmd + "\n";
  out += "\n" + throughput_section(c, local, remote);
  out += format(
      "## b. Killed worker (SIGKILL), %d times\n\nCoordinator + 3 workers "
      "x 1 slot + 1 spare, parallelism 3, %s records/s, checkpoints every "
      "1 s. Each time, after a checkpoint newer than the last failure, a "
      "worker that hosts tasks (REST `used > 0`) is killed; once it is "
      "detected it is restarted under its id and becomes the spare.\n\n",
      kills, recovery_rate);
  out += failure_table(killed, "SIGKILL");
  out += format(
      "## c. Hung worker (SIGSTOP), %d times\n\nThe same, with SIGSTOP: only "
      "heartbeats (250 ms, peer timeout 2 s) can tell. Once detected, the "
      "worker is killed and restarted.\n\n",
      hangs);
  out += failure_table(hung, "SIGSTOP");
  out += goals(killed, hung);
  if (!exit_note.empty()) out += "Workers at the end: " + exit_note + "\n";
  bench::publish(out, report_path);
  return 0;
}

bool job_mode(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--role") == 0 ||
        std::strncmp(argv[i], "--role=", 7) == 0)
      return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (job_mode(argc, argv)) return run_job(argc, argv);
  context c;
  try {
    return drive(c, argc, argv);
  } catch (const std::exception& e) {
    // The children are gone (destructors); their logs stay for a look.
    std::fprintf(stderr, "cluster_bench: %s\nlogs kept in %s\n", e.what(),
                 c.dir.c_str());
    return 1;
  }
}
