#pragma once

// The keyed process function operator: per-record calls with keyed state,
// event- and processing-time timers and side outputs.

#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "stream/detail/operators.hpp"
#include "stream/detail/side_outputs.hpp"
#include "stream/event_time.hpp"
#include "stream/options.hpp"
#include "stream/state.hpp"

namespace stream::detail {

/// Directory-safe name of one operator instance's working state:
/// "<id>-<name>-<i>", plus "-a<attempt>" after a restart, so that a restarted
/// instance never meets the database of the attempt before it (which a
/// background snapshot may still be reading).
inline std::string state_instance_name(const runtime::stage_context& ctx) {
  std::string name = std::to_string(ctx.operator_id) + "-";
  for (char c : ctx.operator_name) {
    bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                (c >= '0' && c <= '9') || c == '_' || c == '-';
    name += safe ? c : '_';
  }
  name += "-" + std::to_string(ctx.subtask);
  if (ctx.attempt > 0) name += "-a" + std::to_string(ctx.attempt);
  return name;
}

/// Opens the keyed backend of an operator instance, or fails `open()`.
inline result<std::unique_ptr<state::keyed_backend>> open_backend(
    const runtime::stage_context& ctx) {
  return state::keyed_backend::open(*ctx.options, state_instance_name(ctx));
}

/// What keyed operators share: the key function and key-group assignment,
/// the record timestamps, side outputs and the state backend of this
/// operator instance.
template <class In, class Out, class K, class KeyFn>
class keyed_operator : public emitting_stage<In, Out> {
 protected:
  keyed_operator(const runtime::stage_context& ctx, runtime::stage_object* next,
                 KeyFn key_fn,
                 std::shared_ptr<const timestamp_fn<In>> timestamps)
      : emitting_stage<In, Out>(ctx, next),
        stage_ctx_(ctx),
        assign_(ctx.max_parallelism),
        owned_mask_(ctx.max_parallelism, ctx.owned ? 0 : 1),
        sides_(ctx),
        key_fn_(std::move(key_fn)),
        timestamps_(std::move(timestamps)) {
    if (ctx.owned)
      ctx.owned->for_each([&](key_group kg) {
        if (kg < owned_mask_.size()) owned_mask_[kg] = 1;
      });
    if (ctx.metrics != nullptr) {
      foreign_ = &ctx.metrics->get_counter(
          "stream_foreign_key_group_records_total",
          "Records of a key group the subtask does not own: routed by "
          "another table (a bug; debug builds fail the task instead).",
          {{"job", ctx.job_name},
           {"operator", ctx.operator_name},
           {"subtask", std::to_string(ctx.subtask)}});
    }
  }

  bool stateful() const override { return true; }

  void snapshot_state(std::int64_t,
                      checkpoint::pending_snapshot& out) override {
    backend_->snapshot(out);
    snapshot_extra(*out.data);
  }

  status restore_state(const checkpoint::restored_state& in) override {
    if (auto st = backend_->restore(in); !st.ok()) return st;
    return restore_extra(in);
  }

  /// Operator-specific state besides the tables (timers, watermark).
  virtual void snapshot_extra(checkpoint::snapshot_builder&) {}
  virtual status restore_extra(const checkpoint::restored_state&) { return {}; }

  /// Opens the backend; an error fails `open()`.
  status open_state() {
    auto b = open_backend(stage_ctx_);
    if (!b.ok()) return b.error();
    backend_ = std::move(*b);
    return {};
  }

  /// The key: a reference when the key function returns one (no copy).
  decltype(auto) key_of(const In& r) const { return std::invoke(key_fn_, r); }
  key_group group_of(const K& key) const {
    const key_group kg = assign_(hash_key(key));
    // One byte of a mask of M bytes, and a branch that is never taken.
    if (owned_mask_[kg] == 0) [[unlikely]]
      on_foreign_group(kg);
    return kg;
  }

  /// A record of a key group this subtask does not own: a routing bug
  /// (two tables in play). Its state would be lost at the next rescale.
  void on_foreign_group(key_group kg) const {
#ifndef NDEBUG
    throw std::logic_error(
        "operator '" + stage_ctx_.operator_name + "' subtask " +
        std::to_string(stage_ctx_.subtask) +
        " received a record of key group " + std::to_string(kg) +
        ", which it does not own (it owns " +
        (stage_ctx_.owned ? stage_ctx_.owned->to_string() : "all") + ")");
#else
    (void)kg;
    if (foreign_ != nullptr) foreign_->add(1);
#endif
  }

  runtime::stage_context stage_ctx_;
  key_group_assigner assign_;
  /// 1 for each key group this subtask owns, indexed by key group.
  std::vector<std::uint8_t> owned_mask_;
  counter* foreign_ = nullptr;
  side_output_set sides_;
  KeyFn key_fn_;
  std::shared_ptr<const timestamp_fn<In>> timestamps_;
  std::unique_ptr<state::keyed_backend> backend_;
};

/// Rolling keyed operators (reduce, aggregate): `Step` is called per record
/// with the key, the record, the key's state in the backend (`created` when
/// new) and an emitter.
template <class In, class Out, class K, class KeyFn, class S, class Step>
class rolling_stage final : public keyed_operator<In, Out, K, KeyFn> {
  using base = keyed_operator<In, Out, K, KeyFn>;

 public:
  rolling_stage(const runtime::stage_context& ctx, runtime::stage_object* next,
                KeyFn key_fn, Step step)
      : base(ctx, next, std::move(key_fn), nullptr), step_(std::move(step)) {}

