// Windows end to end, against brute-force references computed here.
//
// Determinism: one source subtask, a watermark after every batch
// (watermark_interval 0) and a fixed batch size, so each window subtask sees
// the records of its keys and the watermarks in exactly the source order.
// The references replay that order: after every batch of `batch` records the
// watermark becomes max(timestamp so far) - delay - 1.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "backend_fixture.hpp"
#include "stream/codec.hpp"
#include "stream/metrics.hpp"
#include "stream/run.hpp"

namespace stream::window_test {

struct ev {
  std::int64_t key = 0;
  std::int64_t ts = 0;
  std::int64_t value = 0;
};
STREAM_FIELDS(ev, key, ts, value);

/// One firing of a window: what the window functions emit.
struct fired {
  std::int64_t key = 0;
  std::int64_t start = 0;
  std::int64_t end = 0;
  std::int64_t sum = 0;
  std::int64_t count = 0;
  friend auto operator<=>(const fired&, const fired&) = default;
};

std::ostream& operator<<(std::ostream& os, const fired& f) {
  return os << "{key " << f.key << " [" << f.start << "," << f.end << ") sum "
            << f.sum << " n " << f.count << "}";
}

constexpr std::uint32_t batch = 64;
constexpr std::int64_t delay = 200;

/// Out-of-order input: time advances 5 ms per record; most records are up
/// to 300 ms behind, a few up to 4 s (late beyond any lateness used here).
std::vector<ev> make_input(std::size_t n, std::int64_t keys, unsigned seed) {
  std::mt19937_64 rng{seed};
  std::vector<ev> out;
  for (std::size_t i = 0; i < n; ++i) {
    auto base = static_cast<std::int64_t>(i) * 5 + 1'000'000;
    std::int64_t behind = static_cast<std::int64_t>(rng() % 300);
    if (rng() % 100 < 3) behind = static_cast<std::int64_t>(rng() % 4000);
    out.push_back({static_cast<std::int64_t>(rng() % keys), base - behind,
                   static_cast<std::int64_t>(rng() % 1000)});
  }
  return out;
}

/// Input for sessions: per key, bursts of records separated by silences.
std::vector<ev> make_session_input(std::size_t n, unsigned seed) {
  std::mt19937_64 rng{seed};
  std::vector<ev> out;
  std::int64_t t = 1'000'000;
  for (std::size_t i = 0; i < n; ++i) {
    t += (rng() % 10 == 0) ? 400 + static_cast<std::int64_t>(rng() % 400)
                           : static_cast<std::int64_t>(rng() % 20);
    std::int64_t behind = static_cast<std::int64_t>(rng() % 150);
    if (rng() % 100 < 2) behind = static_cast<std::int64_t>(rng() % 3000);
    out.push_back({static_cast<std::int64_t>(rng() % 7), t - behind,
                   static_cast<std::int64_t>(rng() % 1000)});
  }
  return out;
}

struct window_spec {
  std::int64_t size = 0;
  std::int64_t slide = 0;  ///< 0: tumbling.
};

std::vector<std::pair<std::int64_t, std::int64_t>> windows_of(
    const window_spec& s, std::int64_t ts) {
  // Straightforward enumeration, independent of window_assigner.
  std::vector<std::pair<std::int64_t, std::int64_t>> out;
  auto step = s.slide == 0 ? s.size : s.slide;
  auto first = (ts - s.size) / step * step - 2 * step;
  for (auto start = first; start <= ts; start += step) {
    if (start <= ts && ts < start + s.size)
      out.emplace_back(start, start + s.size);
  }
  return out;
}

struct reference {
  std::vector<fired> results;
  std::vector<ev> late;
};

/// Tumbling/sliding windows with allowed lateness, replayed record by record.
reference reference_windows(const std::vector<ev>& input, window_spec spec,
                            std::int64_t lateness) {
  reference ref;
  using wkey = std::tuple<std::int64_t, std::int64_t, std::int64_t>;
  std::map<wkey, std::vector<std::int64_t>> contents;
  std::set<wkey> done;  // fired at least once
  std::int64_t wm = INT64_MIN;
  std::int64_t max_ts = INT64_MIN;
  auto emit = [&](const wkey& k) {
    const auto& vals = contents[k];
    std::int64_t sum = 0;
    for (auto v : vals) sum += v;
    ref.results.push_back({std::get<0>(k), std::get<1>(k), std::get<2>(k), sum,
                           static_cast<std::int64_t>(vals.size())});
  };
  auto advance = [&](std::int64_t new_wm) {
    if (new_wm <= wm) return;
    wm = new_wm;
    for (auto& [k, vals] : contents) {
      if (std::get<2>(k) - 1 <= wm && !done.count(k)) {
        emit(k);
        done.insert(k);
      }
    }
    for (auto it = contents.begin(); it != contents.end();) {
      if (std::get<2>(it->first) - 1 + lateness <= wm)
        it = contents.erase(it);
      else
        ++it;
    }
  };
  for (std::size_t i = 0; i < input.size(); ++i) {
    const auto& r = input[i];
    bool all_late = true;
    for (auto [start, end] : windows_of(spec, r.ts)) {
      if (end - 1 + lateness <= wm) continue;
      all_late = false;
      wkey k{r.key, start, end};
      contents[k].push_back(r.value);
      if (end - 1 <= wm) {
        emit(k);
        done.insert(k);
      }
    }
    if (all_late) ref.late.push_back(r);
    max_ts = std::max(max_ts, r.ts);
    if ((i + 1) % batch == 0 || i + 1 == input.size())
      advance(max_ts - delay - 1);
  }
  advance(INT64_MAX);
  return ref;
}

/// Session windows with lateness, replayed record by record.
reference reference_sessions(const std::vector<ev>& input, std::int64_t gap,
                             std::int64_t lateness) {
  reference ref;
  struct session {
    std::int64_t start, end;
    std::vector<std::int64_t> vals;
    bool done;
  };
  std::map<std::int64_t, std::vector<session>> by_key;
  std::int64_t wm = INT64_MIN;
  std::int64_t max_ts = INT64_MIN;
  auto emit = [&](std::int64_t key, const session& s) {
    std::int64_t sum = 0;
    for (auto v : s.vals) sum += v;
    ref.results.push_back(
        {key, s.start, s.end, sum, static_cast<std::int64_t>(s.vals.size())});
  };
  auto advance = [&](std::int64_t new_wm) {
    if (new_wm <= wm) return;
    wm = new_wm;
    for (auto& [key, list] : by_key) {
      for (auto& s : list) {
        if (s.end - 1 <= wm && !s.done) {
          emit(key, s);
          s.done = true;
        }
      }
      std::erase_if(
          list, [&](const session& s) { return s.end - 1 + lateness <= wm; });
    }
  };
  for (std::size_t i = 0; i < input.size(); ++i) {
    const auto& r = input[i];
    session s{r.ts, r.ts + gap, {r.value}, false};
    if (s.end - 1 + lateness <= wm) {
      ref.late.push_back(r);
    } else {
      auto& list = by_key[r.key];
      std::vector<session> keep;
      std::vector<std::int64_t> merged_vals;
      for (auto& o : list) {
        if (o.start <= s.end && s.start <= o.end) {
          s.start = std::min(s.start, o.start);
          s.end = std::max(s.end, o.end);
          merged_vals.insert(merged_vals.end(), o.vals.begin(), o.vals.end());
        } else {
          keep.push_back(std::move(o));
        }
      }
      merged_vals.push_back(r.value);
      s.vals = std::move(merged_vals);
      if (s.end - 1 <= wm) {
        emit(r.key, s);
        s.done = true;
      }
      keep.push_back(std::move(s));
      list = std::move(keep);
    }
    max_ts = std::max(max_ts, r.ts);
    if ((i + 1) % batch == 0 || i + 1 == input.size())
      advance(max_ts - delay - 1);
  }
  advance(INT64_MAX);
  return ref;
}

class window_test : public stream::testing::backend_test {
 protected:
  job_options options() const {
    auto o = backend_options(batch);
    o.state_cache_entries = 256;  // LevelDB: evicts and writes back often
    return o;
  }

