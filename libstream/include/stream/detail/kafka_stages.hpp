#pragma once

// The typed stages of the Kafka connectors: the source turns messages into
// records and watermarks (per partition), the sink turns records into
// messages. The reader and writer they drive are in kafka_io.hpp.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "stream/checkpoint/snapshot.hpp"
#include "stream/detail/kafka_io.hpp"
#include "stream/detail/sources.hpp"
#include "stream/event_time.hpp"
#include "stream/metrics.hpp"
#include "stream/options.hpp"
#include "stream/runtime/stage.hpp"

namespace stream::kafka::detail {

inline void check(const status& st) {
  if (!st.ok()) throw std::runtime_error(st.message());
}

/// Event time of one partition of a source subtask.
struct partition_clock {
  std::int64_t max_timestamp = runtime::min_watermark;
  std::chrono::steady_clock::time_point last_record;
  bool idle = false;
};

/// The highest timestamp a source subtask's watermark follows: the minimum
/// over its active partitions; when every partition is idle, the maximum
/// over those that had data (as Flink's watermark valve does when all its
/// inputs turn idle), so that the result does not depend on the order in
/// which they turned idle. `min_watermark` when there is nothing to follow
/// yet; `all_idle` says which case applied.
inline std::int64_t followed_timestamp(
    const std::vector<partition_clock>& clocks, bool& all_idle) {
  std::int64_t low = runtime::max_watermark;
  std::int64_t high = runtime::min_watermark;
  all_idle = true;
  for (const auto& c : clocks) {
    if (c.idle) {
      high = std::max(high, c.max_timestamp);
    } else {
      all_idle = false;
      low = std::min(low, c.max_timestamp);
    }
  }
  return all_idle ? high : low;
}

/// The head of a Kafka source chain (see `kafka::source`).
template <class T, class Deserialize>
class source_stage final : public stream::detail::source_base<T> {
 public:
  using clock = std::chrono::steady_clock;

  source_stage(const runtime::stage_context& ctx, runtime::stage_object* next,
               source_options options, Deserialize deserialize,
               std::optional<watermark_strategy<T>> strategy)
      : stream::detail::source_base<T>(ctx, next),
        ctx_(ctx),
        options_(std::move(options)),
        deserialize_(std::move(deserialize)),
        strategy_(std::move(strategy)),
        rate_(0),
        interval_(ctx.options->watermark_interval),
        bad_(&stream::detail::bad_records_counter(ctx)) {}

  status open() override {
    auto r = reader::open(options_, ctx_);
    if (!r) return r.error();
    reader_ = std::move(*r);
    // The rate is shared by partitions: this subtask's part is its share of
    // them (subtasks without partitions take none).
    if (reader_->topic_partitions() > 0)
      rate_ = options_.rate *
              static_cast<double>(reader_->partitions().size()) /
              static_cast<double>(reader_->topic_partitions());
    start_ = clock::now();
    last_emit_ = start_;
    last_lag_ = start_;
    clocks_.assign(reader_->partitions().size(), partition_clock{});
    for (auto& c : clocks_) c.last_record = start_;
    return {};
  }

  runtime::pull_result pull(std::size_t max_records) override {
    if (this->stop_) return finish_input();
    position();
    auto now = clock::now();
    std::size_t n = max_records;
    if (rate_ > 0) {
      auto elapsed = std::chrono::duration<double>(now - start_).count();
      auto due = static_cast<std::uint64_t>(elapsed * rate_) + 1;
      if (due <= consumed_)
        return throttled(now + std::chrono::milliseconds{2});
      n = static_cast<std::size_t>(std::min<std::uint64_t>(n, due - consumed_));
    }
    reader_->poll(n, polled_);
    for (const auto& p : polled_) take(p.index, p.view, now);
    const auto got = polled_.size();
    consumed_ += got;
    this->forward(this->out_);
    if (now - last_lag_ >= std::chrono::seconds{1}) {
      last_lag_ = now;
      reader_->update_lag();
    }
    if (strategy_ && (interval_.count() == 0 || now - last_emit_ >= interval_))
      emit_watermark(now);
    if (got > 0) {
      empty_polls_ = 0;
      return {};
    }
    if (reader_->finished()) return finish_input();
    // Nothing fetched: librdkafka fetches in the background. Look again
    // soon instead of blocking the actor's thread in a poll, backing off
    // from 1 ms to 10 ms while the partitions stay empty (latency against
    // wake-ups of idle subtasks).
    empty_polls_ = std::min(empty_polls_ + 1, 10);
    return throttled(now + std::chrono::milliseconds{empty_polls_});
  }

