#include "stream/run.hpp"

#include <boost/program_options.hpp>
#include <charconv>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>

namespace po = boost::program_options;

namespace stream {

namespace {

std::atomic<bool> stop_requested{false};
std::atomic<int> signals_seen{0};
std::atomic<std::uint32_t> savepoint_requests{0};

extern "C" void on_savepoint_signal(int) { savepoint_requests.fetch_add(1); }

extern "C" void on_stop_signal(int) {
  stop_requested.store(true);
  // A second signal means "now": skip the graceful drain.
  if (signals_seen.fetch_add(1) >= 1) std::_Exit(130);
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  struct sigaction usr {};
  usr.sa_handler = on_savepoint_signal;
  sigemptyset(&usr.sa_mask);
  sigaction(SIGUSR1, &usr, nullptr);
}

/// A bad option: printed with a hint, exit code 2.
struct usage_error {
  std::string message;
};

/// `text` as shown in an error: a value may be a whole config line of
/// megabytes, which must not be echoed back in full.
std::string clip(const std::string& text, std::size_t limit = 80) {
  if (text.size() <= limit) return text;
  return text.substr(0, limit) + "... (" + std::to_string(text.size()) +
         " characters)";
}

std::uint64_t parse_unsigned(const std::string& name, const std::string& text,
                             std::uint64_t lo, std::uint64_t hi) {
  std::uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || ptr != text.data() + text.size() || text.empty())
    throw usage_error{"invalid value '" + clip(text) + "' for --" + name +
                      ": expected a whole number"};
  if (v < lo || v > hi)
    throw usage_error{"invalid value '" + clip(text) + "' for --" + name +
                      ": must be between " + std::to_string(lo) + " and " +
                      std::to_string(hi)};
  return v;
}

double parse_number(const std::string& name, const std::string& text) {
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v))
    throw usage_error{"invalid value '" + clip(text) + "' for --" + name +
                      ": expected a number"};
  return v;
}

/// Checks an application option's value against its kind and bounds.
void check_app_value(const app_option& a, const std::string& value) {
  if (value.empty() || a.kind == option_kind::text) return;
  double v =
      a.kind == option_kind::unsigned_integer
          ? static_cast<double>(parse_unsigned(a.name, value, 0, UINT64_MAX))
          : parse_number(a.name, value);
  auto bound = [](double b) {
    std::ostringstream out;
    out << b;
    return out.str();
  };
  if (v < a.min_value || v > a.max_value) {
    std::string range =
        a.max_value == std::numeric_limits<double>::infinity()
            ? "at least " + bound(a.min_value)
            : "between " + bound(a.min_value) + " and " + bound(a.max_value);
    throw usage_error{"invalid value '" + clip(value) + "' for --" + a.name +
                      ": must be " + range};
  }
}

std::chrono::microseconds parse_time(const std::string& name,
                                     const std::string& text) {
  auto d = parse_duration(text);
  if (!d)
    throw usage_error{"invalid value for --" + name + ": " +
                      d.error().message()};
  return *d;
}

/// A duration option kept in milliseconds: a non-zero value below 1 ms
/// would silently become "off".
std::chrono::milliseconds parse_time_ms(const std::string& name,
                                        const std::string& text) {
  auto d = parse_time(name, text);
  if (d.count() > 0 && d < std::chrono::milliseconds{1})
    throw usage_error{"invalid value '" + text + "' for --" + name +
                      ": must be 0 or at least 1ms"};
  return std::chrono::duration_cast<std::chrono::milliseconds>(d);
}

struct common_option {
  const char* name;
  const char* value_name;
  const char* help;
};

