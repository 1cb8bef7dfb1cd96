#pragma once

// Window assigners: which windows a timestamp belongs to. Windows are
// aligned to the epoch plus an optional offset, as in Flink.

#include <chrono>
#include <cstdint>
#include <vector>

#include "stream/event_time.hpp"
#include "stream/state.hpp"

namespace stream {

/// Describes how records are grouped into windows.
struct window_assigner {
  enum class kind : std::uint8_t { tumbling, sliding, session };

  kind shape = kind::tumbling;
  time_domain domain = time_domain::event_time;
  std::int64_t size = 0;    ///< Tumbling and sliding: window length (ms).
  std::int64_t slide = 0;   ///< Sliding: distance between window starts.
  std::int64_t offset = 0;  ///< Shifts window boundaries off the epoch.
  std::int64_t gap = 0;     ///< Session: inactivity that closes a session.

  bool merging() const noexcept { return shape == kind::session; }

  /// Start of the window of length `size` that contains `ts` (Flink's
  /// TimeWindow.getWindowStartWithOffset; exact for negative timestamps).
  static std::int64_t window_start(std::int64_t ts, std::int64_t offset,
                                   std::int64_t size) noexcept {
    auto r = (ts - offset) % size;
    if (r < 0) r += size;
    return ts - r;
  }

  /// Appends the windows `ts` belongs to (for sessions: its own window,
  /// to be merged with overlapping ones).
  void assign(std::int64_t ts, std::vector<time_window>& out) const {
    switch (shape) {
      case kind::tumbling: {
        auto start = window_start(ts, offset, size);
        out.push_back({start, start + size});
        break;
      }
      case kind::sliding: {
        auto last = window_start(ts, offset, slide);
        for (auto start = last; start > ts - size; start -= slide)
          out.push_back({start, start + size});
        break;
      }
      case kind::session:
        out.push_back({ts, ts + gap});
        break;
    }
  }
};

namespace detail {
inline std::int64_t to_ms(std::chrono::milliseconds d) { return d.count(); }
}  // namespace detail

/// Fixed-size, non-overlapping windows of event time.
inline window_assigner tumbling_event_time_windows(
    std::chrono::milliseconds size,
    std::chrono::milliseconds offset = std::chrono::milliseconds{0}) {
  return {window_assigner::kind::tumbling,
          time_domain::event_time,
          detail::to_ms(size),
          0,
          detail::to_ms(offset),
          0};
}

/// Windows of length `size` starting every `slide` (event time).
inline window_assigner sliding_event_time_windows(
    std::chrono::milliseconds size, std::chrono::milliseconds slide,
    std::chrono::milliseconds offset = std::chrono::milliseconds{0}) {
  return {window_assigner::kind::sliding,
          time_domain::event_time,
          detail::to_ms(size),
          detail::to_ms(slide),
          detail::to_ms(offset),
          0};
}

/// Sessions of event time: a key's records less than `gap` apart.
inline window_assigner event_time_session_windows(
    std::chrono::milliseconds gap) {
  return {window_assigner::kind::session,
          time_domain::event_time,
          0,
          0,
          0,
          detail::to_ms(gap)};
}

/// The processing-time counterparts: a record belongs to the windows of the
/// wall-clock time it arrives at.
inline window_assigner tumbling_processing_time_windows(
    std::chrono::milliseconds size,
    std::chrono::milliseconds offset = std::chrono::milliseconds{0}) {
  auto a = tumbling_event_time_windows(size, offset);
  a.domain = time_domain::processing_time;
  return a;
}
inline window_assigner sliding_processing_time_windows(
    std::chrono::milliseconds size, std::chrono::milliseconds slide,
    std::chrono::milliseconds offset = std::chrono::milliseconds{0}) {
  auto a = sliding_event_time_windows(size, slide, offset);
  a.domain = time_domain::processing_time;
  return a;
}
inline window_assigner processing_time_session_windows(
    std::chrono::milliseconds gap) {
  auto a = event_time_session_windows(gap);
  a.domain = time_domain::processing_time;
  return a;
}

}  // namespace stream