  /// The flush timer: periodic watermark and idleness.
  /// The flush timer (also while the task waits for credit): periodic
  /// watermark, idleness and lag.
  void flush() override {
    auto now = clock::now();
    if (now - last_lag_ >= std::chrono::seconds{1}) {
      last_lag_ = now;
      reader_->update_lag();
    }
    if (strategy_) emit_watermark(now);
    this->next_->flush();
  }

  void snapshot_state(std::int64_t id,
                      checkpoint::pending_snapshot& out) override {
    // Dead letters written before the barrier must be stored before the
    // checkpoint that skips their messages completes.
    check(reader_->flush_dead_letters());
    stream::detail::source_base<T>::snapshot_state(id, out);
    snapshots_[id] = reader_->positions();
    while (snapshots_.size() > 16) snapshots_.erase(snapshots_.begin());
  }

  void notify_checkpoint_complete(std::int64_t id) override {
    auto it = snapshots_.find(id);
    if (it == snapshots_.end()) return;
    reader_->commit_to_group(it->second);
    snapshots_.erase(snapshots_.begin(), std::next(it));
  }

 protected:
  std::vector<std::uint64_t> position_state() const override {
    const_cast<source_stage*>(this)->position();
    std::vector<std::uint64_t> out;
    for (const auto& p : reader_->positions()) {
      out.push_back(static_cast<std::uint64_t>(p.partition));
      out.push_back(static_cast<std::uint64_t>(p.next_offset));
      out.push_back(static_cast<std::uint64_t>(p.stop_offset));
    }
    return out;
  }

  status seek_to(const std::vector<std::uint64_t>& p) override {
    if (p.size() % 3 != 0)
      return this->bad_position("expected partition, offset and stop offset");
    std::vector<partition_position> positions;
    for (std::size_t i = 0; i < p.size(); i += 3)
      positions.push_back({static_cast<std::int32_t>(p[i]),
                           static_cast<std::int64_t>(p[i + 1]),
                           static_cast<std::int64_t>(p[i + 2])});
    positioned_ = true;
    return reader_->restore(positions);
  }

 private:
  static runtime::pull_result throttled(clock::time_point at) {
    return {runtime::pull_result::state::throttled, at};
  }

  /// Resolves the start positions, at the first pull or the first
  /// checkpoint, whichever comes first.
  void position() {
    if (positioned_) return;
    check(reader_->start());
    positioned_ = true;
  }

  runtime::pull_result finish_input() {
    position();
    check(reader_->flush_dead_letters());
    return this->end();
  }

  void take(std::size_t partition, const message& m, clock::time_point now) {
    auto r = deserialize_(m);
    if (!r) {
      reject(m, r.error());
      return;
    }
    if (strategy_) {
      auto& c = clocks_[partition];
      c.max_timestamp =
          std::max(c.max_timestamp, (*strategy_->timestamps())(*r));
      c.last_record = now;
      c.idle = false;
    }
    this->out_.push_back(std::move(*r));
  }

  void reject(const message& m, const status& error) {
    auto where = "partition " + std::to_string(m.partition) + " offset " +
                 std::to_string(m.offset);
    if (options_.bad_records == bad_record_policy::fail)
      throw std::runtime_error("kafka source: bad record at " + where + ": " +
                               error.message());
    bad_->add(1);
    if (options_.bad_records == bad_record_policy::dead_letter) {
      check(reader_->dead_letter(m, error.message()));
    } else if (bad_->raw() <= 1000) {
      std::fprintf(stderr, "stream: skipped bad record at %s: %s\n",
                   where.c_str(), error.message().c_str());
    }
  }

