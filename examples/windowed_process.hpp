#pragma once

// The windowed_process job, shared by the example binary and its test: page
// views keyed by user, a 10-second tumbling event-time window, and a
// process window function that sees each window's views at once.

#include <charconv>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "stream/codec.hpp"
#include "stream/data_stream.hpp"
#include "stream/environment.hpp"
#include "stream/status.hpp"
#include "stream/windows.hpp"

namespace windowed_process {

struct page_view {
  std::uint64_t user = 0;
  std::uint32_t page = 0;
  std::int64_t ts = 0;  ///< Event time, ms since the epoch.
};
STREAM_FIELDS(page_view, user, page, ts);

/// Event time of view 0.
inline constexpr std::int64_t base_time = 1'700'000'000'000;
/// Views arrive up to this much out of order.
inline constexpr std::int64_t max_delay_ms = 2000;

inline std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/// View `i`: one every `1000 / per_second` ms of event time, shifted back
/// by up to 1.9 s (out of order, within max_delay_ms).
inline page_view make_view(std::uint64_t i, std::uint64_t users,
                           std::uint64_t per_second) {
  auto h = mix(i);
  auto at = base_time + static_cast<std::int64_t>(i * 1000 / per_second);
  return page_view{h % users, static_cast<std::uint32_t>((h >> 20) % 50),
                   at - static_cast<std::int64_t>((h >> 40) % 1900)};
}

/// A view as one line of text, as the Kafka topics carry it:
/// "user,page,timestamp_ms", e.g. "17,4,1700000000123".
inline std::string to_csv(const page_view& v) {
  return std::to_string(v.user) + ',' + std::to_string(v.page) + ',' +
         std::to_string(v.ts);
}

/// Parses `to_csv`'s form; anything else is an error naming what is wrong.
inline stream::result<page_view> parse_csv(std::string_view text) {
  page_view v;
  const char* at = text.data();
  const char* end = text.data() + text.size();
  auto field = [&](auto& out, const char* name, bool last) -> stream::status {
    auto [ptr, ec] = std::from_chars(at, end, out);
    if (ec != std::errc{} || ptr == at)
      return {stream::errc::malformed_data,
              std::string{"page view: "} + name + " is not a number in '" +
                  std::string{text.substr(0, 80)} + "'"};
    at = ptr;
    if (last) {
      if (at != end)
        return {stream::errc::malformed_data,
                "page view: trailing characters after the timestamp in '" +
                    std::string{text.substr(0, 80)} + "'"};
    } else if (at == end || *at++ != ',') {
      return {stream::errc::malformed_data,
              std::string{"page view: expected ',' after "} + name + " in '" +
                  std::string{text.substr(0, 80)} + "'"};
    }
    return {};
  };
  if (auto st = field(v.user, "user", false); !st.ok()) return st;
  if (auto st = field(v.page, "page", false); !st.ok()) return st;
  if (auto st = field(v.ts, "timestamp", true); !st.ok()) return st;
  return v;
}

/// What the process window function emits per user and window.
struct user_window {
  std::uint64_t user = 0;
  std::int64_t start = 0;
  std::int64_t end = 0;
  std::uint64_t views = 0;
  std::uint64_t pages = 0;  ///< Distinct pages viewed.
};
STREAM_FIELDS(user_window, user, start, end, views, pages);

inline std::string to_line(const user_window& w) {
  return "user=" + std::to_string(w.user) + " window=[" +
         std::to_string(w.start) + "," + std::to_string(w.end) +
         ") views=" + std::to_string(w.views) +
         " pages=" + std::to_string(w.pages);
}

/// The process window function: all of a user's views in one window.
inline void summarize(const std::uint64_t& user, const stream::time_window& w,
                      const std::vector<page_view>& views,
                      stream::emitter<user_window>& out) {
  std::set<std::uint32_t> pages;
  for (const auto& v : views) pages.insert(v.page);
  out.emit({user, w.start, w.end, views.size(), pages.size()});
}

/// Event time of views: their `ts`, at most max_delay_ms out of order.
inline stream::watermark_strategy<page_view> view_watermarks() {
  return stream::watermark_strategy<page_view>::for_bounded_out_of_orderness(
             std::chrono::milliseconds{max_delay_ms})
      .with_timestamp_assigner([](const page_view& v) { return v.ts; });
}

/// key_by(user) -> 10 s tumbling event-time window -> process window
/// function: the part of the job after the source.
inline stream::data_stream<user_window> summarize_views(
    const stream::data_stream<page_view>& views) {
  return views.key_by([](const page_view& v) { return v.user; })
      .window(stream::tumbling_event_time_windows(std::chrono::seconds{10}))
      .process<user_window>(summarize)
      .name("views_per_user");
}

/// generator -> timestamps (bounded out of orderness) -> key_by(user) ->
/// 10 s tumbling event-time window -> process window function.
inline stream::data_stream<user_window> build(
    stream::environment& env, std::uint64_t users, std::uint64_t per_second,
    stream::generator_options generator) {
  auto views = env.from_generator(
                      [users, per_second](std::uint64_t i) {
                        return make_view(i, users, per_second);
                      },
                      generator)
                   .name("page_views")
                   .assign_timestamps_and_watermarks(view_watermarks())
                   .name("timestamps");
  return summarize_views(views);
}

}  // namespace windowed_process