  status open() override {
    if (auto st = this->open_state(); !st.ok()) return st;
    state_ = this->backend_->template make_table<K, state::void_namespace, S>(
        "rolling");
    return {};
  }

  void close() override {
    state_.reset();
    this->backend_.reset();
  }

  void push(std::vector<In>& records) override {
    auto& table = *state_;
    this->each(records, [&](const In& r, emitter<Out>& out) {
      // Bound, not copied: a key function returning a reference (a string
      // field, say) costs no allocation per record.
      const auto& key = this->key_of(r);
      bool created = false;
      auto& s = table.upsert(this->group_of(key), key, {}, created);
      step_(key, r, s, created, out);
    });
  }

 private:
  Step step_;
  std::unique_ptr<state::table<K, state::void_namespace, S>> state_;
};

template <class Fn, class K>
concept has_open = requires(Fn& fn, keyed_context<K>& ctx) {
  fn.open(ctx);
};

template <class Fn, class K, class Out>
concept has_on_timer = requires(Fn& fn, const K& key, keyed_context<K>& ctx,
                                emitter<Out>& out) {
  fn.on_timer(std::int64_t{}, key, ctx, out);
};

/// `Fn` has `process(const K&, const In&, keyed_context<K>&, emitter<Out>&)`
/// and optionally `open(keyed_context<K>&)` and `on_timer(std::int64_t time,
/// const K&, keyed_context<K>&, emitter<Out>&)` (the context tells the
/// domain). A plain callable with the `process` signature works too.
template <class In, class Out, class K, class KeyFn, class Fn>
class keyed_process_stage final : public keyed_operator<In, Out, K, KeyFn> {
  using base = keyed_operator<In, Out, K, KeyFn>;

 public:
  keyed_process_stage(const runtime::stage_context& ctx,
                      runtime::stage_object* next, KeyFn key_fn, Fn fn,
                      std::shared_ptr<const timestamp_fn<In>> timestamps)
      : base(ctx, next, std::move(key_fn), std::move(timestamps)),
        fn_(std::move(fn)) {}

  status open() override {
    if (auto st = this->open_state(); !st.ok()) return st;
    ctx_ = std::make_unique<keyed_context<K>>(*this->backend_);
    ctx_->set_side_outputs(&this->sides_);
    if constexpr (has_open<Fn, K>) fn_.open(*ctx_);
    return {};
  }

  void close() override {
    ctx_.reset();
    this->backend_.reset();
  }

  void push(std::vector<In>& records) override {
    auto& ctx = *ctx_;
    const auto& timestamps = this->timestamps_;
    this->each(records, [&](const In& r, emitter<Out>& out) {
      const auto& key = this->key_of(r);
      ctx.set_key(key, this->group_of(key));
      ctx.set_timestamp(timestamps ? (*timestamps)(r) : runtime::min_watermark);
      if constexpr (requires { fn_.process(key, r, ctx, out); })
        fn_.process(key, r, ctx, out);
      else
        std::invoke(fn_, key, r, ctx, out);
    });
    this->sides_.spill();
    fire_processing_timers(ctx.now());
  }

  void flush() override {
    if (ctx_) fire_processing_timers(ctx_->now());
    this->sides_.flush();
    emitting_stage<In, Out>::flush();
  }

  void on_control(const runtime::control_event& e) override {
    if (e.kind == runtime::event_kind::watermark) fire_event_timers(e.value);
    this->sides_.on_control(e);
    emitting_stage<In, Out>::on_control(e);
  }

  void snapshot_extra(checkpoint::snapshot_builder& out) override {
    ctx_->event_timers().snapshot_to(out, "__timers/event");
    ctx_->processing_timers().snapshot_to(out, "__timers/processing");
  }

  status restore_extra(const checkpoint::restored_state& in) override {
    if (auto st = ctx_->event_timers().restore(in, "__timers/event"); !st.ok())
      return st;
    return ctx_->processing_timers().restore(in, "__timers/processing");
  }

  void finish() override {
    // The end of input is the largest watermark: every event-time timer is
    // due. Processing-time timers that are not due yet do not fire.
    fire_event_timers(runtime::max_watermark);
    this->sides_.finish();
    emitting_stage<In, Out>::finish();
  }

 private:
  void fire_event_timers(std::int64_t wm) {
    if (!ctx_) return;
    ctx_->set_watermark(wm);
    fire(ctx_->event_timers(), wm, time_domain::event_time);
  }

  void fire_processing_timers(std::int64_t now) {
    if (!ctx_ || ctx_->processing_timers().next_time() > now) return;
    fire(ctx_->processing_timers(), now, time_domain::processing_time);
  }

  void fire(timer_queue<K>& timers, std::int64_t up_to, time_domain domain) {
    if (timers.next_time() > up_to) return;
    auto& ctx = *ctx_;
    this->emit_with([&](emitter<Out>& out) {
      typename timer_queue<K>::timer t;
      while (timers.pop(up_to, t)) {
        ctx.set_key(t.key, t.kg);
        ctx.set_timestamp(t.time);
        ctx.set_timer_domain(domain);
        if constexpr (has_on_timer<Fn, K, Out>)
          fn_.on_timer(t.time, t.key, ctx, out);
      }
    });
    this->sides_.spill();
  }

  Fn fn_;
  std::unique_ptr<keyed_context<K>> ctx_;
};

}  // namespace stream::detail
