#pragma once

// Routers end a chain: they cut the record stream into batches per output
// channel and hand full batches to the task's output gate.

#include <cassert>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "stream/job_graph.hpp"
#include "stream/key_groups.hpp"
#include "stream/runtime/stage.hpp"

namespace stream::detail {

/// Batching and emission shared by all routers.
template <class T>
class router_base : public runtime::consumer<T> {
 public:
  explicit router_base(const router_context& ctx)
      : gate_(ctx.gate),
        first_channel_(ctx.first_channel),
        batch_size_(ctx.batch_size),
        buffers_(ctx.targets) {
    assert(gate_ != nullptr && ctx.targets > 0);
    for (auto& b : buffers_) b.reserve(batch_size_);
  }

  void flush() override {
    for (std::uint32_t t = 0; t < buffers_.size(); ++t) {
      if (!buffers_[t].empty()) emit(t);
    }
  }
  void finish() override { flush(); }
  void on_control(const runtime::control_event& event) override {
    flush();
    for (std::uint32_t t = 0; t < buffers_.size(); ++t)
      gate_->emit_event(first_channel_ + t, event);
  }

 protected:
  void append(std::uint32_t target, T&& record) {
    auto& buf = buffers_[target];
    buf.push_back(std::move(record));
    if (buf.size() >= batch_size_) emit(target);
  }

  void emit(std::uint32_t target) {
    auto& buf = buffers_[target];
    auto records = std::make_shared<runtime::batch<T>>(std::move(buf));
    buf = std::vector<T>{};
    buf.reserve(batch_size_);
    gate_->emit(first_channel_ + target, std::move(records));
  }

  /// Emits `records` as whole batches to `target` without copying when the
  /// target's buffer is empty and the batch is full-sized.
  void append_all(std::uint32_t target, std::vector<T>& records) {
    auto& buf = buffers_[target];
    if (buf.empty() && records.size() == batch_size_) {
      gate_->emit(first_channel_ + target,
                  std::make_shared<runtime::batch<T>>(std::move(records)));
      return;
    }
    for (auto& r : records) append(target, std::move(r));
  }

  std::uint32_t targets() const {
    return static_cast<std::uint32_t>(buffers_.size());
  }
  std::size_t batch_size() const { return batch_size_; }

 private:
  runtime::output_gate* gate_;
  std::uint32_t first_channel_;
  std::size_t batch_size_;
  std::vector<std::vector<T>> buffers_;
};

/// One downstream channel: subtask i to subtask i.
template <class T>
class forward_router final : public router_base<T> {
 public:
  explicit forward_router(const router_context& ctx) : router_base<T>(ctx) {
    assert(ctx.targets == 1);
  }
  void push(std::vector<T>& records) override { this->append_all(0, records); }
};

/// Round-robin by batch over all downstream subtasks: a full batch moves the
/// stream to the next target. Subtasks start at different targets so that
/// several senders do not hit the same receiver in lockstep.
template <class T>
class rebalance_router final : public router_base<T> {
 public:
  explicit rebalance_router(const router_context& ctx)
      : router_base<T>(ctx), next_(ctx.subtask % ctx.targets) {}

  void push(std::vector<T>& records) override {
    for (auto& r : records) {
      this->append(next_, std::move(r));
      if (++count_ == this->batch_size()) {
        count_ = 0;
        next_ = (next_ + 1) % this->targets();
      }
    }
  }

 private:
  std::uint32_t next_;
  std::size_t count_ = 0;
};

/// Routes each record to the owner of its key group in the versioned table.
template <class T, class KeyFn>
class hash_router final : public router_base<T> {
 public:
  hash_router(const router_context& ctx, KeyFn key_fn)
      : router_base<T>(ctx), table_(ctx.table), key_fn_(std::move(key_fn)) {
    assert(table_ != nullptr && table_->parallelism() == ctx.targets);
  }

  void push(std::vector<T>& records) override {
    if (this->targets() == 1) {
      // One owner of every key group: nothing to hash, nothing to copy.
      this->append_all(0, records);
      return;
    }
    const auto& table = *table_;
    for (auto& r : records) {
      auto target = table.route(hash_key(std::invoke(key_fn_, r)));
      this->append(target, std::move(r));
    }
  }

 private:
  std::shared_ptr<const key_group_table> table_;
  KeyFn key_fn_;
};

}  // namespace stream::detail
