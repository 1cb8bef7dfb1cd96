#pragma once

// Window operators. Window contents live in the keyed backend, namespaced by
// window; a timer per (key, window) fires it. Event-time semantics follow
// Flink's EventTimeTrigger with allowed lateness:
// - a window fires when the watermark reaches its max timestamp (end - 1);
// - with lateness L its state stays until the watermark reaches max + L,
//   and every record arriving in that time fires it again (updated result);
// - a record all of whose windows are past max + L is late: it goes to the
//   late side output and is counted in `stream_late_records_total`.
// Processing-time windows fire once the wall clock reaches their end.
// Sessions: a record is late when its own window [ts, ts + gap) is past the
// lateness, judged before merging (Flink merges first, so a late record that
// touches a live session can still join it there).

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "stream/detail/operators.hpp"
#include "stream/detail/process.hpp"
#include "stream/detail/side_outputs.hpp"
#include "stream/metrics.hpp"
#include "stream/state.hpp"
#include "stream/windows.hpp"

namespace stream::detail {

// -- window functions: how records fold into a window and what it emits ----

template <class T, class F>
struct reduce_window_fn {
  using acc_type = T;
  using out_type = T;
  static constexpr bool mergeable = true;
  F fn;

  void add(T& acc, const T& r, bool created) const {
    if (created)
      acc = r;
    else
      acc = std::invoke(fn, std::as_const(acc), r);
  }
  void merge(T& acc, const T& other) const {
    acc = std::invoke(fn, std::as_const(acc), other);
  }
  template <class K>
  void emit(const K&, const time_window&, const T& acc, emitter<T>& out) const {
    out.emit(acc);
  }
};

/// No merge function: the aggregate cannot be used with session windows.
struct no_merge {};

template <class T, class Acc, class Add, class Result, class Merge>
struct aggregate_window_fn {
  using acc_type = Acc;
  static constexpr bool mergeable = !std::is_same_v<Merge, no_merge>;
  Acc init;
  Add add_fn;
  Result result;
  Merge merge_fn;

  void add(Acc& acc, const T& r, bool created) const {
    if (created) acc = init;
    std::invoke(add_fn, acc, r);
  }
  void merge(Acc& acc, const Acc& other) const {
    if constexpr (mergeable) std::invoke(merge_fn, acc, other);
  }
  template <class K, class U>
  void emit(const K& key, const time_window& w, const Acc& acc,
            emitter<U>& out) const {
    out.emit(std::invoke(result, key, w, acc));
  }
};

template <class T, class F>
struct process_window_fn {
  using acc_type = std::vector<T>;
  static constexpr bool mergeable = true;
  F fn;

  void add(std::vector<T>& acc, const T& r, bool) const { acc.push_back(r); }
  void merge(std::vector<T>& acc, const std::vector<T>& other) const {
    acc.insert(acc.end(), other.begin(), other.end());
  }
  template <class K, class U>
  void emit(const K& key, const time_window& w, const std::vector<T>& acc,
            emitter<U>& out) const {
    std::invoke(fn, key, w, acc, out);
  }
};

/// Window timers: (time, window) -> the keys whose window fires or is
/// cleaned up then. Registered once per key and window by the operators
/// (no deduplication needed), and grouped by window, so a tumbling window's
/// timers cost one small entry per key.
template <class K>
class window_timers {
 public:
  struct timer {
    std::int64_t time = 0;
    time_window window;
    key_group kg = 0;
    K key{};
  };

  void add(std::int64_t time, const time_window& w, key_group kg,
           const K& key) {
    std::pair<std::int64_t, time_window> at{time, w};
    if (next_ > 0 && !queue_.empty() && at < queue_.begin()->first) {
      // A new earliest entry: `next_` must not count in it.
      auto& keys = queue_.begin()->second;
      keys.erase(keys.begin(),
                 keys.begin() + static_cast<std::ptrdiff_t>(next_));
      next_ = 0;
    }
    queue_[at].emplace_back(kg, key);
  }