  static data_stream<ev> source(environment& env, const std::vector<ev>& in) {
    return env.from_collection(in)
        .parallelism(1)
        .assign_timestamps_and_watermarks(
            watermark_strategy<ev>::for_bounded_out_of_orderness(
                std::chrono::milliseconds{delay})
                .with_timestamp_assigner([](const ev& e) { return e.ts; }));
  }
};

auto by_key = [](const ev& e) { return e.key; };

/// The process window function of the tests: sum and count of a window.
void summarize(const std::int64_t& key, const time_window& w,
               const std::vector<ev>& all, emitter<fired>& emit) {
  fired f{key, w.start, w.end, 0, 0};
  for (const auto& e : all) {
    f.sum += e.value;
    ++f.count;
  }
  emit(f);
}

template <class V>
std::vector<V> sorted(std::vector<V> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t>> keys_of(
    const std::vector<ev>& v) {
  std::vector<std::tuple<std::int64_t, std::int64_t, std::int64_t>> out;
  for (const auto& e : v) out.emplace_back(e.key, e.ts, e.value);
  std::sort(out.begin(), out.end());
  return out;
}

TEST_P(window_test, tumbling_aggregate_with_lateness_and_late_side_output) {
  auto input = make_input(20000, 40, 1);
  auto ref = reference_windows(input, {1000, 0}, 500);
  ASSERT_GT(ref.late.size(), 100u);  // the input really has late records
  environment env{options()};
  output_tag<ev> late{"late"};
  auto windowed =
      source(env, input)
          .key_by(by_key)
          .window(tumbling_event_time_windows(std::chrono::seconds{1}))
          .allowed_lateness(std::chrono::milliseconds{500})
          .side_output_late_data(late)
          .aggregate(
              std::pair<std::int64_t, std::int64_t>{0, 0},
              [](std::pair<std::int64_t, std::int64_t>& acc, const ev& e) {
                acc.first += e.value;
                ++acc.second;
              },
              [](const std::int64_t& key, const time_window& w,
                 const std::pair<std::int64_t, std::int64_t>& acc) {
                return fired{key, w.start, w.end, acc.first, acc.second};
              });
  auto out = windowed.collect();
  auto late_out = windowed.side_output(late).collect();
  auto registry = std::make_shared<metrics_registry>();
  execution_hooks hooks;
  hooks.registry = registry;
  auto report = execute(env, hooks);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  auto got = sorted(out->records());
  auto want = sorted(ref.results);
  std::printf("tumbling: %zu firings (reference %zu), %zu late records\n",
              got.size(), want.size(), late_out->records().size());
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(got, want);
  EXPECT_EQ(keys_of(late_out->records()), keys_of(ref.late));
  // Refirings happened: some window fired more than once.
  std::set<std::pair<std::int64_t, std::int64_t>> distinct;
  for (const auto& f : want) distinct.emplace(f.key, f.start);
  EXPECT_GT(want.size(), distinct.size());
  double late_count = 0;
  for (const auto& f : registry->snapshot()) {
    if (f.name != "stream_late_records_total") continue;
    for (const auto& s : f.samples) late_count += s.value;
  }
  EXPECT_EQ(late_count, static_cast<double>(ref.late.size()));
  // The window operator's input watermark reached the end of input's last
  // real watermark (max timestamp - delay - 1), in seconds.
  double watermark = 0;
  for (const auto& f : registry->snapshot()) {
    if (f.name != "stream_input_watermark_seconds") continue;
    for (const auto& s : f.samples) watermark = std::max(watermark, s.value);
  }
  std::int64_t max_ts = 0;
  for (const auto& e : input) max_ts = std::max(max_ts, e.ts);
  EXPECT_DOUBLE_EQ(watermark, static_cast<double>(max_ts - delay - 1) / 1000);
}

TEST_P(window_test, sliding_reduce_and_process_window_function) {
  auto input = make_input(12000, 25, 2);
  auto ref = reference_windows(input, {1000, 250}, 0);
  environment env{options()};
  auto keyed = source(env, input).key_by(by_key);
  auto reduced =
      keyed
          .window(sliding_event_time_windows(std::chrono::seconds{1},
                                             std::chrono::milliseconds{250}))
          .reduce([](const ev& a, const ev& b) {
            return ev{a.key, std::max(a.ts, b.ts), a.value + b.value};
          })
          .collect();
  auto processed =
      keyed
          .window(sliding_event_time_windows(std::chrono::seconds{1},
                                             std::chrono::milliseconds{250}))
          .process<fired>(summarize)
          .collect();
  auto report = execute(env);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  std::printf("sliding: %zu firings (reference %zu)\n",
              processed->records().size(), ref.results.size());
  EXPECT_EQ(sorted(processed->records()), sorted(ref.results));
  // The reduce output has no window: compare (key, sum) multisets.
  std::vector<std::pair<std::int64_t, std::int64_t>> got, want;
  for (const auto& e : reduced->records()) got.emplace_back(e.key, e.value);
  for (const auto& f : ref.results) want.emplace_back(f.key, f.sum);
  EXPECT_EQ(sorted(got), sorted(want));
}

TEST_P(window_test, session_windows_merge_and_refire) {
  auto input = make_session_input(15000, 3);
  auto ref = reference_sessions(input, 300, 400);
  ASSERT_GT(ref.late.size(), 10u);
  environment env{options()};
  output_tag<ev> late{"late"};
  auto windowed =
      source(env, input)
          .key_by(by_key)
          .window(event_time_session_windows(std::chrono::milliseconds{300}))
          .allowed_lateness(std::chrono::milliseconds{400})
          .side_output_late_data(late)
          .process<fired>(summarize);
  auto out = windowed.collect();
  auto late_out = windowed.side_output(late).collect();
  auto report = execute(env);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  std::printf(
      "sessions: %zu firings (reference %zu), %zu late (reference "
      "%zu)\n",
      out->records().size(), ref.results.size(), late_out->records().size(),
      ref.late.size());
  EXPECT_EQ(sorted(out->records()), sorted(ref.results));
  EXPECT_EQ(keys_of(late_out->records()), keys_of(ref.late));
}

TEST_P(window_test, session_aggregate_needs_and_uses_a_merge_function) {
  auto input = make_session_input(8000, 4);
  auto ref = reference_sessions(input, 250, 0);
  environment env{options()};
  using acc = std::pair<std::int64_t, std::int64_t>;
  auto keyed = source(env, input).key_by(by_key);
  auto add = [](acc& a, const ev& e) {
    a.first += e.value;
    ++a.second;
  };
  auto result = [](const std::int64_t& key, const time_window& w,
                   const acc& a) {
    return fired{key, w.start, w.end, a.first, a.second};
  };
  auto sessions =
      keyed.window(event_time_session_windows(std::chrono::milliseconds{250}));
  EXPECT_THROW(sessions.aggregate(acc{0, 0}, add, result),
               std::invalid_argument);
  auto out = sessions
                 .aggregate(
                     acc{0, 0}, add,
                     [](acc& a, const acc& b) {
                       a.first += b.first;
                       a.second += b.second;
                     },
                     result)
                 .collect();
  auto report = execute(env);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_EQ(sorted(out->records()), sorted(ref.results));
}

INSTANTIATE_TEST_SUITE_P(backends, window_test,
                         ::testing::Values("memory", "leveldb"));

/// A sink that notes when each result arrived.
struct arrivals {
  std::mutex mtx;
  std::vector<std::pair<fired, std::chrono::steady_clock::time_point>> seen;
  void add(const fired& f) {
    std::lock_guard<std::mutex> g{mtx};
    seen.emplace_back(f, std::chrono::steady_clock::now());
  }
};

job_options plain_options() {
  job_options o;
  o.parallelism = 1;
  o.threads = 2;
  o.metrics_address.clear();
  o.flush_timeout = std::chrono::milliseconds{20};
  o.watermark_interval = std::chrono::milliseconds{20};
  return o;
}

/// Counts the records of `in` per key and window of `assigner`; each
/// result's `sum` is the processing time it fired at.
std::shared_ptr<arrivals> count_per_window(data_stream<ev> in,
                                           window_assigner assigner) {
  auto sink = std::make_shared<arrivals>();
  in.key_by(by_key)
      .window(assigner)
      .aggregate(
          std::int64_t{0}, [](std::int64_t& c, const ev&) { ++c; },
          [](std::int64_t& a, const std::int64_t& b) { a += b; },
          [](const std::int64_t& key, const time_window& w,
             const std::int64_t& c) {
            return fired{key, w.start, w.end, processing_time_now(), c};
          })
      .for_each([sink](const fired& f) { sink->add(f); });
  return sink;
}

/// `n` records over `keys` keys at `rate` per second.
data_stream<ev> steady_input(environment& env, std::uint64_t n,
                             std::int64_t keys, double rate) {
  return env.from_generator(
      [keys](std::uint64_t i) {
        return ev{static_cast<std::int64_t>(i) % keys, 0, 1};
      },
      {.count = n, .rate = rate});
}

/// Source A produces for 1.5 s; source B says nothing for 2.5 s after its
/// first record, then one more, then ends. Returns when the first window
/// result arrived.
std::chrono::milliseconds first_result_with_a_silent_input(bool idleness) {
  environment env{plain_options()};
  constexpr double rate = 4000;  // A: 4 records per ms of event time
  auto strategy =
      watermark_strategy<ev>::for_monotonous_timestamps()
          .with_timestamp_assigner([](const ev& e) { return e.ts; });
  if (idleness)
    strategy = strategy.with_idleness(std::chrono::milliseconds{100});
  auto a = env.from_generator(
                  [](std::uint64_t i) {
                    return ev{static_cast<std::int64_t>(i % 4),
                              static_cast<std::int64_t>(i / 4), 1};
                  },
                  {.count = 6000, .rate = rate})
               .assign_timestamps_and_watermarks(strategy);
  // B: one record at once (its watermark stays at -1), the next after 2.5 s.
  auto b = env.from_generator(
                  [](std::uint64_t i) {
                    return ev{0, i == 0 ? 0 : 10'000'000, 1};
                  },
                  {.count = 2, .rate = 0.4})
               .assign_timestamps_and_watermarks(strategy);
  auto sink = count_per_window(
      a.union_with(b),
      tumbling_event_time_windows(std::chrono::milliseconds{100}));
  auto start = std::chrono::steady_clock::now();
  auto report = execute(env);
  EXPECT_TRUE(report.ok()) << report.error().to_string();
  std::lock_guard<std::mutex> g{sink->mtx};
  EXPECT_FALSE(sink->seen.empty());
  if (sink->seen.empty()) return std::chrono::hours{1};
  std::int64_t total = 0;
  for (const auto& [f, at] : sink->seen) total += f.count;
  EXPECT_EQ(total, 6002);
  return std::chrono::duration_cast<std::chrono::milliseconds>(
      sink->seen.front().second - start);
}

TEST(event_time, an_idle_source_does_not_stall_the_watermark) {
  auto with = first_result_with_a_silent_input(true);
  auto without = first_result_with_a_silent_input(false);
  std::printf("first window result: %lld ms with idleness, %lld ms without\n",
              static_cast<long long>(with.count()),
              static_cast<long long>(without.count()));
  // A runs 1.5 s; B is silent for 2.5 s. Idle, B holds nothing back and
  // windows fire while A runs; not idle, nothing fires before B speaks.
  EXPECT_LT(with, std::chrono::milliseconds{1000}) << with.count();
  EXPECT_GE(without, std::chrono::milliseconds{2000}) << without.count();
}

TEST(processing_time, tumbling_windows_fire_after_their_end) {
  environment env{plain_options()};
  constexpr std::uint64_t n = 6000;
  auto sink = count_per_window(
      steady_input(env, n, 3, 6000),
      tumbling_processing_time_windows(std::chrono::milliseconds{100}));
  auto report = execute(env);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  std::lock_guard<std::mutex> g{sink->mtx};
  std::int64_t total = 0;
  std::int64_t last_end = 0;
  for (const auto& [f, at] : sink->seen) {
    total += f.count;
    EXPECT_EQ(f.end - f.start, 100);
    EXPECT_EQ(f.start % 100, 0);
    last_end = std::max(last_end, f.end);
  }
  EXPECT_EQ(total, static_cast<std::int64_t>(n));
  EXPECT_GE(sink->seen.size(), 20u);  // ~1 s of input, 3 keys
  for (const auto& [f, at] : sink->seen) {
    // Windows still open at the end of input fire then, early; all others
    // fire once the clock reaches their end.
    if (f.end < last_end) {
      EXPECT_GE(f.sum, f.end) << f;
    }
  }
}

TEST(processing_time, sliding_windows_count_each_record_size_over_slide_times) {
  environment env{plain_options()};
  constexpr std::uint64_t n = 3000;
  auto sink = count_per_window(
      steady_input(env, n, 5, 6000),
      sliding_processing_time_windows(std::chrono::milliseconds{200},
                                      std::chrono::milliseconds{50}));
  auto report = execute(env);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  std::lock_guard<std::mutex> g{sink->mtx};
  std::int64_t total = 0;
  std::set<std::tuple<std::int64_t, std::int64_t>> seen;
  for (const auto& [f, at] : sink->seen) {
    total += f.count;
    EXPECT_EQ(f.end - f.start, 200);
    EXPECT_EQ(f.start % 50, 0);
    EXPECT_TRUE(seen.emplace(f.key, f.start).second) << "fired twice: " << f;
  }
  // Every record lies in exactly 200 / 50 windows, and every window fires
  // (at the latest at the end of input).
  EXPECT_EQ(total, static_cast<std::int64_t>(4 * n));
}

TEST(processing_time, session_windows_split_at_silences) {
  environment env{plain_options()};
  // Two bursts of records 1 s apart: the generator stalls once, at record
  // 1000 (the records of that pull arrive after the stall). A 250 ms
  // session gap separates the bursts and tolerates scheduling hiccups.
  auto input = env.from_generator(
      [](std::uint64_t i) {
        if (i == 1000)
          std::this_thread::sleep_for(std::chrono::milliseconds{1000});
        return ev{static_cast<std::int64_t>(i % 2), 0, 1};
      },
      {.count = 2000, .rate = 20000});
  auto sink = count_per_window(
      input, processing_time_session_windows(std::chrono::milliseconds{250}));
  auto report = execute(env);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  std::lock_guard<std::mutex> g{sink->mtx};
  std::map<std::int64_t, std::vector<fired>> per_key;
  for (const auto& [f, at] : sink->seen) per_key[f.key].push_back(f);
  ASSERT_EQ(per_key.size(), 2u);
  for (auto& [key, sessions] : per_key) {
    std::sort(sessions.begin(), sessions.end());
    // Two sessions per key holding all 1,000 of its records, the second
    // starting after the first one's gap ran out.
    ASSERT_EQ(sessions.size(), 2u) << "key " << key;
    EXPECT_GT(sessions[0].count, 0);
    EXPECT_GT(sessions[1].count, 0);
    EXPECT_EQ(sessions[0].count + sessions[1].count, 1000);
    EXPECT_LE(sessions[0].end, sessions[1].start);
  }
}

}  // namespace stream::window_test