  /// Watermark = (see `followed_timestamp`) - delay - 1; a subtask whose
  /// partitions are all idle (or that has none) says so after it.
  void emit_watermark(clock::time_point now) {
    last_emit_ = now;
    auto timeout = std::chrono::milliseconds{strategy_->idle_timeout()};
    for (std::size_t i = 0; i < clocks_.size(); ++i) {
      auto& c = clocks_[i];
      // Idle: nothing to read (the consumer reached the partition's end)
      // for the timeout, not merely nothing pulled (backpressure, rate).
      if (!reader_->at_end(i)) {
        c.last_record = now;
        c.idle = false;
      } else if (timeout.count() > 0 && now - c.last_record >= timeout) {
        c.idle = true;
      }
    }
    bool all_idle = false;
    auto followed = followed_timestamp(clocks_, all_idle);
    if (all_idle) {
      if (!subtask_idle_ && (timeout.count() > 0 || clocks_.empty())) {
        if (followed != runtime::min_watermark) advance(followed);
        subtask_idle_ = true;
        this->next_->on_control({runtime::event_kind::idle, 0});
      }
      return;
    }
    subtask_idle_ = false;
    if (followed == runtime::min_watermark) return;
    advance(followed);
  }

  /// Emits the watermark of partitions whose highest timestamp is `low`,
  /// unless it does not advance.
  void advance(std::int64_t low) {
    auto wm = low - strategy_->max_delay() - 1;
    if (wm <= emitted_) return;
    emitted_ = wm;
    this->next_->on_control({runtime::event_kind::watermark, wm});
  }

  runtime::stage_context ctx_;
  source_options options_;
  Deserialize deserialize_;
  std::optional<watermark_strategy<T>> strategy_;
  double rate_;
  std::chrono::milliseconds interval_;
  counter* bad_;
  std::unique_ptr<reader> reader_;
  bool positioned_ = false;
  std::uint64_t consumed_ = 0;
  int empty_polls_ = 0;
  clock::time_point start_;
  clock::time_point last_emit_;
  clock::time_point last_lag_;
  std::vector<partition_clock> clocks_;
  std::vector<reader::polled> polled_;  ///< reused by every pull
  std::int64_t emitted_ = runtime::min_watermark;
  bool subtask_idle_ = false;
  /// Positions per checkpoint not yet complete, committed to the group
  /// when it is (bounded: a checkpoint that never completes is forgotten).
  std::map<std::int64_t, std::vector<partition_position>> snapshots_;
};

/// A Kafka sink subtask (see `kafka::sink`).
template <class T, class Serialize>
class sink_stage final : public runtime::consumer<T> {
 public:
  sink_stage(const runtime::stage_context& ctx, sink_options options,
             Serialize serialize)
      : ctx_(ctx),
        in_(ctx.records_in),
        options_(std::move(options)),
        serialize_(std::move(serialize)),
        checkpointing_(ctx.options->checkpoint_interval.count() > 0) {}

  status open() override {
    auto w = writer::open(options_, ctx_);
    if (!w) return w.error();
    writer_ = std::move(*w);
    return {};
  }

  bool stateful() const override { return true; }

  status restore_state(const checkpoint::restored_state& in) override {
    started_ = true;
    return writer_->restore(
        in.checkpoint_id, in.has_operator_state ? &in.operator_state : nullptr);
  }

  void push(std::vector<T>& records) override {
    start();
    in_->add(records.size());
    for (const auto& r : records) {
      record out = serialize_(r);
      check(writer_->write(std::move(out.key), std::move(out.value)));
    }
  }

  void flush() override {}

  void finish() override {
    start();
    // With checkpoints, the final checkpoint stages and commits the rest.
    if (!checkpointing_) check(writer_->finish());
  }

  void on_control(const runtime::control_event&) override {}

  void snapshot_state(std::int64_t id,
                      checkpoint::pending_snapshot& out) override {
    start();
    check(writer_->snapshot(id, out.data->operator_state));
  }

  void notify_checkpoint_complete(std::int64_t id) override {
    check(writer_->commit(id));
  }

 private:
  /// A fresh start (no restore) fences older producers of this subtask.
  void start() {
    if (started_) return;
    started_ = true;
    check(writer_->restore(0, nullptr));
  }

  runtime::stage_context ctx_;
  counter* in_;
  sink_options options_;
  Serialize serialize_;
  bool checkpointing_;
  bool started_ = false;
  std::unique_ptr<writer> writer_;
};

}  // namespace stream::kafka::detail
