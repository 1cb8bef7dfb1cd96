#pragma once

#include <algorithm>
#include <cassert>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "stream/checkpoint/snapshot.hpp"
#include "stream/detail/operators.hpp"
#include "stream/detail/text_io.hpp"
#include "stream/metrics.hpp"
#include "stream/runtime/stage.hpp"

namespace stream::detail {

/// Shared part of sources: the downstream link and the output counter.
template <class T>
class source_base : public runtime::source_stage {
 public:
  source_base(const runtime::stage_context& ctx, runtime::stage_object* next)
      : next_(as_consumer<T>(next)), out_count_(ctx.records_out) {}

  void request_stop() override { stop_ = true; }
  void flush() override { next_->flush(); }

  /// Sources store their position in checkpoints.
  bool stateful() const override { return true; }

  void snapshot_state(std::int64_t,
                      checkpoint::pending_snapshot& out) override {
    out.data->operator_state = checkpoint::encode_all(position_state());
  }

  status restore_state(const checkpoint::restored_state& in) override {
    if (!in.has_operator_state)
      return {errc::malformed_data,
              "the checkpoint has no position for this source subtask"};
    std::vector<std::uint64_t> position;
    if (auto st = checkpoint::decode_all(in.operator_state, position); !st.ok())
      return st;
    return seek_to(position);
  }

 protected:
  /// The resumable position, as numbers.
  virtual std::vector<std::uint64_t> position_state() const = 0;
  /// Continues at a position from `position_state()`.
  virtual status seek_to(const std::vector<std::uint64_t>& position) = 0;

  static status bad_position(const char* what) {
    return {errc::malformed_data,
            std::string{"checkpointed source position does not fit: "} + what};
  }

  void forward(std::vector<T>& records) {
    if (records.empty()) return;
    out_count_->add(records.size());
    next_->push(records);
    records.clear();
  }

  runtime::pull_result end() {
    next_->finish();
    return {runtime::pull_result::state::ended, {}};
  }

  runtime::consumer<T>* next_;
  counter* out_count_;
  std::vector<T> out_;
  bool stop_ = false;
};

/// Calls a user function with record indices. Subtask s of p produces the
/// indices s, s+p, s+2p, ... below `count`, so the output does not depend on
/// timing, and the next index is the resumable position.
template <class T, class F>
class generator_source final : public source_base<T> {
 public:
  generator_source(const runtime::stage_context& ctx,
                   runtime::stage_object* next, F fn, std::uint64_t count,
                   double rate)
      : source_base<T>(ctx, next),
        fn_(std::move(fn)),
        next_index_(ctx.subtask),
        stride_(ctx.parallelism),
        count_(count),
        rate_(rate / ctx.parallelism) {}

  status open() override {
    start_ = std::chrono::steady_clock::now();
    return {};
  }