// Every common option, in `--help` order. Values are parsed as text and
// validated below, so every bad value gets the same kind of message.
const common_option common_options[] = {
    {"config", "FILE", "INI file with options (name = value, no dashes)"},
    {"job-name", "NAME",
     "job name, the 'job' label of every metric "
     "(default: the binary's name)"},
    {"parallelism", "N", "default parallelism of operators (default: 1)"},
    {"max-parallelism", "N",
     "key groups: the upper bound of keyed parallelism, 1..32768 "
     "(default: 128)"},
    {"batch-size", "N", "records per channel batch, 1..65536 (default: 1024)"},
    {"flush-timeout", "DURATION",
     "send a partial batch after this long, e.g. 5ms (default: 100ms)"},
    {"channel-credits", "N",
     "credit window per channel in batches, 1..4096 (default: 8)"},
    {"threads", "N", "actor scheduler threads, 0 = one per core (default: 0)"},
    {"metrics-address", "ADDR",
     "bind address of /metrics, empty disables it (default: 0.0.0.0)"},
    {"metrics-port", "PORT",
     "port of /metrics, 0 picks a free one "
     "(default: 9249)"},
    {"stop-after", "DURATION",
     "stop after this long as on SIGTERM (a savepoint, no drain; see "
     "--drain), 0 = run until the input ends (default: 0)"},
    {"stop-timeout", "DURATION",
     "a stop that has no savepoint after this long (checkpoint hung, "
     "recovering, waiting for slots) cancels the job, exit code 1 "
     "(default: 20s)"},
    {"status-interval", "DURATION",
     "print a progress line this often, 0 disables (default: 0)"},
    {"watermark-interval", "DURATION",
     "how often timestamp assigners emit watermarks, 0 = after every batch "
     "(default: 200ms)"},
    {"state-backend", "NAME",
     "where keyed state lives: memory or leveldb (default: memory)"},
    {"state-dir", "DIR",
     "directory of the leveldb state backend (default: /tmp/stream-state)"},
    {"state-cache-entries", "N",
     "leveldb backend: decoded entries cached per state, 0 = write through "
     "(default: 65536)"},
    {"checkpoint-interval", "DURATION",
     "take a checkpoint this often, 0 disables checkpoints (default: 0)"},
    {"checkpoint-timeout", "DURATION",
     "abort a checkpoint not complete after this long (default: 1m)"},
    {"checkpoint-min-pause", "DURATION",
     "least time between two checkpoints (default: 0)"},
    {"checkpoint-dir", "DIR",
     "checkpoints go to DIR/<job>/chk-<id> "
     "(default: /tmp/stream-checkpoints)"},
    {"savepoint-dir", "DIR",
     "savepoints go to DIR/<job>/sp-<id> (default: the checkpoint dir)"},
    {"checkpoints-retained", "N",
     "completed checkpoints kept, 1..1000 (default: 3)"},
    {"restore", "PATH",
     "start from this checkpoint or savepoint folder, or from the newest "
     "usable checkpoint or savepoint under this directory"},
    {"rescale-plan", "NAME",
     "a restore at another parallelism: minimal (the fewest key groups "
     "move) or ranges (contiguous, as Flink) (default: minimal)"},
    {"restart-strategy", "NAME",
     "on a task failure: none, fixed-delay, exponential, failure-rate or "
     "auto = exponential with checkpoints, none without (default: auto)"},
    {"restart-attempts", "N",
     "restarts before the job fails (exponential: 0 = unlimited; "
     "failure-rate: failures per interval) (default: 10)"},
    {"restart-delay", "DURATION",
     "delay before a restart; exponential: the first one (default: 100ms)"},
    {"restart-max-delay", "DURATION",
     "exponential: cap of the delay (default: 10s)"},
    {"restart-backoff-multiplier", "X",
     "exponential: factor between delays, 1..100 (default: 2)"},
    {"restart-failure-interval", "DURATION",
     "failure-rate: the window failures are counted in; exponential: the "
     "backoff resets after this long without failure (default: 1m)"},
    {"role", "ROLE",
     "local (everything in this process), coordinator or worker "
     "(default: local)"},
    {"coordinator", "HOST:PORT",
     "worker: the coordinator to join; retried with backoff until it is up "
     "(default: 127.0.0.1:6123)"},
    {"cluster-port", "PORT",
     "coordinator: port the workers connect to, 0 picks a free one "
     "(default: 6123)"},
    {"slots", "N",
     "worker: task slots offered; a job needs as many as its highest "
     "parallelism (default: 1)"},
    {"worker-id", "NAME",
     "worker: name in logs and the REST API "
     "(default: <host>-<pid>)"},
    {"data-port", "PORT",
     "worker: port other workers send data to, 0 picks a free one "
     "(default: 0)"},
    {"advertise-host", "HOST",
     "worker: host name or address other workers reach it at "
     "(default: this host's name)"},
    {"rest-address", "ADDR",
     "coordinator: bind address of the REST API and /metrics, empty "
     "disables them (default: 0.0.0.0)"},
    {"rest-port", "PORT",
     "coordinator: port of the REST API and /metrics, 0 picks a free one "
     "(default: 8081)"},
    {"rest-token", "TOKEN",
     "coordinator: require 'Authorization: Bearer TOKEN' on the REST API "
     "(default: none)"},
    {"tls-cert", "FILE",
     "TLS between processes: this process's PEM certificate (with "
     "--tls-key and --tls-ca)"},
    {"tls-key", "FILE", "TLS: the PEM private key of --tls-cert"},
    {"tls-ca", "FILE",
     "TLS: PEM CA certificate that every peer's certificate must be signed "
     "by"},
    {"heartbeat-interval", "DURATION",
     "heartbeats between processes (default: 250ms)"},
    {"peer-timeout", "DURATION",
     "a peer silent this long is taken for dead, 0 = never (default: 2s)"},
};

