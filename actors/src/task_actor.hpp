#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "messages.hpp"
#include "stream/checkpoint/writer.hpp"
#include "stream/job_graph.hpp"
#include "stream/metrics.hpp"
#include "stream/runtime/task.hpp"

namespace stream::actors {

/// What a task actor needs to build its task. The pointed-to objects belong
/// to the job runner and outlive every task actor.
struct task_actor_config {
  const job_graph* graph = nullptr;
  const execution_plan* plan = nullptr;
  metrics_registry* registry = nullptr;
  job_options options;
  std::uint32_t chain = 0;
  std::uint32_t subtask = 0;
  /// Deployment attempt (0, then one more per restart): tags every report.
  std::uint32_t attempt = 0;
  caf::actor runner;  ///< The coordinator: receives reports and acks.
  std::shared_ptr<const checkpoint::storage> storage;
  std::shared_ptr<checkpoint::background_writer> writer;
  /// The checkpoint to restore from, or null for a fresh start.
  std::shared_ptr<const checkpoint::restore_point> restore;
  /// Set with a null `restore` when the worker could not read this folder:
  /// the task fails on start with the reason.
  std::string restore_folder;
};

/// One operator instance (a chain subtask) as an actor: translates messages
/// to calls on its `runtime::task` and the task's sends to messages.
///
/// Protocol: `wire` (peers of every channel), then `start` (opens, restores
/// the checkpointed state); afterwards `batch`, `event` and `credit` from
/// peers, `pull` and `tick` from itself, `stop`, `trigger`, `complete` and
/// `shutdown` from the coordinator. Reports `finished` once its input ended
/// and its output drained (then waits for the final checkpoint and
/// `shutdown`), `failed` when it fails, and acknowledges snapshots (`ack`,
/// or `decline` when its state could not be written).
class task_actor final : public caf::event_based_actor,
                         public runtime::transport {
 public:
  task_actor(caf::actor_config& cfg, task_actor_config config);

  caf::behavior make_behavior() override;
  void on_exit() override;

  /// The behaviour once started: data, events, credit, pull, tick, stop.
  caf::behavior running();
  const char* name() const override { return "stream.task"; }

  void send_batch(std::uint32_t output_channel,
                  runtime::batch_ptr records) override;
  void send_event(std::uint32_t output_channel,
                  const runtime::control_event& event) override;
  void grant_credit(std::uint32_t input_channel,
                    std::uint32_t credits) override;
  void snapshot_taken(std::int64_t id, bool savepoint,
                      std::vector<checkpoint::pending_snapshot> parts,
                      std::chrono::nanoseconds alignment,
                      std::chrono::nanoseconds sync) override;

 private:
  status restore();
  template <class F>
  void work(F&& body);
  void on_start();
  void on_pull();
  void schedule_pull();
  void fail(const std::string& what);
  std::string describe() const;

  task_actor_config config_;
  std::unique_ptr<runtime::task> task_;
  status create_error_;
  void on_raw_batch(std::uint32_t channel,
                    const std::vector<std::uint8_t>& bytes);
  const type_ops* channel_type(const execution_plan::channel_ref& ref) const;

  std::vector<caf::actor> outputs_;
  /// Per output channel: null for a peer in this process (batches go by
  /// pointer), else the record type's codec glue (batches go as bytes).
  std::vector<const type_ops*> remote_out_;
  /// Per input channel: the codec glue for batches that arrive as bytes.
  std::vector<const type_ops*> in_types_;
  bool flowing_ = false;               ///< Reported its first consumed batch.
  std::size_t remote_bytes_hint_ = 0;  ///< Size of the last encoded batch.
  /// The stable id (`execution_plan::channel_id`: edge, this subtask) that
  /// batches and events on each output channel carry, and credits on each
  /// input channel: a peer finds its channel by it, whatever the numbering
  /// at this end.
  std::vector<std::uint32_t> output_ids_;
  std::vector<caf::actor> inputs_;
  std::vector<std::uint32_t> input_ids_;
  /// The ids peers send, to this task's channel numbers.
  execution_plan::channel_index input_index_;
  execution_plan::channel_index output_index_;
  /// The input channel of a batch or event with id `id`, or none after
  /// failing the task (a peer of another plan).
  std::optional<std::uint32_t> input_of(std::uint32_t id);
  bool pull_scheduled_ = false;
  /// Generation of the current pull loop; a stop starts a new one, so a
  /// stale delayed pull of a throttled source is ignored.
  std::uint64_t pull_generation_ = 0;
  bool started_ = false;
  bool reported_ = false;  ///< Failed, or reported finished.
  bool failed_ = false;
};

}  // namespace stream::actors