  runtime::pull_result pull(std::size_t max_records) override {
    if (this->stop_ || next_index_ >= count_) return this->end();
    std::size_t n = max_records;
    if (rate_ > 0) {
      auto due = due_records();
      if (due <= produced_) {
        // Sleep until a few milliseconds' worth (at most a batch) is due,
        // not until the next single record: one wake-up per record would
        // cost far more than the records themselves at low rates.
        auto chunk =
            std::clamp(rate_ * 0.005, 1.0, static_cast<double>(max_records));
        auto at =
            start_ +
            std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                // due_records() counts the first record as due at once.
                std::chrono::duration<double>(
                    (static_cast<double>(produced_) + chunk - 1) / rate_));
        return {runtime::pull_result::state::throttled, at};
      }
      n = std::min<std::uint64_t>(n, due - produced_);
    }
    auto& out = this->out_;
    // Records left below `count` (at least one: checked above).
    auto left = (count_ - next_index_ - 1) / stride_ + 1;
    n = static_cast<std::size_t>(std::min<std::uint64_t>(n, left));
    if constexpr (std::is_default_constructible_v<T>) {
      // Assigning into a sized buffer keeps the loop free of capacity
      // checks: push_back was the largest single cost of the generator.
      out.resize(n);
      for (auto& slot : out) {
        slot = std::invoke(fn_, next_index_);
        next_index_ += stride_;
      }
    } else {
      out.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        out.push_back(std::invoke(fn_, next_index_));
        next_index_ += stride_;
      }
    }
    // The last step may pass `count`: park there. (Wrapping would need
    // 2^64 records, even for an unbounded generator.)
    next_index_ = std::min(next_index_, count_);
    produced_ += out.size();
    this->forward(out);
    return {};
  }

  /// Records due by now at the configured rate (saturating).
  std::uint64_t due_records() const {
    auto elapsed = std::chrono::duration<double>(
        std::chrono::steady_clock::now() - start_);
    double due = elapsed.count() * rate_ + 1;
    return due >= 1.8e19 ? UINT64_MAX : static_cast<std::uint64_t>(due);
  }

  /// The index of the next record this subtask produces: what a checkpoint
  /// stores.
  std::uint64_t position() const noexcept { return next_index_; }

  /// Resumes at a position taken from `position()` of the same subtask.
  void seek(std::uint64_t position) noexcept {
    assert(position % stride_ == next_index_ % stride_);
    next_index_ = position;
  }

 protected:
  std::vector<std::uint64_t> position_state() const override {
    return {next_index_, stride_};
  }

  status seek_to(const std::vector<std::uint64_t>& p) override {
    if (p.size() != 2 || p[1] != stride_ ||
        (p[0] < count_ && p[0] % stride_ != next_index_ % stride_))
      return this->bad_position(
          "the generator ran with another parallelism or subtask");
    next_index_ = std::min(p[0], count_);
    return {};
  }

 private:
  F fn_;
  std::uint64_t next_index_;
  std::uint64_t stride_;
  std::uint64_t count_;
  double rate_;
  std::uint64_t produced_ = 0;
  std::chrono::steady_clock::time_point start_;
};

/// Emits the lines of one text file (parallelism 1).
class text_file_source final : public source_base<std::string> {
 public:
  text_file_source(const runtime::stage_context& ctx,
                   runtime::stage_object* next, std::string path)
      : source_base<std::string>(ctx, next), path_(std::move(path)) {}

  status open() override {
    auto reader = line_reader::open(path_);
    if (!reader) return reader.error();
    reader_ = std::move(*reader);
    return {};
  }

  runtime::pull_result pull(std::size_t max_records) override {
    if (stop_) return end();
    out_.resize(max_records);
    std::size_t n = 0;
    while (n < max_records && reader_->next(out_[n])) ++n;
    out_.resize(n);
    if (!reader_->error().ok())
      throw std::runtime_error(reader_->error().message());
    bool done = n < max_records;
    forward(out_);
    return done ? end() : runtime::pull_result{};
  }

  /// Byte offset of the next line.
  std::uint64_t position() const noexcept { return reader_->offset(); }

 protected:
  std::vector<std::uint64_t> position_state() const override {
    return {reader_->offset()};
  }

  status seek_to(const std::vector<std::uint64_t>& p) override {
    if (p.size() != 1) return bad_position("expected a byte offset");
    return reader_->seek(p[0]);
  }

 private:
  std::string path_;
  std::unique_ptr<line_reader> reader_;
};

/// What a parsing file source does with a line that does not parse.
enum class bad_records : std::uint8_t {
  skip,  ///< Count it, report it with its line number, go on.
  fail,  ///< Fail the job at the first one.
};

/// `stream_bad_records_total` of a parsing source subtask.
inline counter& bad_records_counter(const runtime::stage_context& ctx) {
  return ctx.metrics->get_counter(
      "stream_bad_records_total",
      "Input records that could not be parsed and were skipped.",
      {{"job", ctx.job_name},
       {"operator", ctx.operator_name},
       {"subtask", std::to_string(ctx.subtask)}});
}