std::string env_name(const std::string& option) {
  std::string out = "STREAM_";
  for (char c : option)
    out += c == '-' ? '_' : static_cast<char>(std::toupper(c));
  return out;
}

struct parsed {
  job_options options;
  std::map<std::string, std::string> app_values;
  bool no_chaining = false;
  bool help = false;
};

po::options_description describe(const std::vector<app_option>& app,
                                 po::options_description& common,
                                 po::options_description& application) {
  common.add_options()("help,h", "print this help and exit");
  for (const auto& o : common_options) {
    common.add_options()(
        o.name, po::value<std::string>()->value_name(o.value_name), o.help);
  }
  common.add_options()(
      "parallelism-of",
      po::value<std::vector<std::string>>()->composing()->value_name("NAME=N"),
      "parallelism of one operator, by name, over its own and "
      "--parallelism (e.g. windows=3); repeatable");
  common.add_options()("no-chaining", po::bool_switch(),
                       "give every operator its own actor");
  common.add_options()(
      "drain", po::bool_switch(),
      "on SIGINT/SIGTERM or --stop-after, end the input for good and fire "
      "every window instead of stopping with a savepoint; the final "
      "checkpoint is marked drained and a restore refuses it");
  common.add_options()(
      "restore-final", po::bool_switch(),
      "restore even a final checkpoint (taken after the input ended or was "
      "drained); records read after it are late for its windows");
  for (const auto& o : app) {
    std::string help = o.help;
    if (!o.default_value.empty()) help += " (default: " + o.default_value + ")";
    application.add_options()(o.name.c_str(),
                              po::value<std::string>()->value_name("VALUE"),
                              help.c_str());
  }
  po::options_description all;
  all.add(common).add(application);
  all.add_options()("positional",
                    po::value<std::vector<std::string>>()->multitoken());
  return all;
}

