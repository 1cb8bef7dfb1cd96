#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "messages.hpp"
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
  caf::actor runner;  ///< Receives done / failed reports.
};

/// One operator instance (a chain subtask) as an actor: translates messages
/// to calls on its `runtime::task` and the task's sends to messages.
///
/// Protocol: `wire` (peers of every channel), then `start`; afterwards
/// `batch`, `event` and `credit` from peers, `pull` and `tick` from itself,
/// `stop` from the runner. Reports `done` or `failed` to the runner, then
/// quits.
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

 private:
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
  std::vector<caf::actor> outputs_;
  std::vector<std::uint32_t> output_peer_channel_;
  std::vector<caf::actor> inputs_;
  std::vector<std::uint32_t> input_peer_channel_;
  bool pull_scheduled_ = false;
  /// Generation of the current pull loop; a stop starts a new one, so a
  /// stale delayed pull of a throttled source is ignored.
  std::uint64_t pull_generation_ = 0;
  bool started_ = false;
  bool reported_ = false;
};

}  // namespace stream::actors
