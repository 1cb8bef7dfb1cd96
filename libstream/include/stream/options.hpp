#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "stream/status.hpp"

namespace stream {

/// Job-wide settings shared by every role. Plain data with documented
/// defaults; `stream::run` fills it from flags, an INI file and `STREAM_*`
/// environment variables, tests fill it directly.
struct job_options {
  /// Name of the job: the `job` label of every metric.
  std::string job_name = "job";
  /// Default parallelism of operators that do not set their own.
  std::uint32_t parallelism = 1;
  /// Parallelism of single operators, by name (`--parallelism-of NAME=N`,
  /// repeatable): over the operator's own and the default. A name that is
  /// not an operator of the job, or a value above `max_parallelism`, is a
  /// plan error (`errc::invalid_config`).
  std::map<std::string, std::uint32_t> operator_parallelism;
  /// Number of key groups, the upper bound of any keyed parallelism
  /// (1..32768).
  std::uint32_t max_parallelism = 128;
  /// Records per batch on a channel (1..65536).
  std::uint32_t batch_size = 1024;
  /// A partially filled batch is sent at the latest after this long.
  std::chrono::microseconds flush_timeout = std::chrono::milliseconds{100};
  /// Credit window per channel, in batches: a sender never has more batches
  /// in flight or queued at the receiver than this (1..4096).
  std::uint32_t channel_credits = 8;
  /// Worker threads of the actor system; 0 means one per core.
  std::uint32_t threads = 0;
  /// Address and TCP port of the `/metrics` endpoint; port 0 picks a free
  /// port, and an empty address disables the endpoint.
  std::string metrics_address = "0.0.0.0";
  std::uint16_t metrics_port = 9249;
  /// Stop gracefully (as on SIGINT) after this long; zero runs until the
  /// input ends.
  std::chrono::milliseconds stop_after{0};
  /// How often a status line is printed to stderr; zero disables it.
  std::chrono::milliseconds status_interval{0};
  /// How often timestamp assigners emit a watermark; zero emits one after
  /// every batch that advances it (deterministic, for tests).
  std::chrono::milliseconds watermark_interval{200};
  /// Where keyed state lives: "memory" (hash maps per key group) or
  /// "leveldb" (one database per operator instance under `state_dir`).
  std::string state_backend = "memory";
  /// Directory of the LevelDB state backend; each operator instance owns
  /// `<state_dir>/<job>/<operator>-<subtask>`.
  std::string state_dir = "/tmp/stream-state";
  /// LevelDB backend: decoded entries each state keeps in memory before it
  /// writes back to the database (0 = write through).
  std::uint32_t state_cache_entries = 65536;

  /// Periodic checkpoints: how often the coordinator starts one; zero
  /// disables them (savepoints still work).
  std::chrono::milliseconds checkpoint_interval{0};
  /// A checkpoint not complete after this long is aborted and counted as
  /// failed; the job goes on.
  std::chrono::milliseconds checkpoint_timeout{std::chrono::minutes{1}};
  /// Least time between the end of one checkpoint and the start of the next.
  std::chrono::milliseconds checkpoint_min_pause{0};
  /// Checkpoints of a job go to `<checkpoint_dir>/<job>/chk-<id>`.
  std::string checkpoint_dir = "/tmp/stream-checkpoints";
  /// Savepoints go to `<savepoint_dir>/<job>/sp-<id>`; empty means
  /// `checkpoint_dir`. Savepoints are never deleted by the runtime.
  std::string savepoint_dir;
  /// Completed checkpoints kept; older ones are deleted (1..1000).
  std::uint32_t checkpoints_retained = 3;
  /// Start from this checkpoint or savepoint folder, or from the newest
  /// usable checkpoint under this directory; empty starts fresh.
  std::string restore;
  /// What a stop request (SIGINT, SIGTERM, --stop-after) does. By default
  /// (false) the job stops with a savepoint and without draining, as
  /// `flink stop` does: the sources keep their position, open windows stay
  /// open, and `--restore` of the savepoint continues exactly where it
  /// stopped. True drains instead: the sources end their input for good,
  /// every open window fires and, with checkpoints on, a final checkpoint
  /// marked drained is taken, which a restore refuses (see
  /// `restore_final`).
  bool drain_on_stop = false;
  /// How long a stop may take before the job is cancelled without a
  /// savepoint (a checkpoint hung, tasks recovering or waiting for slots);
  /// the process then ends with exit code 1 and the last completed
  /// checkpoint stays the restore point. At least 100 ms.
  std::chrono::milliseconds stop_timeout{std::chrono::seconds{20}};
  /// Allow `--restore` (and a coordinator's recovery) from a final
  /// checkpoint: one taken after the input ended or was drained. Its event
  /// time is at the end, so windows of records read later are dropped as
  /// late; a warning says so. Off: such a restore is refused.
  bool restore_final = false;
  /// How a restore at another parallelism lays out the key groups of a
  /// keyed operator: "minimal" (the fewest move, balanced to one key group)
  /// or "ranges" (contiguous ranges, as Flink). At the same parallelism the
  /// checkpoint's table is kept either way.
  std::string rescale_plan = "minimal";

