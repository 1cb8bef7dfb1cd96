#pragma once

// Stage implementations behind the typed API. Each operator processes a whole
// batch per virtual call; the per-record loops are templates, so user
// functions inline into them.

#include <algorithm>
#include <cassert>
#include <functional>
#include <memory>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "stream/functions.hpp"
#include "stream/key_groups.hpp"
#include "stream/metrics.hpp"
#include "stream/runtime/stage.hpp"

namespace stream::detail {

/// Casts the next stage to the consumer type the graph promised.
template <class T>
runtime::consumer<T>* as_consumer(runtime::stage_object* next) {
  auto* result = dynamic_cast<runtime::consumer<T>*>(next);
  assert(result != nullptr && "chain wiring joined mismatched record types");
  return result;
}

/// Common part of one-input operators: the downstream link, the output
/// buffer and the record counters.
template <class In, class Out>
class operator_base : public runtime::consumer<In> {
 public:
  operator_base(const runtime::stage_context& ctx, runtime::stage_object* next)
      : next_(as_consumer<Out>(next)),
        in_(ctx.records_in),
        out_count_(ctx.records_out),
        batch_size_(ctx.batch_size) {}

  void flush() override { next_->flush(); }
  void finish() override { next_->finish(); }
  void on_control(const runtime::control_event& e) override {
    next_->on_control(e);
  }

 protected:
  /// Sends `records` downstream and counts them.
  void forward(std::vector<Out>& records) {
    if (records.empty()) return;
    out_count_->add(records.size());
    next_->push(records);
  }

  runtime::consumer<Out>* next_;
  counter* in_;
  counter* out_count_;
  std::size_t batch_size_;
  std::vector<Out> out_;
};

template <class In, class Out, class F>
class map_stage final : public operator_base<In, Out> {
 public:
  map_stage(const runtime::stage_context& ctx, runtime::stage_object* next,
            F fn)
      : operator_base<In, Out>(ctx, next), fn_(std::move(fn)) {}

  void push(std::vector<In>& records) override {
    this->in_->add(records.size());
    if constexpr (std::is_same_v<In, Out>) {
      // Same type: transform in place, no second buffer.
      for (auto& r : records) r = std::invoke(fn_, std::as_const(r));
      this->forward(records);
    } else {
      auto& out = this->out_;
      out.clear();
      out.reserve(records.size());
      for (const auto& r : records) out.push_back(std::invoke(fn_, r));
      this->forward(out);
    }
  }

 private:
  F fn_;
};

template <class T, class F>
class filter_stage final : public operator_base<T, T> {
 public:
  filter_stage(const runtime::stage_context& ctx, runtime::stage_object* next,
               F fn)
      : operator_base<T, T>(ctx, next), fn_(std::move(fn)) {}

  void push(std::vector<T>& records) override {
    this->in_->add(records.size());
    std::erase_if(records, [this](const T& r) { return !std::invoke(fn_, r); });
    this->forward(records);
  }

 private:
  F fn_;
};

/// Counts records that pass through it; the emitter spills into this so that
/// flat_map output is counted exactly once.
template <class T>
class counting_link final : public runtime::consumer<T> {
 public:
  counting_link(runtime::consumer<T>* next, counter* out)
      : next_(next), out_(out) {}
  void push(std::vector<T>& records) override {
    out_->add(records.size());
    next_->push(records);
  }
  void flush() override { next_->flush(); }
  void finish() override { next_->finish(); }
  void on_control(const runtime::control_event& e) override {
    next_->on_control(e);
  }

 private:
  runtime::consumer<T>* next_;
  counter* out_;
};

/// Common part of operators that emit through an `emitter`: any number of
/// outputs per input, spilled downstream in full batches.
template <class In, class Out>
class emitting_stage : public runtime::consumer<In> {
 public:
  emitting_stage(const runtime::stage_context& ctx, runtime::stage_object* next)
      : link_(as_consumer<Out>(next), ctx.records_out),
        in_(ctx.records_in),
        batch_size_(ctx.batch_size) {}

  void flush() override { link_.flush(); }
  void finish() override { link_.finish(); }
  void on_control(const runtime::control_event& e) override {
    link_.on_control(e);
  }

 protected:
  /// Calls `body(record, emitter)` for every record, then spills.
  template <class Body>
  void each(std::vector<In>& records, Body&& body) {
    in_->add(records.size());
    out_.clear();
    emitter<Out> out{out_, &link_, batch_size_};
    for (const auto& r : records) body(r, out);
    out.spill();
  }

  /// Calls `body(emitter)` (timers, windows firing), then spills.
  template <class Body>
  void emit_with(Body&& body) {
    out_.clear();
    emitter<Out> out{out_, &link_, batch_size_};
    body(out);
    out.spill();
  }

  /// The downstream link, for control events.
  counting_link<Out>& link() { return link_; }

 private:
  counting_link<Out> link_;
  counter* in_;
  std::size_t batch_size_;
  std::vector<Out> out_;
};

template <class In, class Out, class F>
class flat_map_stage final : public emitting_stage<In, Out> {
 public:
  flat_map_stage(const runtime::stage_context& ctx, runtime::stage_object* next,
                 F fn)
      : emitting_stage<In, Out>(ctx, next), fn_(std::move(fn)) {}

  void push(std::vector<In>& records) override {
    this->each(records, [this](const In& r, emitter<Out>& out) {
      std::invoke(fn_, r, out);
    });
  }

 private:
  F fn_;
};

/// Passes records through unchanged: the stage of a `union`.
template <class T>
class identity_stage final : public operator_base<T, T> {
 public:
  using operator_base<T, T>::operator_base;
  void push(std::vector<T>& records) override {
    this->in_->add(records.size());
    this->forward(records);
  }
};

/// Copies every batch to several downstream consumers (a stream consumed
/// more than once). The last consumer gets the original.
template <class T>
class fanout_stage final : public runtime::consumer<T> {
 public:
  explicit fanout_stage(std::vector<runtime::stage_object*> targets) {
    for (auto* t : targets) targets_.push_back(as_consumer<T>(t));
  }
  void push(std::vector<T>& records) override {
    for (std::size_t i = 0; i + 1 < targets_.size(); ++i) {
      copy_ = records;
      targets_[i]->push(copy_);
    }
    targets_.back()->push(records);
  }
  void flush() override {
    for (auto* t : targets_) t->flush();
  }
  void finish() override {
    for (auto* t : targets_) t->finish();
  }
  void on_control(const runtime::control_event& e) override {
    for (auto* t : targets_) t->on_control(e);
  }

 private:
  std::vector<runtime::consumer<T>*> targets_;
  std::vector<T> copy_;
};

/// Drops records of a stream nobody consumes.
template <class T>
class discard_stage final : public runtime::consumer<T> {
 public:
  void push(std::vector<T>&) override {}
  void flush() override {}
  void finish() override {}
  void on_control(const runtime::control_event&) override {}
};

}  // namespace stream::detail