parsed parse(int argc, char** argv, const std::vector<app_option>& app) {
  po::options_description common{"Common options"};
  po::options_description application{"Application options"};
  auto all = describe(app, common, application);
  po::variables_map vm;
  try {
    po::positional_options_description positional;
    positional.add("positional", -1);
    po::store(po::command_line_parser(argc, argv)
                  .options(all)
                  .positional(positional)
                  .run(),
              vm);
    if (vm.count("positional") != 0)
      throw usage_error{"unexpected argument '" +
                        vm["positional"].as<std::vector<std::string>>()[0] +
                        "'"};
    if (vm.count("help") != 0) {
      std::cout << "Usage: " << argv[0] << " [options]\n\n"
                << "Every option can also be set in the --config file or as "
                   "an environment variable STREAM_<NAME> (e.g. "
                   "STREAM_PARALLELISM=4); flags win over the environment, "
                   "which wins over the file.\n\n"
                << common;
      if (!app.empty()) std::cout << "\n" << application;
      return parsed{{}, {}, false, true};
    }
    po::store(
        po::parse_environment(all,
                              [&all](const std::string& var) {
                                for (const auto& o : all.options()) {
                                  const auto& name = o->long_name();
                                  if (name == "help" || name == "positional")
                                    continue;
                                  if (env_name(name) == var)
                                    return o->long_name();
                                }
                                return std::string{};
                              }),
        vm);
    if (vm.count("config") != 0) {
      auto path = vm["config"].as<std::string>();
      std::error_code ec;
      if (!std::filesystem::is_regular_file(path, ec))
        throw usage_error{"config file '" + clip(path) + "' " +
                          (std::filesystem::exists(path, ec)
                               ? "is not a regular file"
                               : "does not exist")};
      std::ifstream file{path};
      if (!file)
        throw usage_error{"cannot open config file '" + clip(path) + "'"};
      po::store(po::parse_config_file(file, all, false), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    // Its message quotes the offending value, which may be huge.
    throw usage_error{clip(e.what(), 300)};
  }
  parsed out;
  auto text = [&](const char* name) -> const std::string* {
    return vm.count(name) != 0 ? &vm[name].as<std::string>() : nullptr;
  };
  auto& o = out.options;
  std::string self = argv[0];
  o.job_name = self.substr(self.find_last_of('/') + 1);
  if (auto* v = text("job-name")) o.job_name = *v;
  // Ranges live in job_options::validate, the one place that knows them.
  auto u32 = [&](const char* name, std::uint32_t& field) {
    if (auto* v = text(name))
      field =
          static_cast<std::uint32_t>(parse_unsigned(name, *v, 0, UINT32_MAX));
  };
  u32("max-parallelism", o.max_parallelism);
  u32("parallelism", o.parallelism);
  if (vm.count("parallelism-of") != 0) {
    for (const auto& v : vm["parallelism-of"].as<std::vector<std::string>>()) {
      const auto eq = v.find('=');
      if (eq == std::string::npos || eq == 0)
        throw usage_error{"invalid value '" + clip(v) +
                          "' for --parallelism-of: expected NAME=N, e.g. "
                          "windows=3"};
      const std::string name = v.substr(0, eq);
      const auto p = static_cast<std::uint32_t>(parse_unsigned(
          "parallelism-of " + name, v.substr(eq + 1), 1, max_max_parallelism));
      if (!o.operator_parallelism.emplace(name, p).second)
        throw usage_error{"--parallelism-of names '" + clip(name) + "' twice"};
    }
  }
  u32("batch-size", o.batch_size);
  u32("channel-credits", o.channel_credits);
  u32("threads", o.threads);
  if (auto* v = text("flush-timeout"))
    o.flush_timeout = parse_time("flush-timeout", *v);
  if (auto* v = text("metrics-address")) o.metrics_address = *v;
  if (auto* v = text("metrics-port"))
    o.metrics_port = static_cast<std::uint16_t>(
        parse_unsigned("metrics-port", *v, 0, 65535));
  if (auto* v = text("stop-after"))
    o.stop_after = parse_time_ms("stop-after", *v);
  if (auto* v = text("stop-timeout"))
    o.stop_timeout = parse_time_ms("stop-timeout", *v);
  if (auto* v = text("status-interval"))
    o.status_interval = parse_time_ms("status-interval", *v);
  if (auto* v = text("watermark-interval"))
    o.watermark_interval = parse_time_ms("watermark-interval", *v);
  if (auto* v = text("state-backend")) o.state_backend = *v;
  if (auto* v = text("state-dir")) o.state_dir = *v;
  u32("state-cache-entries", o.state_cache_entries);
  if (auto* v = text("checkpoint-interval"))
    o.checkpoint_interval = parse_time_ms("checkpoint-interval", *v);
  if (auto* v = text("checkpoint-timeout"))
    o.checkpoint_timeout = parse_time_ms("checkpoint-timeout", *v);
  if (auto* v = text("checkpoint-min-pause"))
    o.checkpoint_min_pause = parse_time_ms("checkpoint-min-pause", *v);
  if (auto* v = text("checkpoint-dir")) o.checkpoint_dir = *v;
  if (auto* v = text("savepoint-dir")) o.savepoint_dir = *v;
  u32("checkpoints-retained", o.checkpoints_retained);
  if (auto* v = text("restore")) o.restore = *v;
  if (auto* v = text("rescale-plan")) o.rescale_plan = *v;
  o.drain_on_stop = vm["drain"].as<bool>();
  o.restore_final = vm["restore-final"].as<bool>();
  if (auto* v = text("restart-strategy")) o.restart_strategy = *v;
  u32("restart-attempts", o.restart_attempts);
  if (auto* v = text("restart-delay"))
    o.restart_delay = parse_time_ms("restart-delay", *v);
  if (auto* v = text("restart-max-delay"))
    o.restart_max_delay = parse_time_ms("restart-max-delay", *v);
  if (auto* v = text("restart-backoff-multiplier"))
    o.restart_backoff_multiplier =
        parse_number("restart-backoff-multiplier", *v);
  if (auto* v = text("restart-failure-interval"))
    o.restart_failure_interval = parse_time_ms("restart-failure-interval", *v);
  if (auto* v = text("role")) o.role = *v;
  if (auto* v = text("coordinator")) o.coordinator = *v;
  if (auto* v = text("cluster-port"))
    o.cluster_port = static_cast<std::uint16_t>(
        parse_unsigned("cluster-port", *v, 0, 65535));
  u32("slots", o.slots);
  if (auto* v = text("worker-id")) o.worker_id = *v;
  if (auto* v = text("data-port"))
    o.data_port =
        static_cast<std::uint16_t>(parse_unsigned("data-port", *v, 0, 65535));
  if (auto* v = text("advertise-host")) o.advertise_host = *v;
  if (auto* v = text("rest-address")) o.rest_address = *v;
  if (auto* v = text("rest-port"))
    o.rest_port =
        static_cast<std::uint16_t>(parse_unsigned("rest-port", *v, 0, 65535));
  if (auto* v = text("rest-token")) o.rest_token = *v;
  if (auto* v = text("tls-cert")) o.tls_cert = *v;
  if (auto* v = text("tls-key")) o.tls_key = *v;
  if (auto* v = text("tls-ca")) o.tls_ca = *v;
  if (auto* v = text("heartbeat-interval"))
    o.heartbeat_interval = parse_time_ms("heartbeat-interval", *v);
  if (auto* v = text("peer-timeout"))
    o.peer_timeout = parse_time_ms("peer-timeout", *v);
  out.no_chaining = vm["no-chaining"].as<bool>();
  if (auto st = o.validate(); !st.ok()) throw usage_error{st.message()};
  for (const auto& a : app) {
    const auto* v = text(a.name.c_str());
    std::string value = v != nullptr ? *v : a.default_value;
    check_app_value(a, value);
    out.app_values[a.name] = value;
  }
  return out;
}

}  // namespace

int run(int argc, char** argv, const build_function& build,
        const std::vector<app_option>& app_options) {
  const char* prog = argc > 0 ? argv[0] : "stream";
  try {
    parsed args;
    try {
      args = parse(argc, argv, app_options);
    } catch (const usage_error& e) {
      std::fprintf(stderr, "%s: error: %s\nTry '%s --help' for the options.\n",
                   prog, e.message.c_str(), prog);
      return 2;
    }
    if (args.help) return 0;
    environment env{args.options};
    for (auto& [k, v] : args.app_values) env.set_arg(k, v);
    if (args.no_chaining) env.disable_chaining();
    try {
      build(env);
    } catch (const std::invalid_argument& e) {
      // The topology refused an option value or a setting: a usage error.
      std::fprintf(stderr, "%s: error: %s\nTry '%s --help' for the options.\n",
                   prog, e.what(), prog);
      return 2;
    }
    install_signal_handlers();
    execution_hooks hooks;
    hooks.stop = &stop_requested;
    hooks.savepoints = &savepoint_requests;
    hooks.on_metrics_ready = [&](std::uint16_t port) {
      std::fprintf(stderr, "%s: metrics at http://%s:%u/metrics\n", prog,
                   env.options().metrics_address.c_str(),
                   static_cast<unsigned>(port));
    };
    auto report = execute(env, hooks);
    if (!report) {
      std::fprintf(stderr, "%s: job failed: %s\n", prog,
                   report.error().message().c_str());
      return report.error().code() == errc::invalid_config ? 2 : 1;
    }
    if (env.options().role == "worker") {
      std::fprintf(stderr, "%s: worker %s\n", prog,
                   report->stopped ? "stopped" : "done: the job ended");
      return 0;
    }
    auto secs = std::chrono::duration<double>(report->elapsed).count();
    if (env.options().role == "coordinator")
      std::fprintf(stderr, "%s: job %s after %.3f s\n", prog,
                   report->stopped ? "stopped" : "finished", secs);
    else
      std::fprintf(
          stderr,
          "%s: job %s after %.3f s, %llu records from sources "
          "(%.0f records/s)\n",
          prog, report->stopped ? "stopped" : "finished", secs,
          static_cast<unsigned long long>(report->source_records),
          secs > 0 ? static_cast<double>(report->source_records) / secs : 0.0);
    if (report->restarts > 0)
      std::fprintf(stderr, "%s: %u restarts after failures\n", prog,
                   report->restarts);
    if (!report->savepoint.empty())
      std::fprintf(stderr, "%s: last savepoint: %s\n", prog,
                   report->savepoint.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", prog, e.what());
    return 1;
  }
}

}  // namespace stream
