#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "messages.hpp"
#include "stream/checkpoint/storage.hpp"
#include "stream/checkpoint/writer.hpp"
#include "stream/job_graph.hpp"
#include "stream/metrics.hpp"
#include "stream/restart.hpp"

namespace stream::actors {

/// Milliseconds between two instants, for logs and the REST API.
inline double ms_between(std::chrono::steady_clock::time_point from,
                         std::chrono::steady_clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

inline const char* kind_name(checkpoint::snapshot_kind kind) {
  return kind == checkpoint::snapshot_kind::savepoint ? "savepoint"
                                                      : "checkpoint";
}

/// What the coordinator needs. The pointed-to objects outlive it.
struct coordinator_config {
  const job_graph* graph = nullptr;
  const execution_plan* plan = nullptr;
  metrics_registry* registry = nullptr;
  job_options options;
  /// The checkpoint given with --restore, already resolved; may be null.
  std::shared_ptr<const checkpoint::restore_point> restore;
  caf::actor runner;  ///< Receives the `result`.
  /// `environment::definition()` of the job: a worker must register with
  /// the same.
  std::string definition;
  /// Local role: the coordinator hosts the tasks itself, on a worker actor
  /// of its own with unlimited slots. Otherwise workers register.
  bool local = true;
};

/// The job's coordinator: deploys the tasks, runs barrier checkpoints and
/// savepoints, and fails over.
///
/// Checkpoint n: the folder is created, every running source (and every
/// task that already finished) gets `trigger(n)`; barriers align
/// downstream; every task acknowledges with its state handles from the
/// background writer; with all acknowledgements in, the metadata is written
/// atomically, old checkpoints are deleted, and every task hears
/// `complete(n)` (sinks commit). One checkpoint at a time; one that times out
/// or is declined is aborted, counted and deleted, and the job goes on.
///
/// A failing task (exception, crashed actor) makes the coordinator kill
/// every task, wait the restart strategy's delay and redeploy from the
/// newest complete checkpoint that still verifies, falling back to older
/// ones. Past the strategy's limit the job fails.
///
/// When every task finished, a final checkpoint commits the last output
/// (with checkpoints enabled), then the tasks shut down. A stop request
/// takes a savepoint and shuts down without draining (or, with
/// `drain_on_stop`, drains the sources); one arriving while nothing runs
/// (recovering, waiting for slots) ends the job at once, and one not done
/// within `stop_timeout` cancels the job (failure `errc::cancelled`).
///
/// Reports `result(code, message, stopped, savepoint folder, restarts)` to
/// the runner once every task is gone; code 0 is success.
class coordinator final : public caf::event_based_actor {
 public:
  coordinator(caf::actor_config& cfg, coordinator_config config);

  caf::behavior make_behavior() override;
  void on_exit() override;
  const char* name() const override { return "stream.coordinator"; }

 private:
  using clock = std::chrono::steady_clock;

  struct task_slot {
    caf::actor handle;       ///< Null until its worker deployed it.
    std::size_t worker = 0;  ///< Index into `workers_`.
    std::uint32_t chain = 0;
    std::uint32_t subtask = 0;
    bool source = false;
    bool started = false;
    bool finished = false;
    bool down = false;
    bool live() const { return handle && !down; }
  };

  /// A process that offers task slots.
  struct worker_entry {
    caf::actor handle;
    std::string id;
    std::string address;  ///< Where other workers reach it; empty if local.
    std::uint32_t slots = 0;
    bool alive = true;
    bool leaving = false;  ///< Said goodbye: its end is not a crash.
  };

  /// A completed or failed checkpoint, for the REST API.
  struct history_entry {
    std::int64_t id = 0;
    checkpoint::snapshot_kind kind = checkpoint::snapshot_kind::checkpoint;
    bool completed = false;
    std::string folder;
    double duration_ms = 0;
    std::uint64_t size_bytes = 0;
    std::string reason;
  };

  struct pending_checkpoint {
    std::int64_t id = 0;
    checkpoint::snapshot_kind kind = checkpoint::snapshot_kind::checkpoint;
    std::string folder;
    clock::time_point started;
    std::vector<snapshot_ack> acks;
    std::vector<bool> acked;
    std::size_t acked_count = 0;
    bool stop = false;   ///< Stop with savepoint: shut down once complete.
    bool final = false;  ///< Taken after every task finished.
    /// Aborted when not complete after this long.
    std::chrono::milliseconds timeout{0};
  };

  /// A final checkpoint that is aborted is taken again this many times,
  /// each with twice the time of the one before, before the job fails: the
  /// job's whole output waits on it, and a slow moment (a loaded machine)
  /// must not cost it.
  static constexpr std::uint32_t max_final_retries = 3;

  void deploy(std::shared_ptr<const checkpoint::restore_point> restore);
  void on_deployed(std::uint32_t attempt, const std::vector<std::size_t>& slots,
                   std::vector<caf::actor>& handles);
  void wire_and_start();
  bool ready() const;
  std::string on_register(const std::string& id, const std::string& address,
                          std::uint32_t slots, const std::string& protocol,
                          const std::string& definition);
  void lose_worker(std::size_t index, const std::string& why);
  void cancel();
  /// Kills every task (aborting a pending checkpoint) and finishes the job.
  void end_now(const std::string& why);
  void on_stop();
  void on_stop_timeout(std::uint32_t stage);
  /// "restore from checkpoint N (folder)", for messages.
  std::string last_restore_point() const;
  void remember(const pending_checkpoint& p, bool completed, std::uint64_t size,
                const std::string& reason);
  void answer_savepoint_waiters(const std::string& json);
  std::string status_json() const;
  std::string history_json() const;
  std::size_t index_of(std::uint32_t chain, std::uint32_t subtask) const;
  bool all_finished() const;
  void trigger(checkpoint::snapshot_kind kind, bool stop, bool final);
  void on_ack(snapshot_ack& ack);
  void complete();
  void abort(const std::string& reason, const char* label);
  void on_finished(std::uint32_t chain, std::uint32_t subtask);
  void on_failure(const std::string& what);
  void on_restore_failure(const std::string& what);
  void redeploy();
  void shutdown_all();
  void kill_all();
  void on_down(const caf::down_msg& down);
  void finish_job();
  void after_checkpoint();
  checkpoint::metadata build_metadata(const pending_checkpoint& p) const;

  coordinator_config config_;
  std::shared_ptr<checkpoint::storage> storage_;
  std::shared_ptr<checkpoint::background_writer> writer_;
  restart_policy policy_;
  std::string fingerprint_;

  std::vector<std::uint32_t> chain_offset_;
  std::vector<worker_entry> workers_;
  /// Waiting for task slots: deploy once enough workers registered.
  bool waiting_ = false;
  std::shared_ptr<const checkpoint::restore_point> waiting_restore_;
  /// The restore point of the current attempt (null: started empty).
  std::shared_ptr<const checkpoint::restore_point> deployed_from_;
  std::size_t deploying_ = 0;  ///< Deploy answers outstanding.
  std::vector<task_slot> tasks_;
  std::size_t alive_ = 0;
  std::uint32_t attempt_ = 0;

  enum class phase : std::uint8_t { running, restarting, stopping };
  phase phase_ = phase::running;
  bool restart_due_ = false;
  clock::time_point failed_at_;
  bool recovering_ = false;
  bool awaiting_flow_ = false;    ///< First record after a restart not seen.
  bool first_flow_seen_ = false;  ///< First record of the first attempt.
  clock::time_point started_at_ = clock::now();
  std::vector<caf::response_promise> savepoint_waiters_;
  std::vector<history_entry> history_;  ///< Newest last, bounded.
  std::uint64_t failed_count_ = 0;
  bool cancelled_ = false;
  bool finishing_ = false;  ///< finish_job ran: reporting once the workers
                            ///< answered the shutdown.

  std::optional<pending_checkpoint> pending_;
  std::int64_t next_id_ = 1;
  clock::time_point last_end_{};
  /// Restore points of this run, oldest first: the initial one and every
  /// completed checkpoint or savepoint still on disk.
  std::vector<checkpoint::restore_point> completed_;
  bool savepoint_requested_ = false;
  bool stop_requested_ = false;
  bool drain_ = false;      ///< Sources were told to end their input.
  bool stop_seen_ = false;  ///< A stop was requested (once is enough).

  status failure_;
  bool stopped_ = false;
  /// Id of the final (or stop-with-savepoint) checkpoint once it completed:
  /// a task failing after that failed to commit its output (-1: none yet).
  std::int64_t final_id_ = -1;
  /// Final checkpoints aborted since the last deployment.
  std::uint32_t final_retries_ = 0;
  std::string savepoint_folder_;

  counter* completed_total_ = nullptr;
  counter* restarts_total_ = nullptr;
  counter* recovery_ns_total_ = nullptr;
  gauge* in_progress_ = nullptr;
  gauge* duration_ = nullptr;
  gauge* size_ = nullptr;
  gauge* alignment_ = nullptr;
  gauge* sync_ = nullptr;
  gauge* async_ = nullptr;
  gauge* last_id_ = nullptr;
  gauge* last_recovery_ = nullptr;
  gauge* first_record_ = nullptr;
  gauge* workers_gauge_ = nullptr;
  gauge* slots_gauge_ = nullptr;
  counter* workers_lost_ = nullptr;
};

}  // namespace stream::actors