/// Emits `parse(line)` for each line of a text file (parallelism 1). A line
/// that does not parse is counted in `stream_bad_records_total`, reported
/// on stderr as "<path>:<line>: <reason>" (the first 1000; then counted
/// only), and skipped, or fails the job (`bad_records::fail`).
template <class T, class Parse>
class parsed_file_source final : public source_base<T> {
 public:
  parsed_file_source(const runtime::stage_context& ctx,
                     runtime::stage_object* next, std::string path, Parse parse,
                     bad_records policy)
      : source_base<T>(ctx, next),
        path_(std::move(path)),
        parse_(std::move(parse)),
        policy_(policy),
        bad_(&bad_records_counter(ctx)) {}

  status open() override {
    auto reader = line_reader::open(path_);
    if (!reader) return reader.error();
    reader_ = std::move(*reader);
    return {};
  }

  runtime::pull_result pull(std::size_t max_records) override {
    if (this->stop_) return this->end();
    auto& out = this->out_;
    out.clear();
    bool done = false;
    while (out.size() < max_records) {
      if (!reader_->next(line_)) {
        done = true;
        break;
      }
      ++line_number_;
      auto parsed = std::invoke(parse_, std::string_view{line_});
      if (parsed.ok()) {
        out.push_back(std::move(*parsed));
        continue;
      }
      auto where = path_ + ":" + std::to_string(line_number_) + ": " +
                   parsed.error().message();
      if (policy_ == bad_records::fail)
        throw std::runtime_error("bad record at " + where);
      bad_->add(1);
      if (++reported_ <= 1000) {
        std::fprintf(stderr, "stream: skipped bad record at %s\n",
                     where.c_str());
        if (reported_ == 1000)
          std::fprintf(stderr,
                       "stream: %s: further bad records are only counted\n",
                       path_.c_str());
      }
    }
    if (!reader_->error().ok())
      throw std::runtime_error(reader_->error().message());
    this->forward(out);
    return done ? this->end() : runtime::pull_result{};
  }

  /// Byte offset of the next line.
  std::uint64_t position() const noexcept { return reader_->offset(); }

 protected:
  std::vector<std::uint64_t> position_state() const override {
    return {reader_->offset(), line_number_};
  }

  status seek_to(const std::vector<std::uint64_t>& p) override {
    if (p.size() != 2)
      return this->bad_position("expected a byte offset and a line number");
    line_number_ = p[1];
    return reader_->seek(p[0]);
  }

 private:
  std::string path_;
  Parse parse_;
  bad_records policy_;
  counter* bad_;
  std::unique_ptr<line_reader> reader_;
  std::string line_;
  std::uint64_t line_number_ = 0;
  std::uint64_t reported_ = 0;
};

/// Emits the elements of an in-memory collection (parallelism 1).
template <class T>
class collection_source final : public source_base<T> {
 public:
  collection_source(const runtime::stage_context& ctx,
                    runtime::stage_object* next,
                    std::shared_ptr<const std::vector<T>> items)
      : source_base<T>(ctx, next), items_(std::move(items)) {}

  runtime::pull_result pull(std::size_t max_records) override {
    if (this->stop_ || next_ >= items_->size()) return this->end();
    auto n = std::min(max_records, items_->size() - next_);
    this->out_.assign(items_->begin() + static_cast<std::ptrdiff_t>(next_),
                      items_->begin() + static_cast<std::ptrdiff_t>(next_ + n));
    next_ += n;
    this->forward(this->out_);
    return {};
  }

 protected:
  std::vector<std::uint64_t> position_state() const override { return {next_}; }

  status seek_to(const std::vector<std::uint64_t>& p) override {
    if (p.size() != 1 || p[0] > items_->size())
      return this->bad_position("beyond the collection");
    next_ = static_cast<std::size_t>(p[0]);
    return {};
  }

 private:
  std::shared_ptr<const std::vector<T>> items_;
  std::size_t next_ = 0;
};

}  // namespace stream::detail
