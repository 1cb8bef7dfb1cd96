#pragma once

// The keyed_sum job, shared by the example binary and the benchmark so that
// both measure exactly the same topology.

#include <cstdint>
#include <ostream>

#include "stream/codec.hpp"
#include "stream/data_stream.hpp"
#include "stream/environment.hpp"
#include "stream/windows.hpp"

namespace keyed_sum {

struct bid {
  std::uint64_t auction;
  std::int64_t price;
  std::int64_t ts;
};
STREAM_FIELDS(bid, auction, price, ts);

struct auction_total {
  std::uint64_t auction;
  std::int64_t sum;
  std::uint64_t count;
};
STREAM_FIELDS(auction_total, auction, sum, count);

inline std::ostream& operator<<(std::ostream& os, const auction_total& t) {
  return os << t.auction << '\t' << t.sum << '\t' << t.count;
}

/// splitmix64: cheap, deterministic, well spread.
inline std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/// Record `i` of the generator: a bid on one of `keys` auctions.
inline bid make_bid(std::uint64_t i, std::uint64_t keys) {
  auto h = mix(i);
  return bid{h % keys, static_cast<std::int64_t>(100 + (h >> 40) % 10000),
             static_cast<std::int64_t>(i)};
}

/// Dollars to euros, as in Nexmark's query 1.
inline bid to_euro(const bid& b) {
  return bid{b.auction,
             static_cast<std::int64_t>(static_cast<double>(b.price) * 0.908),
             b.ts};
}

/// Folds a bid into its auction's running total.
inline void add_bid(auction_total& acc, const bid& b) {
  acc.sum += b.price;
  ++acc.count;
}

/// generator -> map(to_euro): the bids both jobs start from.
inline stream::data_stream<bid> euro_bids(stream::environment& env,
                                          std::uint64_t keys,
                                          stream::generator_options generator) {
  return env
      .from_generator([keys](std::uint64_t i) { return make_bid(i, keys); },
                      generator)
      .name("bids")
      // Lambdas rather than function pointers, so the calls inline as they
      // do in the hand-written loop.
      .map([](const bid& b) { return to_euro(b); })
      .name("to_euro");
}

/// generator -> map(to_euro) -> key_by(auction) -> running sum and count.
inline stream::data_stream<auction_total> build(
    stream::environment& env, std::uint64_t keys,
    stream::generator_options generator) {
  return euro_bids(env, keys, generator)
      .key_by([](const bid& b) { return b.auction; })
      .aggregate(
          auction_total{0, 0, 0},
          [](auction_total& acc, const bid& b) { add_bid(acc, b); },
          [](const std::uint64_t& auction, const auction_total& acc) {
            return auction_total{auction, acc.sum, acc.count};
          })
      .name("sum_per_auction");
}

/// One auction's total in one window.
struct window_total {
  std::uint64_t auction;
  std::int64_t window_end;
  std::int64_t sum;
  std::uint64_t count;
};
STREAM_FIELDS(window_total, auction, window_end, sum, count);

/// Event time of record `i` in W0: a million records per second of event
/// time, so each 1-second window holds a million records (100 per auction).
inline std::int64_t w0_time(const bid& b) { return b.ts / 1000; }

/// W0: keyed_sum with a 1-second tumbling event-time window instead of the
/// running total: generator -> map(to_euro) -> timestamps (monotonous) ->
/// key_by(auction) -> window(1 s).aggregate(sum, count).
inline stream::data_stream<window_total> build_windowed(
    stream::environment& env, std::uint64_t keys,
    stream::generator_options generator) {
  return euro_bids(env, keys, generator)
      .assign_timestamps_and_watermarks(
          stream::watermark_strategy<bid>::for_monotonous_timestamps()
              .with_timestamp_assigner([](const bid& b) { return w0_time(b); }))
      .name("timestamps")
      .key_by([](const bid& b) { return b.auction; })
      .window(stream::tumbling_event_time_windows(std::chrono::seconds{1}))
      .aggregate(
          auction_total{0, 0, 0},
          [](auction_total& acc, const bid& b) { add_bid(acc, b); },
          [](const std::uint64_t& auction, const stream::time_window& w,
             const auction_total& acc) {
            return window_total{auction, w.end, acc.sum, acc.count};
          })
      .name("window_sum");
}

}  // namespace keyed_sum
