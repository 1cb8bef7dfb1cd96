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

#include "stream/checkpoint/snapshot.hpp"
#include "stream/detail/text_io.hpp"
#include "stream/metrics.hpp"
#include "stream/options.hpp"
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

/// The file operations of the exactly-once file sink, for one subtask's
/// files in one directory:
/// - `.part-<s>-<after>[-a<k>].inprogress`: written since checkpoint
///   `after` by deployment attempt k (no suffix for attempt 0), so that a
///   task of an older attempt still running on a cut-off worker never
///   writes into the file of its replacement;
/// - `.part-<s>-<n>.pending`: closed and fsynced at barrier n, waiting for
///   checkpoint n to complete;
/// - `part-<s>-<n>`: committed, visible output.
class part_files {
 public:
  part_files(std::string dir, std::uint32_t subtask, std::uint32_t attempt = 0);

  /// Creates the directory.
  status open() const;
  std::string in_progress(std::int64_t after) const;
  std::string pending(std::int64_t id) const;
  std::string committed(std::int64_t id) const;

  /// Renames the in-progress file to pending `id` (fsync of the file
  /// before, of the directory after).
  status stage(std::int64_t after, std::int64_t id) const;

  /// Makes pending `id` visible. Harmless when it is already committed;
  /// an error when neither file exists (output would be lost).
  status commit(std::int64_t id) const;

  /// Removes this subtask's in-progress and pending files, and its
  /// committed files with an id above `keep_up_to` (output of a run that
  /// the restore undoes). Returns how many files were removed.
  result<std::size_t> clean(std::int64_t keep_up_to) const;

 private:
  std::string dir_;
  std::string prefix_;          ///< "part-<s>-"
  std::string attempt_suffix_;  ///< "" or "-a<attempt>"
};

/// Exactly-once file sink: one line per record into per-checkpoint part
/// files that become visible (by rename) when their checkpoint completes.
/// Without periodic checkpoints, output is committed at the end of input
/// and by savepoints.
template <class T>
class file_commit_sink final : public runtime::consumer<T> {
 public:
  file_commit_sink(const runtime::stage_context& ctx, std::string dir)
      : in_(ctx.records_in),
        files_(std::move(dir), ctx.subtask, ctx.attempt),
        checkpointing_(ctx.options->checkpoint_interval.count() > 0) {}

  status open() override { return files_.open(); }

  bool stateful() const override { return true; }

  void push(std::vector<T>& records) override {
    in_->add(records.size());
    prepare();
    if (!writer_) {
      auto w = text_writer::open(files_.in_progress(after_));
      check(w.error());
      writer_ = std::move(*w);
    }
    text_.clear();
    for (const auto& r : records) {
      format_record(r, text_, scratch_);
      text_.push_back('\n');
    }
    check(writer_->write(text_));
  }

  void flush() override {
    if (writer_) check(writer_->flush());
  }

  void finish() override {
    prepare();
    if (checkpointing_) {
      // The final checkpoint stages and commits what is left.
      flush();
      return;
    }
    auto id = after_ + 1;
    stage(id);
    notify_checkpoint_complete(id);
  }

  void on_control(const runtime::control_event&) override {}

  void snapshot_state(std::int64_t id,
                      checkpoint::pending_snapshot& out) override {
    prepare();
    stage(id);
    out.data->operator_state = checkpoint::encode_all(pending_);
  }

  status restore_state(const checkpoint::restored_state& in) override {
    std::vector<std::int64_t> pending;
    if (in.has_operator_state) {
      if (auto st = checkpoint::decode_all(in.operator_state, pending);
          !st.ok())
        return st;
    }
    // Pending files belong to the checkpoint restored, which completed:
    // commit them (again, if the first commit got that far).
    for (auto id : pending) {
      if (auto st = files_.commit(id); !st.ok()) return st;
    }
    after_ = in.checkpoint_id;
    restored_ = true;
    return {};
  }

  void notify_checkpoint_complete(std::int64_t id) override {
    std::size_t done = 0;
    for (auto p : pending_) {
      if (p > id) break;
      check(files_.commit(p));
      ++done;
    }
    pending_.erase(pending_.begin(),
                   pending_.begin() + static_cast<std::ptrdiff_t>(done));
  }

  void close() override { writer_.reset(); }

 private:
  /// Before the first output: remove what an earlier run left behind.
  void prepare() {
    if (prepared_) return;
    prepared_ = true;
    auto removed = files_.clean(restored_ ? after_ : INT64_MAX);
    check(removed.error());
  }

  /// Closes the in-progress file as pending `id`.
  void stage(std::int64_t id) {
    if (writer_) {
      check(writer_->sync());
      writer_.reset();
      check(files_.stage(after_, id));
      pending_.push_back(id);
    }
    after_ = id;
  }

  static void check(const status& st) {
    if (!st.ok()) throw std::runtime_error(st.message());
  }

  counter* in_;
  part_files files_;
  bool checkpointing_;
  bool prepared_ = false;
  bool restored_ = false;
  std::int64_t after_ = 0;  ///< Checkpoint the in-progress file follows.
  std::vector<std::int64_t> pending_;  ///< Staged, ascending.
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