  std::int64_t next_time() const {
    return queue_.empty() ? runtime::max_watermark
                          : queue_.begin()->first.first;
  }

  /// Checkpoint: adds every pending timer to `out` as state `name` (entry
  /// key: key and window; value: time).
  void snapshot_to(checkpoint::snapshot_builder& out,
                   std::string_view name) const {
    auto index = out.state_index(name);
    std::size_t skip = next_;
    for (const auto& [when, keys] : queue_) {
      for (std::size_t i = skip; i < keys.size(); ++i)
        out.add_entry(index, keys[i].first, keys[i].second, when.second,
                      when.first);
      skip = 0;
    }
  }

  /// Restore: registers the timers saved as state `name` in `in`.
  status restore(const checkpoint::restored_state& in, std::string_view name) {
    status failed;
    auto st = in.for_each([&](const std::string& state, key_group kg,
                              std::string_view key, std::string_view value) {
      if (state != name || !failed.ok()) return;
      K k{};
      time_window w;
      std::int64_t time = 0;
      failed = state::decode_entry_key(key, 0, k, w);
      if (failed.ok()) failed = checkpoint::decode_all(value, time);
      if (failed.ok()) add(time, w, kg, k);
    });
    return st.ok() ? failed : st;
  }

  /// Takes the earliest timer with time <= `up_to`; false when none.
  bool pop(std::int64_t up_to, timer& out) {
    while (!queue_.empty()) {
      auto it = queue_.begin();
      if (it->first.first > up_to) return false;
      auto& keys = it->second;
      if (next_ < keys.size()) {
        auto& [kg, key] = keys[next_++];
        out.time = it->first.first;
        out.window = it->first.second;
        out.kg = kg;
        out.key = std::move(key);
        return true;
      }
      queue_.erase(it);
      next_ = 0;
    }
    return false;
  }

 private:
  std::map<std::pair<std::int64_t, time_window>,
           std::vector<std::pair<key_group, K>>>
      queue_;
  std::size_t next_ = 0;  ///< Consumed prefix of the earliest entry.
};

/// What every window operator shares: key, time, backend, timers, the late
/// side output and its counter.
template <class In, class Out, class K, class KeyFn>
class window_stage_base : public keyed_operator<In, Out, K, KeyFn> {
  using base = keyed_operator<In, Out, K, KeyFn>;

 public:
  window_stage_base(const runtime::stage_context& ctx,
                    runtime::stage_object* next, KeyFn key_fn,
                    window_assigner assigner, std::int64_t lateness,
                    std::string late_tag,
                    std::shared_ptr<const timestamp_fn<In>> timestamps)
      : base(ctx, next, std::move(key_fn), std::move(timestamps)),
        assigner_(assigner),
        lateness_(assigner.domain == time_domain::event_time ? lateness : 0),
        late_tag_(std::move(late_tag)) {}

  void flush() override {
    if (this->backend_) fire_processing(processing_time_now());
    this->sides_.flush();
    emitting_stage<In, Out>::flush();
  }

  void on_control(const runtime::control_event& e) override {
    if (e.kind == runtime::event_kind::watermark && this->backend_) {
      watermark_ = std::max(watermark_, e.value);
      fire(event_timers_, watermark_);
    }
    this->sides_.on_control(e);
    emitting_stage<In, Out>::on_control(e);
  }

  void finish() override {
    if (this->backend_) {
      // End of input: every window is complete, in either domain.
      watermark_ = runtime::max_watermark;
      fire(event_timers_, runtime::max_watermark);
      fire(processing_timers_, runtime::max_watermark);
    }
    this->sides_.finish();
    emitting_stage<In, Out>::finish();
  }

  void close() override { this->backend_.reset(); }

 protected:
  void snapshot_extra(checkpoint::snapshot_builder& out) override {
    event_timers_.snapshot_to(out, "__window-timers/event");
    processing_timers_.snapshot_to(out, "__window-timers/processing");
    out.operator_state = checkpoint::encode_all(watermark_);
  }

