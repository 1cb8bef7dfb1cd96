#pragma once

// Event time: where records get their timestamps and how watermarks are
// generated. A timestamp is a function of the record (milliseconds since the
// epoch), so it costs no space on the channel; a watermark `w` promises that
// no record with a timestamp <= w follows.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>

namespace stream {

/// Extracts a record's event time in milliseconds since the epoch.
template <class T>
using timestamp_fn = std::function<std::int64_t(const T&)>;

/// How a stream gets timestamps and watermarks (the counterpart of Flink's
/// WatermarkStrategy). Applied per source split: every subtask of the
/// operator it is applied to tracks its own maximum timestamp, and
/// downstream operators take the minimum over their inputs.
template <class T>
class watermark_strategy {
 public:
  /// Timestamps never decrease: watermark = max timestamp - 1.
  static watermark_strategy for_monotonous_timestamps() {
    return for_bounded_out_of_orderness(std::chrono::milliseconds{0});
  }

  /// Records arrive at most `max_delay` late: watermark = max timestamp -
  /// max_delay - 1.
  static watermark_strategy for_bounded_out_of_orderness(
      std::chrono::milliseconds max_delay) {
    watermark_strategy s;
    s.max_delay_ = max_delay.count();
    return s;
  }

  /// Sets the timestamp of each record: `fn(const T&) -> int64_t` (ms).
  template <class F>
  watermark_strategy with_timestamp_assigner(F fn) const {
    auto copy = *this;
    copy.timestamps_ = std::make_shared<const timestamp_fn<T>>(std::move(fn));
    return copy;
  }

  /// A subtask that saw no record for `timeout` of processing time declares
  /// itself idle and stops holding downstream watermarks back, until its
  /// next record.
  watermark_strategy with_idleness(std::chrono::milliseconds timeout) const {
    auto copy = *this;
    copy.idle_timeout_ = timeout.count();
    return copy;
  }

  std::int64_t max_delay() const noexcept { return max_delay_; }
  std::int64_t idle_timeout() const noexcept { return idle_timeout_; }
  const std::shared_ptr<const timestamp_fn<T>>& timestamps() const noexcept {
    return timestamps_;
  }

 private:
  std::int64_t max_delay_ = 0;
  std::int64_t idle_timeout_ = 0;  ///< 0: never idle.
  std::shared_ptr<const timestamp_fn<T>> timestamps_;
};

/// A window of time [start, end) in milliseconds.
struct time_window {
  std::int64_t start = 0;
  std::int64_t end = 0;

  /// The largest timestamp that belongs to the window.
  std::int64_t max_timestamp() const noexcept { return end - 1; }
  bool intersects(const time_window& o) const noexcept {
    return start <= o.end && o.start <= end;
  }
  friend bool operator==(const time_window&, const time_window&) = default;
  friend auto operator<=>(const time_window&, const time_window&) = default;
};

/// Names a side output of records of type `T` (late data, say).
template <class T>
struct output_tag {
  std::string name;
};

/// Milliseconds since the epoch on the system clock: processing time.
inline std::int64_t processing_time_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace stream
