#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "stream/environment.hpp"
#include "stream/status.hpp"

namespace stream {

class metrics_registry;

/// How `stream::run` validates an application option's value.
enum class option_kind : std::uint8_t {
  text,              ///< any string
  unsigned_integer,  ///< 0 .. 2^64-1
  number,            ///< a finite decimal number
};

/// An option of the topology binary itself (e.g. `--input`), parsed by
/// `stream::run` next to the common options and read with
/// `environment::arg`.
struct app_option {
  std::string name;           ///< without dashes, e.g. "input"
  std::string help;           ///< one line for `--help`
  std::string default_value;  ///< used when absent; may be empty
  option_kind kind = option_kind::text;
  /// Inclusive bounds of a numeric option's value; a value outside is a
  /// usage error (exit code 2) that names them.
  double min_value = -std::numeric_limits<double>::infinity();
  double max_value = std::numeric_limits<double>::infinity();
};

/// Builds the job into the environment; called once per process.
using build_function = std::function<void(environment&)>;

/// The entry point of a topology binary: parses the common options (flags,
/// `--config FILE` in INI format, `STREAM_*` environment variables, in that
/// order of precedence) and `app_options`, builds the job and runs it in the
/// local role. Returns the process exit code: 0 when the job finished or was
/// stopped by SIGINT/SIGTERM, 1 when it failed, 2 for bad options. Never
/// throws; prints errors to stderr.
int run(int argc, char** argv, const build_function& build,
        const std::vector<app_option>& app_options = {});

/// Optional hooks into a job run by `execute` (tests, embedding).
struct execution_hooks {
  /// Metrics go here when set, so the caller can read them; otherwise a
  /// registry is created for the run.
  std::shared_ptr<metrics_registry> registry;
  /// Called with the bound port once `/metrics` is served.
  std::function<void(std::uint16_t port)> on_metrics_ready;
  /// When it becomes true, the job stops: with a savepoint and without
  /// draining by default; with `job_options::drain_on_stop`, sources end
  /// their input and the job drains and finishes. May be null.
  const std::atomic<bool>* stop = nullptr;
  /// Each increment asks for a savepoint (SIGUSR1). May be null.
  const std::atomic<std::uint32_t>* savepoints = nullptr;
  /// Coordinator role: called with the port workers connect to.
  std::function<void(std::uint16_t port)> on_cluster_ready;
  /// Coordinator role: called with the port of the REST API.
  std::function<void(std::uint16_t port)> on_rest_ready;
};

/// What a finished job reports.
struct job_report {
  std::chrono::nanoseconds elapsed{0};
  std::uint64_t source_records = 0;  ///< records emitted by all sources
  bool stopped = false;              ///< ended by a stop request
  std::uint32_t restarts = 0;        ///< restarts after failures
  std::string savepoint;             ///< folder of the last savepoint taken
};

/// Runs the job built in `env` in this process (local role) and returns when
/// it finished, failed or was stopped. Errors: `errc::invalid_config` for a
/// bad job or options or a checkpoint of another job, `errc::operator_failed`
/// naming the operator, subtask and exception message when user code threw
/// and the restart strategy gave up, `errc::io_error` when a file or the
/// metrics port could not be opened, `errc::not_found` /
/// `errc::malformed_data` for a missing or broken `--restore` checkpoint.
result<job_report> execute(environment& env, const execution_hooks& hooks = {});

}  // namespace stream
