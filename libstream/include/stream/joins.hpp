#pragma once

// Joins of two keyed streams with the same key type. Both are built from
// the operators that exist: the two inputs are tagged into one stream of
// std::variant<A, B>, keyed, and then
// - a window join groups them into windows and emits fn(a, b) for every pair
//   of the same key and window (Flink's JoinedStreams ... window ... apply);
// - an interval join buffers each side in keyed state and emits fn(a, b,
//   out) for every pair of the same key with
//   a.ts + lower <= b.ts <= a.ts + upper (Flink's IntervalJoin), dropping
//   each buffered record once the watermark makes further matches
//   impossible. Records behind the watermark are late and not joined.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "stream/data_stream.hpp"

namespace stream {

namespace detail {

/// Tags both inputs into one keyed stream of variant<A, B> that keeps their
/// timestamps.
template <class A, class B, class K, class KA, class KB>
auto tagged_union(const keyed_stream<A, K, KA>& a,
                  const keyed_stream<B, K, KB>& b, const char* what) {
  using either = std::variant<A, B>;
  auto ts_a = a.input().timestamps();
  auto ts_b = b.input().timestamps();
  if (!ts_a || !ts_b)
    throw std::invalid_argument{std::string{what} +
                                ": both inputs need timestamps (call "
                                "assign_timestamps_and_watermarks first)"};
  auto left = a.input()
                  .map([](const A& x) {
                    return either{std::in_place_index<0>, x};
                  })
                  .name(std::string{what} + "_left");
  auto right = b.input()
                   .map([](const B& x) {
                     return either{std::in_place_index<1>, x};
                   })
                   .name(std::string{what} + "_right");
  auto key_a = a.key_fn();
  auto key_b = b.key_fn();
  return left.union_with(right)
      .name(what)
      .with_timestamps([ts_a, ts_b](const either& e) {
        return e.index() == 0 ? (*ts_a)(std::get<0>(e))
                              : (*ts_b)(std::get<1>(e));
      })
      .key_by([key_a, key_b](const either& e) -> K {
        return e.index() == 0 ? K(std::invoke(key_a, std::get<0>(e)))
                              : K(std::invoke(key_b, std::get<1>(e)));
      });
}

template <class A, class B, class K, class U, class F>
struct interval_join_fn {
  using either = std::variant<A, B>;
  std::int64_t lower;
  std::int64_t upper;
  F fn;
  map_state<std::int64_t, std::vector<A>> left;
  map_state<std::int64_t, std::vector<B>> right;

  void open(keyed_context<K>& ctx) {
    left = ctx.template get_map_state<std::int64_t, std::vector<A>>("left");
    right = ctx.template get_map_state<std::int64_t, std::vector<B>>("right");
  }

  void process(const K&, const either& e, keyed_context<K>& ctx,
               emitter<U>& out) {
    auto ts = ctx.timestamp();
    if (ts < ctx.current_watermark()) return;  // late: not joined
    if (e.index() == 0) {
      const auto& x = std::get<0>(e);
      right.for_each([&](std::int64_t tb, const std::vector<B>& ys) {
        if (tb < ts + lower || tb > ts + upper) return;
        for (const auto& y : ys) std::invoke(fn, x, y, out);
      });
      left.update(ts, [&](std::vector<A>& xs) { xs.push_back(x); });
      ctx.register_event_time_timer(ts + std::max<std::int64_t>(upper, 0) + 1);
    } else {
      const auto& y = std::get<1>(e);
      left.for_each([&](std::int64_t ta, const std::vector<A>& xs) {
        if (ts < ta + lower || ts > ta + upper) return;
        for (const auto& x : xs) std::invoke(fn, x, y, out);
      });
      right.update(ts, [&](std::vector<B>& ys) { ys.push_back(y); });
      ctx.register_event_time_timer(ts + std::max<std::int64_t>(-lower, 0) + 1);
    }
  }

  void on_timer(std::int64_t time, const K&, keyed_context<K>&, emitter<U>&) {
    // The watermark passed `time`: a partner still to come has a timestamp
    // >= time - 1. Drop left records whose partners all lie before that,
    // right records likewise.
    drop(left, time - std::max<std::int64_t>(upper, 0));
    drop(right, time - std::max<std::int64_t>(-lower, 0));
  }

  template <class S>
  static void drop(S& side, std::int64_t up_to) {
    for (const auto& [ts, values] : side.entries()) {
      if (ts >= up_to) break;
      side.remove(ts);
    }
  }
};

}  // namespace detail

/// Emits `fn(const A&, const B&) -> U` for every pair of records with the
/// same key in the same window of `assigner`.
template <class A, class B, class K, class KA, class KB, class F>
auto window_join(const keyed_stream<A, K, KA>& a,
                 const keyed_stream<B, K, KB>& b, window_assigner assigner,
                 F fn) {
  using U = std::decay_t<std::invoke_result_t<F&, const A&, const B&>>;
  using either = std::variant<A, B>;
  return detail::tagged_union(a, b, "window_join")
      .window(assigner)
      .template process<U>([fn](const K&, const time_window&,
                                const std::vector<either>& all,
                                emitter<U>& out) {
        for (const auto& x : all) {
          if (x.index() != 0) continue;
          for (const auto& y : all) {
            if (y.index() == 1)
              out.emit(std::invoke(fn, std::get<0>(x), std::get<1>(y)));
          }
        }
      });
}

/// Calls `fn(const A&, const B&, emitter<U>&)` for every pair of records
/// with the same key and b.ts in [a.ts + lower, a.ts + upper].
template <class U, class A, class B, class K, class KA, class KB, class F>
data_stream<U> interval_join(const keyed_stream<A, K, KA>& a,
                             const keyed_stream<B, K, KB>& b,
                             std::chrono::milliseconds lower,
                             std::chrono::milliseconds upper, F fn) {
  if (lower > upper)
    throw std::invalid_argument{"interval_join: lower bound above upper bound"};
  return detail::tagged_union(a, b, "interval_join")
      .template process<U>(detail::interval_join_fn<A, B, K, U, F>{
          lower.count(), upper.count(), std::move(fn), {}, {}});
}

}  // namespace stream