  status restore_extra(const checkpoint::restored_state& in) override {
    if (auto st = event_timers_.restore(in, "__window-timers/event"); !st.ok())
      return st;
    if (auto st = processing_timers_.restore(in, "__window-timers/processing");
        !st.ok())
      return st;
    // The watermark the operator had reached: windows that fired before the
    // checkpoint count as fired (a late record fires them again).
    if (in.has_operator_state)
      return checkpoint::decode_all(in.operator_state, watermark_);
    if (in.rescaled) return restore_rescaled_watermark(in);
    return {};
  }

  /// After a change of parallelism a subtask owns key groups of several old
  /// subtasks: it starts from the lowest of their watermarks, so that no
  /// window that one of them had not fired yet is lost (its state is
  /// restored and fires when the watermark passes it again). Windows that
  /// fired were purged with their state, so they fire again only for a
  /// record that would have been late before. At an aligned checkpoint
  /// every subtask has seen the same watermarks, so the lowest is also the
  /// one they all had.
  status restore_rescaled_watermark(const checkpoint::restored_state& in) {
    std::optional<std::int64_t> lowest;
    for (const std::string& state : in.rescaled_operator_states) {
      if (state.empty()) continue;
      std::int64_t w = runtime::min_watermark;
      if (auto st = checkpoint::decode_all(state, w); !st.ok()) return st;
      lowest = lowest ? std::min(*lowest, w) : w;
    }
    if (lowest) watermark_ = *lowest;
    return {};
  }

  status open_base() {
    if (auto st = this->open_state(); !st.ok()) return st;
    const auto& ctx = this->stage_ctx_;
    late_ = &ctx.metrics->get_counter(
        "stream_late_records_total",
        "Records that arrived after their windows' allowed lateness.",
        {{"job", ctx.job_name},
         {"operator", ctx.operator_name},
         {"subtask", std::to_string(ctx.subtask)}});
    return {};
  }

  bool event_time() const noexcept {
    return assigner_.domain == time_domain::event_time;
  }

  /// The time a record is assigned by: its timestamp or the wall clock.
  std::int64_t time_of(const In& r, std::int64_t now) const {
    return event_time() ? (*this->timestamps_)(r) : now;
  }

  /// Registers the timer of window `w` of a key: firing, or (past it,
  /// within the lateness) cleanup.
  void register_window(key_group kg, const K& key, const time_window& w) {
    if (!event_time()) {
      processing_timers_.add(w.max_timestamp(), w, kg, key);
    } else if (w.max_timestamp() > watermark_) {
      event_timers_.add(w.max_timestamp(), w, kg, key);
    } else {
      event_timers_.add(w.max_timestamp() + lateness_, w, kg, key);
    }
  }

  /// Whether `w` is past its lateness, so nothing may change it any more.
  bool window_late(const time_window& w) const {
    return event_time() && w.max_timestamp() + lateness_ <= watermark_;
  }

  /// Whether `w` already fired, so an update fires it again right away.
  bool window_fired(const time_window& w) const {
    return event_time() && w.max_timestamp() <= watermark_;
  }

  void late_record(const In& r) {
    late_->add(1);
    if (!late_tag_.empty()) this->sides_.emit(late_tag_, r);
  }

  /// Fires the processing-time windows that ended: end <= now, i.e. max
  /// timestamp < now. Firing at max == now would let a record arriving in
  /// that same millisecond reopen the window and fire it twice.
  void fire_processing(std::int64_t now) {
    if (processing_timers_.next_time() < now) fire(processing_timers_, now - 1);
  }

  /// Fires (or cleans up) the window of one timer.
  virtual void on_window_timer(key_group kg, const K& key, const time_window& w,
                               bool cleanup, emitter<Out>& out) = 0;

  using timers = window_timers<K>;

