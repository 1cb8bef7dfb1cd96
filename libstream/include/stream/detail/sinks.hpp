#pragma once

#include <charconv>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "stream/detail/text_io.hpp"
#include "stream/metrics.hpp"
#include "stream/runtime/stage.hpp"

namespace stream {

/// Records gathered by a `collect()` sink, readable while and after the job
/// runs. Thread-safe.
template <class T>
class collected {
 public:
  /// A copy of every record received so far, in arrival order per subtask.
  std::vector<T> records() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return records_;
  }

  std::size_t size() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return records_.size();
  }

  /// Appends a batch; called by the sink's subtasks.
  void append(std::vector<T>& batch) {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& r : batch) records_.push_back(std::move(r));
  }

 private:
  mutable std::mutex mtx_;
  std::vector<T> records_;
};

}  // namespace stream

namespace stream::detail {

template <class T>
concept streamable = requires(std::ostream& os, const T& x) {
  os << x;
};

/// Appends the text form of `value`: strings as they are, numbers in their
/// shortest form, anything else through `operator<<` into `scratch`, which
/// the caller keeps so that no record costs a stream construction.
template <class T>
void format_record(const T& value, std::string& out,
                   std::ostringstream& scratch) {
  if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    out.append(std::string_view{value});
  } else if constexpr (std::is_arithmetic_v<T> && !std::is_same_v<T, bool> &&
                       !std::is_same_v<T, char>) {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
    out.append(buf, end);
  } else {
    static_assert(streamable<T>,
                  "a text sink needs operator<< for the record type, or map "
                  "the records to std::string first");
    scratch.str({});
    scratch << value;
    out.append(scratch.view());
  }
}

/// Writes one line per record to a file or stdout.
template <class T>
class text_sink final : public runtime::consumer<T> {
 public:
  text_sink(const runtime::stage_context& ctx, std::string path)
      : in_(ctx.records_in), path_(std::move(path)) {
    if (path_ != "-" && ctx.parallelism > 1)
      path_ += ".part-" + std::to_string(ctx.subtask);
  }

  status open() override {
    auto w = text_writer::open(path_);
    if (!w) return w.error();
    writer_ = std::move(*w);
    return {};
  }

  void push(std::vector<T>& records) override {
    in_->add(records.size());
    text_.clear();
    for (const auto& r : records) {
      format_record(r, text_, scratch_);
      text_.push_back('\n');
    }
    check(writer_->write(text_));
  }

  void flush() override { check(writer_->flush()); }
  void finish() override { check(writer_->flush()); }
  void on_control(const runtime::control_event&) override {}

 private:
  static void check(const status& st) {
    if (!st.ok()) throw std::runtime_error(st.message());
  }

  counter* in_;
  std::string path_;
  std::unique_ptr<text_writer> writer_;
  std::string text_;
  std::ostringstream scratch_;
};

/// Hands records to a shared `collected<T>`.
template <class T>
class collect_sink final : public runtime::consumer<T> {
 public:
  collect_sink(const runtime::stage_context& ctx,
               std::shared_ptr<collected<T>> target)
      : in_(ctx.records_in), target_(std::move(target)) {}

  void push(std::vector<T>& records) override {
    in_->add(records.size());
    target_->append(records);
  }
  void flush() override {}
  void finish() override {}
  void on_control(const runtime::control_event&) override {}

 private:
  counter* in_;
  std::shared_ptr<collected<T>> target_;
};

/// Counts and drops records (benchmarks, load tests).
template <class T>
class discard_sink final : public runtime::consumer<T> {
 public:
  explicit discard_sink(const runtime::stage_context& ctx)
      : in_(ctx.records_in) {}
  void push(std::vector<T>& records) override { in_->add(records.size()); }
  void flush() override {}
  void finish() override {}
  void on_control(const runtime::control_event&) override {}

 private:
  counter* in_;
};

}  // namespace stream::detail

namespace stream::detail {

/// Calls a user function for every record.
template <class T, class F>
class function_sink final : public runtime::consumer<T> {
 public:
  function_sink(const runtime::stage_context& ctx, F fn)
      : in_(ctx.records_in), fn_(std::move(fn)) {}
  void push(std::vector<T>& records) override {
    in_->add(records.size());
    for (const auto& r : records) std::invoke(fn_, r);
  }
  void flush() override {}
  void finish() override {}
  void on_control(const runtime::control_event&) override {}

 private:
  counter* in_;
  F fn_;
};

}  // namespace stream::detail
