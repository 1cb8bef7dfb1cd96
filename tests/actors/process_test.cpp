// Keyed process functions end to end: timers in both domains fire once and
// in time order; state per key; side outputs.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "stream/codec.hpp"
#include "stream/run.hpp"

namespace stream::process_test {

struct rec {
  std::int64_t key = 0;
  std::int64_t ts = 0;
};
STREAM_FIELDS(rec, key, ts);

struct fired {
  std::int64_t key = 0;
  std::int64_t time = 0;       ///< The timer's time.
  std::int64_t watermark = 0;  ///< Event time: the watermark when it fired.
  std::int64_t now = 0;        ///< Processing time when it fired.
  std::uint32_t key_group = 0;
  friend bool operator==(const fired&, const fired&) = default;
};

job_options options() {
  job_options o;
  o.parallelism = 2;
  o.threads = 2;
  o.metrics_address.clear();
  o.batch_size = 16;
  o.watermark_interval = std::chrono::milliseconds{0};
  o.flush_timeout = std::chrono::milliseconds{10};
  return o;
}

/// Registers an event-time timer 50 ms after each record (twice: the second
/// is deduplicated) and one 55 ms after that it deletes again.
struct event_timers {
  void process(const std::int64_t&, const rec& r,
               keyed_context<std::int64_t>& ctx, emitter<fired>&) {
    ctx.register_event_time_timer(r.ts + 50);
    ctx.register_event_time_timer(r.ts + 50);
    ctx.register_event_time_timer(r.ts + 55);
    ctx.delete_event_time_timer(r.ts + 55);
  }
  void on_timer(std::int64_t time, const std::int64_t& key,
                keyed_context<std::int64_t>& ctx, emitter<fired>& out) {
    EXPECT_EQ(ctx.timer_domain(), time_domain::event_time);
    EXPECT_EQ(ctx.timestamp(), time);
    out.emit({key, time, ctx.current_watermark(), 0, ctx.current_key_group()});
  }
};

TEST(keyed_process, event_time_timers_fire_once_in_time_order) {
  std::vector<rec> input;
  std::map<std::int64_t, std::set<std::int64_t>> want;  // key -> times
  for (std::int64_t i = 0; i < 5000; ++i) {
    rec r{(i * 7919) % 23, 1'000'000 + i * 10 / 3 * 10};
    input.push_back(r);
    want[r.key].insert(r.ts + 50);
  }
  environment env{options()};
  auto out =
      env.from_collection(input)
          .assign_timestamps_and_watermarks(
              watermark_strategy<rec>::for_monotonous_timestamps()
                  .with_timestamp_assigner([](const rec& r) { return r.ts; }))
          .key_by([](const rec& r) { return r.key; })
          .process<fired>(event_timers{})
          .collect();
  auto report = execute(env);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  std::map<std::int64_t, std::vector<std::int64_t>> got;
  std::map<std::uint32_t, std::int64_t> last_per_subtask;
  auto max_ts = input.back().ts;
  for (const auto& f : out->records()) {
    got[f.key].push_back(f.time);
    // Due timers fire when the watermark reaches them; those beyond the
    // last record fire at the end of input (watermark max).
    EXPECT_GE(f.watermark, f.time);
    if (f.time <= max_ts - 1) {
      EXPECT_LT(f.watermark, runtime::max_watermark);
    }
    // In time order within each subtask's output.
    auto sub = f.key_group < 64 ? 0u : 1u;
    EXPECT_GE(f.time, last_per_subtask[sub]);
    last_per_subtask[sub] = f.time;
  }
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [key, times] : want) {
    EXPECT_EQ(got[key], std::vector<std::int64_t>(times.begin(), times.end()))
        << "key " << key;
  }
}

/// Schedules one processing-time timer per key on its first record.
struct processing_timers {
  void open(keyed_context<std::int64_t>& ctx) {
    scheduled = ctx.get_value_state<std::int64_t>("scheduled");
  }
  void process(const std::int64_t& key, const rec&,
               keyed_context<std::int64_t>& ctx, emitter<fired>&) {
    if (scheduled.value()) return;
    auto at = ctx.current_processing_time() + 100 + key * 20;
    scheduled.update(at);
    ctx.register_processing_time_timer(at);
    ctx.register_processing_time_timer(at);  // deduplicated
  }
  void on_timer(std::int64_t time, const std::int64_t& key,
                keyed_context<std::int64_t>& ctx, emitter<fired>& out) {
    EXPECT_EQ(ctx.timer_domain(), time_domain::processing_time);
    EXPECT_EQ(scheduled.value(), time);
    out.emit(
        {key, time, 0, ctx.current_processing_time(), ctx.current_key_group()});
  }
  value_state<std::int64_t> scheduled;
};

TEST(keyed_process, processing_time_timers_fire_once_when_due) {
  environment env{options()};
  auto out = env.from_generator(
                    [](std::uint64_t i) {
                      return rec{static_cast<std::int64_t>(i % 10), 0};
                    },
                    {.count = 1400, .rate = 2000})
                 .key_by([](const rec& r) { return r.key; })
                 .process<fired>(processing_timers{})
                 .collect();
  auto report = execute(env);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  auto records = out->records();
  std::map<std::int64_t, int> per_key;
  for (const auto& f : records) {
    ++per_key[f.key];
    EXPECT_GE(f.now, f.time) << "key " << f.key;
  }
  EXPECT_EQ(per_key.size(), 10u);
  for (const auto& [key, n] : per_key) EXPECT_EQ(n, 1) << "key " << key;
}

TEST(keyed_process, state_is_per_key_and_side_outputs_split_the_stream) {
  environment env{options()};
  output_tag<rec> odd{"odd"};
  auto main = env.from_generator(
                     [](std::uint64_t i) {
                       return rec{static_cast<std::int64_t>(i % 50),
                                  static_cast<std::int64_t>(i)};
                     },
                     {.count = 20000})
                  .key_by([](const rec& r) { return r.key; })
                  .process<rec>([odd](const std::int64_t&, const rec& r,
                                      keyed_context<std::int64_t>& ctx,
                                      emitter<rec>& out) {
                    auto seen = ctx.get_value_state<std::int64_t>("seen");
                    auto n = seen.value().value_or(0) + 1;
                    seen.update(n);
                    // ts carries the per-key count from here on.
                    if (r.ts % 2 == 1)
                      ctx.output(odd, rec{r.key, n});
                    else
                      out.emit(rec{r.key, n});
                  });
  auto evens = main.collect();
  auto odds = main.side_output(odd).collect();
  auto report = execute(env);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  auto all = evens->records();
  auto side = odds->records();
  EXPECT_EQ(all.size(), 10000u);
  EXPECT_EQ(side.size(), 10000u);
  all.insert(all.end(), side.begin(), side.end());
  // Per key, the counts seen are exactly 1..400.
  std::map<std::int64_t, std::vector<std::int64_t>> counts;
  for (const auto& r : all) counts[r.key].push_back(r.ts);
  ASSERT_EQ(counts.size(), 50u);
  std::vector<std::int64_t> want(400);
  for (int i = 0; i < 400; ++i) want[i] = i + 1;
  for (auto& [key, c] : counts) {
    std::sort(c.begin(), c.end());
    EXPECT_EQ(c, want) << "key " << key;
  }
  // Odd records of key k are those with odd index i (k = i % 50): key k's
  // odd records exist only for odd k.
  for (const auto& r : side) EXPECT_EQ(r.key % 2, 1);
}

}  // namespace stream::process_test
