#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "stream/checkpoint/snapshot.hpp"
#include "stream/job_graph.hpp"
#include "stream/options.hpp"
#include "stream/runtime/batch.hpp"
#include "stream/runtime/stage.hpp"
#include "stream/status.hpp"

namespace stream {
class counter;
class gauge;
class metrics_registry;
}  // namespace stream

namespace stream::runtime {

/// How a task reaches its peers; implemented by the actor that hosts it (or
/// by a fake in tests). Calls never block.
class transport {
 public:
  virtual ~transport() = default;
  virtual void send_batch(std::uint32_t output_channel, batch_ptr records) = 0;
  virtual void send_event(std::uint32_t output_channel,
                          const control_event& event) = 0;
  /// Returns `credits` batches of room on an input channel to its sender.
  virtual void grant_credit(std::uint32_t input_channel,
                            std::uint32_t credits) = 0;
  /// The synchronous phase of snapshot `id` is done (the barrier is on its
  /// way downstream): write `parts` out in the background and acknowledge.
  virtual void snapshot_taken(
      std::int64_t /*id*/, bool /*savepoint*/,
      std::vector<checkpoint::pending_snapshot> /*parts*/,
      std::chrono::nanoseconds /*alignment*/,
      std::chrono::nanoseconds /*sync*/) {}
};

/// One subtask of a chain: the operator logic plus its channels, without any
/// actor code. Implements the channel protocol:
/// - credit-based flow control: a sender sends a batch only with a credit;
///   the receiver queues it and returns the credit once it processed it, so
///   no channel ever holds more batches than its credit window;
/// - a task with an output lacking credit is blocked: it stops processing
///   input (sources stop being pulled) and counts backpressured time;
/// - control events travel in order with the data: before an event is
///   forwarded the chain is flushed, and events queue behind pending batches;
/// - the watermark is the minimum over the live, active inputs (an idle input
///   holds nothing back; all idle makes the task idle); it travels through
///   the chain, whose operators fire timers on it and whose routers send it
///   on; barriers are aligned
///   (an input that delivered barrier n is held until all delivered it);
/// - end of input is forwarded once every input ended.
/// Not thread-safe: owned and driven by one actor.
class task final : public output_gate {
 public:
  /// Builds subtask `subtask` of chain `chain` of `plan`, creating its stages
  /// and its metrics in `registry`. `attempt` counts deployments after
  /// failures (it keeps the working state of attempts apart). `graph`,
  /// `registry` and `io` must outlive the task.
  static result<std::unique_ptr<task>> create(
      const job_graph& graph, const execution_plan& plan, std::uint32_t chain,
      std::uint32_t subtask, metrics_registry& registry,
      const job_options& options, transport& io, std::uint32_t attempt = 0);

  ~task() override;

  /// Opens every stage; an error means the task must not run.
  status open();
  /// Grants the initial credits on every input and starts the clock.
  void start(std::chrono::steady_clock::time_point now);
  /// Closes every stage (idempotent).
  void close();

  void on_batch(std::uint32_t input_channel, batch_ptr records);
  void on_event(std::uint32_t input_channel, const control_event& event);
  void on_credit(std::uint32_t output_channel, std::uint32_t credits);
  /// Sources only: produces up to one batch worth of records.
  pull_result pull();
  /// Sends partially filled batches (the flush timeout expired).
  void on_flush_timer();
  /// Sources only: end the input at the next pull (graceful stop).
  void request_stop();

  /// Loads the state of the checkpoint restored from, after `open()` and
  /// before `start()`: `find(operator id)` gives an operator's state, or
  /// null when the checkpoint has none for it.
  status restore(const std::function<const checkpoint::restored_state*(
                     std::uint32_t operator_id)>& find);

  /// The coordinator asks for snapshot `id`. A running source takes it and
  /// sends the barrier; a finished task takes it as it is. Other tasks take
  /// snapshots when barriers align. Repeated requests for one id are
  /// ignored.
  void trigger_snapshot(std::int64_t id, bool savepoint);

  /// Checkpoint `id` completed: stages commit what they staged for it.
  void on_checkpoint_complete(std::int64_t id);

  /// True for the tasks whose stages hold checkpointed state.
  bool has_state() const noexcept { return !stateful_.empty(); }

  /// Time accounting around every actor handler: the gap since the last
  /// handler counts as backpressured when the task was blocked, else idle.
  void begin_work(std::chrono::steady_clock::time_point now);
  void end_work(std::chrono::steady_clock::time_point now);

