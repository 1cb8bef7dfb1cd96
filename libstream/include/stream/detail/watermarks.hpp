#pragma once

// The stage behind `assign_timestamps_and_watermarks`: tracks the largest
// timestamp of its subtask (its source split) and emits watermarks from it,
// periodically or after every batch, and declares idleness.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "stream/detail/operators.hpp"
#include "stream/event_time.hpp"
#include "stream/options.hpp"

namespace stream::detail {

template <class T>
class watermark_stage final : public operator_base<T, T> {
 public:
  using clock = std::chrono::steady_clock;

  watermark_stage(const runtime::stage_context& ctx,
                  runtime::stage_object* next, watermark_strategy<T> strategy)
      : operator_base<T, T>(ctx, next),
        strategy_(std::move(strategy)),
        timestamps_(*strategy_.timestamps()),
        interval_(ctx.options->watermark_interval),
        last_record_(clock::now()),
        last_emit_(last_record_) {}

  void push(std::vector<T>& records) override {
    this->in_->add(records.size());
    if (records.empty()) return;
    auto high = max_timestamp_;
    for (const auto& r : records) high = std::max(high, timestamps_(r));
    max_timestamp_ = high;
    this->forward(records);
    auto now = clock::now();
    last_record_ = now;
    idle_ = false;
    if (interval_.count() == 0 || now - last_emit_ >= interval_)
      emit_watermark(now);
  }

  /// Called on the flush timer: the periodic watermark and idleness.
  void flush() override {
    auto now = clock::now();
    emit_watermark(now);
    this->next_->flush();
    auto timeout = strategy_.idle_timeout();
    if (timeout > 0 && !idle_ &&
        now - last_record_ >= std::chrono::milliseconds{timeout}) {
      idle_ = true;
      this->next_->on_control({runtime::event_kind::idle, 0});
    }
  }

  /// Upstream watermarks are replaced by this stage's own.
  void on_control(const runtime::control_event&) override {}

 private:
  void emit_watermark(clock::time_point now) {
    last_emit_ = now;
    if (max_timestamp_ == runtime::min_watermark) return;
    auto wm = max_timestamp_ - strategy_.max_delay() - 1;
    if (wm <= emitted_) return;
    emitted_ = wm;
    this->next_->on_control({runtime::event_kind::watermark, wm});
  }

  watermark_strategy<T> strategy_;
  const timestamp_fn<T>& timestamps_;
  std::chrono::milliseconds interval_;
  std::int64_t max_timestamp_ = runtime::min_watermark;
  std::int64_t emitted_ = runtime::min_watermark;
  clock::time_point last_record_;
  clock::time_point last_emit_;
  bool idle_ = false;
};

}  // namespace stream::detail