  void fire(timers& queue, std::int64_t up_to) {
    if (queue.next_time() > up_to) return;
    this->emit_with([&](emitter<Out>& out) {
      typename timers::timer t;
      while (queue.pop(up_to, t)) {
        bool cleanup = t.time != t.window.max_timestamp();
        on_window_timer(t.kg, t.key, t.window, cleanup, out);
        // Past its max timestamp with lateness left: clean up later.
        if (!cleanup && lateness_ > 0 && &queue == &event_timers_)
          event_timers_.add(t.window.max_timestamp() + lateness_, t.window,
                            t.kg, t.key);
      }
    });
    this->sides_.spill();
  }

  window_assigner assigner_;
  std::int64_t lateness_;
  std::string late_tag_;
  counter* late_ = nullptr;
  std::int64_t watermark_ = runtime::min_watermark;
  timers event_timers_;
  timers processing_timers_;
  std::vector<time_window> windows_;
};

/// Tumbling and sliding windows: state per (key, window).
template <class In, class Out, class K, class KeyFn, class W>
class window_stage final : public window_stage_base<In, Out, K, KeyFn> {
  using base = window_stage_base<In, Out, K, KeyFn>;
  using acc_type = typename W::acc_type;

 public:
  window_stage(const runtime::stage_context& ctx, runtime::stage_object* next,
               KeyFn key_fn, window_assigner assigner, std::int64_t lateness,
               std::string late_tag,
               std::shared_ptr<const timestamp_fn<In>> timestamps, W fn)
      : base(ctx, next, std::move(key_fn), assigner, lateness,
             std::move(late_tag), std::move(timestamps)),
        fn_(std::move(fn)) {}

  status open() override {
    if (auto st = this->open_base(); !st.ok()) return st;
    contents_ = this->backend_->template make_table<K, time_window, acc_type>(
        "window-contents");
    return {};
  }

  void close() override {
    contents_.reset();
    base::close();
  }

  void push(std::vector<In>& records) override {
    auto now = this->event_time() ? 0 : processing_time_now();
    auto& windows = this->windows_;
    const bool tumbling =
        this->assigner_.shape == window_assigner::kind::tumbling;
    this->each(records, [&](const In& r, emitter<Out>& out) {
      const auto& key = this->key_of(r);
      auto kg = this->group_of(key);
      auto ts = this->time_of(r, now);
      if (tumbling) {
        // One window; consecutive records mostly share it, which saves the
        // division of computing its start.
        if (ts < last_.start || ts >= last_.end) {
          auto start = window_assigner::window_start(ts, this->assigner_.offset,
                                                     this->assigner_.size);
          last_ = {start, start + this->assigner_.size};
        }
        if (!add(kg, key, r, last_, out)) this->late_record(r);
        return;
      }
      windows.clear();
      this->assigner_.assign(ts, windows);
      bool all_late = true;
      for (const auto& w : windows) all_late &= !add(kg, key, r, w, out);
      if (all_late) this->late_record(r);
    });
    this->sides_.spill();
    if (!this->event_time()) this->fire_processing(now);
  }

 private:
  /// Folds `r` into window `w` of its key; false when `w` is past its
  /// lateness (the record is late for it).
  bool add(key_group kg, const K& key, const In& r, const time_window& w,
           emitter<Out>& out) {
    if (this->window_late(w)) return false;
    bool created = false;
    auto& acc = contents_->upsert(kg, key, w, created);
    fn_.add(acc, r, created);
    if (this->window_fired(w)) fn_.emit(key, w, acc, out);
    if (created) this->register_window(kg, key, w);
    return true;
  }

  void on_window_timer(key_group kg, const K& key, const time_window& w,
                       bool cleanup, emitter<Out>& out) override {
    if (!cleanup) {
      if (const auto* acc = contents_->find(kg, key, w))
        fn_.emit(key, w, *acc, out);
      if (this->lateness_ > 0) return;
    }
    contents_->erase(kg, key, w);
  }