  bool is_source() const noexcept { return source_ != nullptr; }
  /// True while an output channel has batches waiting for credit.
  bool blocked() const noexcept { return blocked_outputs_ > 0; }
  /// True once end of input was forwarded and every output drained.
  bool finished() const noexcept { return eoi_sent_ && !blocked(); }
  /// Batches queued in the task on an input channel, not yet processed.
  std::uint32_t queued(std::uint32_t input_channel) const {
    return inputs_.at(input_channel).queued_batches;
  }
  /// Most batches ever in flight at once on an output channel: sent and not
  /// yet given back by the receiver. Never above the credit window.
  std::uint32_t max_in_flight(std::uint32_t output_channel) const {
    return outputs_.at(output_channel).max_in_flight;
  }

  void emit(std::uint32_t channel, batch_ptr records) override;
  void emit_event(std::uint32_t channel, const control_event& event) override;

  /// The watermark of the task's input: the minimum over its active inputs.
  std::int64_t input_watermark() const noexcept { return watermark_; }

 private:
  using entry = std::variant<batch_ptr, control_event>;

  struct input_state {
    std::deque<entry> queue;
    std::uint32_t queued_batches = 0;
    std::int64_t watermark = min_watermark;
    bool ended = false;
    bool idle = false;  ///< Said it is idle; holds no watermark back.
    bool held = false;  ///< Delivered the barrier being aligned.
  };

  struct output_state {
    std::uint32_t credits = 0;
    bool credited = false;  ///< The receiver granted its window.
    std::uint32_t max_in_flight = 0;
    std::deque<entry> pending;
    gauge* credit_gauge = nullptr;
    gauge* in_flight_gauge = nullptr;
    gauge* max_in_flight_gauge = nullptr;
  };

  task(transport& io, const job_options& options);

  status build(const job_graph& graph, const execution_plan& plan,
               std::uint32_t chain, std::uint32_t subtask,
               metrics_registry& registry, std::uint32_t attempt);
  std::unique_ptr<stage_object> make_router(const job_graph& graph,
                                            const execution_plan& plan,
                                            std::uint32_t edge,
                                            std::uint32_t subtask);
  void drain_inputs();
  bool deliverable(const input_state& in) const;
  void deliver(std::uint32_t channel);
  void on_barrier_arrived(std::int64_t id, bool savepoint);
  void take_snapshot(std::int64_t id, bool savepoint);
  void on_input_ended();
  void update_watermark();
  void update_watermark_gauges();
  void flush_chain();
  void broadcast(const control_event& event);
  void send_or_queue(std::uint32_t channel, entry item);
  void send_with_credit(std::uint32_t channel, batch_ptr records);
  void update_credit_gauges(output_state& out);

  transport* io_;
  job_options options_;
  std::vector<std::unique_ptr<stage_object>> stages_;
  source_stage* source_ = nullptr;
  std::unique_ptr<chain_head> head_;
  std::vector<input_state> inputs_;
  std::vector<output_state> outputs_;
  std::uint32_t blocked_outputs_ = 0;
  std::uint32_t next_input_ = 0;
  std::int64_t watermark_ = min_watermark;
  bool idle_ = false;           ///< Every live input is idle.
  std::int64_t aligning_ = -1;  ///< Barrier being aligned, or -1.
  bool aligning_savepoint_ = false;
  std::chrono::steady_clock::time_point align_start_{};
  std::int64_t last_snapshot_ = 0;  ///< Id of the newest snapshot taken.
  struct stateful_stage {
    stage_object* stage;
    std::uint32_t operator_id;
  };
  std::vector<stateful_stage> stateful_;
  key_group_set owned_;
  bool eoi_sent_ = false;
  bool closed_ = false;
  bool opened_ = false;
  bool was_blocked_ = false;
  std::chrono::steady_clock::time_point last_{};
  metrics_registry* registry_ = nullptr;
  std::string head_name_;
  std::uint32_t subtask_ = 0;
  gauge* watermark_gauge_ = nullptr;  ///< Created at the first watermark.
  gauge* watermark_lag_ = nullptr;
  counter* busy_ns_ = nullptr;
  counter* idle_ns_ = nullptr;
  counter* backpressured_ns_ = nullptr;
};

}  // namespace stream::runtime