  /// What happens when a task fails: "none" (the job fails), "fixed-delay",
  /// "exponential" (backoff) or "failure-rate"; "auto" is "exponential" when
  /// checkpoints are enabled and "none" otherwise.
  std::string restart_strategy = "auto";
  /// fixed-delay and exponential: restarts before the job fails (0 =
  /// unlimited for exponential); failure-rate: failures allowed per
  /// `restart_failure_interval`.
  std::uint32_t restart_attempts = 10;
  /// Delay before a restart (exponential: the first delay).
  std::chrono::milliseconds restart_delay{100};
  /// Exponential: the cap of the delay.
  std::chrono::milliseconds restart_max_delay{std::chrono::seconds{10}};
  /// Exponential: factor between consecutive delays (1..100).
  double restart_backoff_multiplier = 2.0;
  /// Exponential: the backoff starts over after this long without a
  /// failure. Failure-rate: the window failures are counted in.
  std::chrono::milliseconds restart_failure_interval{std::chrono::minutes{1}};

  /// Which part of the job this process runs: "local" (coordinator and
  /// tasks in one process), "coordinator" or "worker".
  std::string role = "local";
  /// Worker: where the coordinator listens, "host:port".
  std::string coordinator = "127.0.0.1:6123";
  /// Coordinator: the port it listens on for workers (0 picks a free one).
  std::uint16_t cluster_port = 6123;
  /// Worker: the port other workers reach it on (0 picks a free one) and the
  /// host name or address they use; empty means this host's name.
  std::uint16_t data_port = 0;
  std::string advertise_host;
  /// Worker: task slots it offers; a job needs as many slots as its highest
  /// operator parallelism (one subtask of every operator per slot).
  std::uint32_t slots = 1;
  /// Worker: its name in logs and the REST API; empty means "<host>-<pid>".
  std::string worker_id;
  /// Coordinator: the REST API (and /metrics) address and port; an empty
  /// address disables it. A non-empty token is required as
  /// "Authorization: Bearer <token>" on every /api/ request.
  std::string rest_address = "0.0.0.0";
  std::uint16_t rest_port = 8081;
  std::string rest_token;
  /// TLS between processes: PEM certificate and key of this process and the
  /// CA file its peers' certificates must be signed by; all three or none.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  /// Failure detection between processes: heartbeat period, and how long a
  /// silent peer may stay silent before it is considered dead (0 = off).
  std::chrono::milliseconds heartbeat_interval{250};
  std::chrono::milliseconds peer_timeout{2000};

  /// Checks every field against its documented range; the error names the
  /// offending option.
  status validate() const;
};

/// Parses a duration such as "100ms", "2s", "250us", "1m" or "0". A bare
/// number is rejected unless it is 0, so a unit is never guessed.
result<std::chrono::microseconds> parse_duration(const std::string& text);

}  // namespace stream