  W fn_;
  std::unique_ptr<state::table<K, time_window, acc_type>> contents_;
  time_window last_{0, 0};  ///< Tumbling: the window of the last record.
};

/// Session windows: per key, the open sessions and their contents; a record
/// opens [ts, ts + gap) and merges every session it touches.
template <class In, class Out, class K, class KeyFn, class W>
class session_window_stage final : public window_stage_base<In, Out, K, KeyFn> {
  using base = window_stage_base<In, Out, K, KeyFn>;
  using acc_type = typename W::acc_type;
  using sessions = std::vector<std::pair<time_window, acc_type>>;
  static_assert(W::mergeable,
                "session windows need a merge function for aggregate()");

 public:
  session_window_stage(const runtime::stage_context& ctx,
                       runtime::stage_object* next, KeyFn key_fn,
                       window_assigner assigner, std::int64_t lateness,
                       std::string late_tag,
                       std::shared_ptr<const timestamp_fn<In>> timestamps, W fn)
      : base(ctx, next, std::move(key_fn), assigner, lateness,
             std::move(late_tag), std::move(timestamps)),
        fn_(std::move(fn)) {}

  status open() override {
    if (auto st = this->open_base(); !st.ok()) return st;
    sessions_ =
        this->backend_->template make_table<K, state::void_namespace, sessions>(
            "sessions");
    return {};
  }

  void close() override {
    sessions_.reset();
    base::close();
  }

  void push(std::vector<In>& records) override {
    auto now = this->event_time() ? 0 : processing_time_now();
    this->each(records, [&](const In& r, emitter<Out>& out) {
      const auto& key = this->key_of(r);
      auto kg = this->group_of(key);
      auto ts = this->time_of(r, now);
      time_window w{ts, ts + this->assigner_.gap};
      if (this->window_late(w)) return this->late_record(r);
      bool created = false;
      auto& list = sessions_->upsert(kg, key, {}, created);
      // Merge every session that touches the new one into it.
      acc_type acc{};
      bool has_acc = false;
      std::vector<time_window>& merged_away = merged_away_;
      merged_away.clear();
      for (auto it = list.begin(); it != list.end();) {
        if (!it->first.intersects(w)) {
          ++it;
          continue;
        }
        merged_away.push_back(it->first);
        w = {std::min(w.start, it->first.start),
             std::max(w.end, it->first.end)};
        if (has_acc) {
          fn_.merge(acc, it->second);
        } else {
          acc = std::move(it->second);
          has_acc = true;
        }
        it = list.erase(it);
      }
      fn_.add(acc, r, !has_acc);
      auto pos = std::lower_bound(
          list.begin(), list.end(), w,
          [](const auto& s, const time_window& x) { return s.first < x; });
      const auto& merged = list.emplace(pos, w, std::move(acc))->second;
      if (this->window_fired(w)) fn_.emit(key, w, merged, out);
      // A session that did not grow keeps its timer; a new window needs one
      // (timers of merged-away windows find nothing when they fire).
      if (std::find(merged_away.begin(), merged_away.end(), w) ==
          merged_away.end())
        this->register_window(kg, key, w);
    });
    this->sides_.spill();
    if (!this->event_time()) this->fire_processing(now);
  }

 private:
  void on_window_timer(key_group kg, const K& key, const time_window& w,
                       bool cleanup, emitter<Out>& out) override {
    // Timers of sessions that were merged away find nothing.
    const auto* list = sessions_->find(kg, key, {});
    if (list == nullptr) return;
    auto it = std::find_if(list->begin(), list->end(),
                           [&](const auto& s) { return s.first == w; });
    if (it == list->end()) return;
    if (!cleanup) {
      fn_.emit(key, w, it->second, out);
      if (this->lateness_ > 0) return;
    }
    bool created = false;
    auto& mutable_list = sessions_->upsert(kg, key, {}, created);
    std::erase_if(mutable_list, [&](const auto& s) { return s.first == w; });
    if (mutable_list.empty()) sessions_->erase(kg, key, {});
  }

  W fn_;
  std::unique_ptr<state::table<K, state::void_namespace, sessions>> sessions_;
  std::vector<time_window> merged_away_;
};

}  // namespace stream::detail
