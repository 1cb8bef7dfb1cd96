#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stream/key_groups.hpp"
#include "stream/runtime/batch.hpp"
#include "stream/status.hpp"

namespace stream {
class counter;
class metrics_registry;
struct job_options;
}  // namespace stream

namespace stream::checkpoint {
struct pending_snapshot;
struct restored_state;
}  // namespace stream::checkpoint

namespace stream::runtime {

/// Where the last stage of a chain hands full batches; implemented by the
/// task that hosts the chain. Output channels are numbered per task.
class output_gate {
 public:
  virtual ~output_gate() = default;

  /// Takes ownership of `records` for output channel `channel`. Never blocks:
  /// without credit the task queues the batch and reports backpressure.
  virtual void emit(std::uint32_t channel, batch_ptr records) = 0;

  /// Sends a watermark or idle event on output channel `channel`, in order
  /// after the batches emitted before it.
  virtual void emit_event(std::uint32_t channel,
                          const control_event& event) = 0;
};

class stage_object;

/// What a stage learns about its place in the job when it is created.
/// Pointers stay valid for the lifetime of the task.
struct stage_context {
  std::string job_name;
  std::string operator_name;
  std::uint32_t operator_id = 0;
  std::uint32_t subtask = 0;
  std::uint32_t attempt = 0;  ///< Deployment attempt: 1 after a restart, ...
  std::uint32_t parallelism = 1;
  std::uint32_t max_parallelism = 128;
  /// The key groups this subtask owns under its chain's table; none (in
  /// tests that build stages by hand) means every key group.
  std::optional<key_group_set> owned;
  std::uint32_t batch_size = 1024;
  counter* records_in = nullptr;   ///< Never null once the task is built.
  counter* records_out = nullptr;  ///< Never null once the task is built.
  /// For operator-specific metrics (labels: job, operator, subtask).
  metrics_registry* metrics = nullptr;
  const job_options* options = nullptr;  ///< Never null once built.
  /// Side outputs of this operator that someone consumes, by tag: each a
  /// `consumer<U>` for the tag's record type.
  std::vector<std::pair<std::string, stage_object*>> side_outputs;

  /// The consumer of side output `tag`, or null when nobody reads it.
  stage_object* side_output(std::string_view tag) const {
    for (const auto& [name, stage] : side_outputs) {
      if (name == tag) return stage;
    }
    return nullptr;
  }
};

/// Base of every stage in a chain: something the task owns and opens.
class stage_object {
 public:
  virtual ~stage_object() = default;

  /// Acquires resources (files, connections). An error fails the task before
  /// any record flows.
  virtual status open() { return {}; }

  /// Releases resources after the last record; also called on cancellation.
  virtual void close() {}

  /// True for stages with state in checkpoints: sources (positions), keyed
  /// operators, transactional sinks. Only they are asked for snapshots.
  virtual bool stateful() const { return false; }

  /// Checkpoint `id`, synchronous phase, between two records and after the
  /// chain was flushed: puts this stage's state into `out.data`, copying
  /// whatever may change, and may leave slow work to `out.deferred` (run on
  /// a background writer while processing goes on).
  virtual void snapshot_state(std::int64_t /*id*/,
                              checkpoint::pending_snapshot& /*out*/) {}

  /// After `open()` and before any record: the state this stage's operator
  /// had at the checkpoint the job restores from. An error fails the task.
  virtual status restore_state(const checkpoint::restored_state& /*in*/) {
    return {};
  }

  /// Checkpoint `id` is complete: every operator's state is stored.
  /// Transactional sinks commit what they staged up to it.
  virtual void notify_checkpoint_complete(std::int64_t /*id*/) {}
};

/// The type-independent part of a consumer: what travels besides records.
/// Called only by the task's actor, so implementations need no locking.
class consumer_base : public stage_object {
 public:
  /// Emits any buffered output downstream, then flushes downstream. Called
  /// on the flush timer and before every control event is forwarded.
  virtual void flush() = 0;

  /// Every input ended: emits final output, then finishes downstream.
  virtual void finish() = 0;

  /// A watermark or idle event reached this stage, after every record before
  /// it. Operators act on it (fire timers and windows), then pass it on;
  /// routers flush and send it on their channels; sinks ignore it.
  virtual void on_control(const control_event& event) = 0;
};

/// A stage that consumes batches of `T`: an operator, a router or a sink.
template <class T>
class consumer : public consumer_base {
 public:
  /// Consumes `records`. The callee may modify or move from the elements;
  /// the caller clears the vector before reusing it.
  virtual void push(std::vector<T>& records) = 0;
};

/// Outcome of one `source_stage::pull`.
struct pull_result {
  enum class state : std::uint8_t {
    more,       ///< Call again right away.
    throttled,  ///< Call again at `resume_at` (rate limit, no data yet).
    ended,      ///< The input is exhausted; the source was finished.
  };
  state next = state::more;
  std::chrono::steady_clock::time_point resume_at{};
};

/// The head of a source chain. Sources are pulled by their task, which stops
/// pulling while any output lacks credit: that is how backpressure reaches
/// the source.
class source_stage : public stage_object {
 public:
  /// Produces at most `max_records` records into the chain.
  virtual pull_result pull(std::size_t max_records) = 0;

  /// Ends the input early (graceful stop): the next `pull` finishes the
  /// chain and reports `ended`.
  virtual void request_stop() = 0;

  /// Emits buffered output downstream (see `consumer::flush`).
  virtual void flush() = 0;
};

/// Adapts the typed head of a non-source chain to type-erased batches.
class chain_head {
 public:
  virtual ~chain_head() = default;
  virtual void push(batch_base& records) = 0;
  virtual void flush() = 0;
  virtual void finish() = 0;
  virtual void on_control(const control_event& event) = 0;
};

template <class T>
class typed_chain_head final : public chain_head {
 public:
  explicit typed_chain_head(consumer<T>* head) : head_(head) {}

  void push(batch_base& records) override {
    head_->push(static_cast<batch<T>&>(records).records);
  }
  void flush() override { head_->flush(); }
  void finish() override { head_->finish(); }
  void on_control(const control_event& event) override {
    head_->on_control(event);
  }

 private:
  consumer<T>* head_;
};

}  // namespace stream::runtime
