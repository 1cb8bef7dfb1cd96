// What operators put into checkpoints and get back: keyed tables on both
// backends (round trips, consistency of the deferred LevelDB scan, restore
// before a table exists, rescaling), timers, the exactly-once file sink and
// source positions. No actor system involved.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "stream/checkpoint/snapshot.hpp"
#include "stream/checkpoint/storage.hpp"
#include "stream/detail/sinks.hpp"
#include "stream/detail/sources.hpp"
#include "stream/detail/windows.hpp"
#include "stream/metrics.hpp"
#include "stream/state.hpp"

namespace stream {
namespace {

namespace fs = std::filesystem;
using checkpoint::operator_snapshot;
using checkpoint::pending_snapshot;
using checkpoint::restored_state;

/// A fresh directory, removed with everything in it at the end.
class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = "/tmp/stream-ckpt-state-XXXXXX";
    EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
    path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::string& path() const noexcept { return path_; }
  /// Creates `<path>/<name>` and returns it.
  std::string sub(const std::string& name) const {
    auto p = path_ + "/" + name;
    fs::create_directories(p);
    return p;
  }

 private:
  std::string path_;
};

constexpr std::uint32_t max_p = 128;
constexpr key_group_range all_groups{0, max_p};

template <class K>
key_group group_of(const K& key) {
  return assign_key_group(hash_key(key), max_p);
}

std::unique_ptr<state::keyed_backend> open_backend(
    const std::string& kind, const std::string& dir,
    const std::string& instance) {
  job_options o;
  o.job_name = "ckpt";
  o.state_backend = kind;
  o.state_dir = dir;
  o.max_parallelism = max_p;
  o.state_cache_entries = 16;  // small: some entries cached, most written
  auto b = state::keyed_backend::open(o, instance);
  EXPECT_TRUE(b.ok()) << b.error().to_string();
  return b.ok() ? std::move(*b) : nullptr;
}

/// The synchronous phase of a snapshot of `b`.
pending_snapshot begin_snapshot(state::keyed_backend& b, key_group_range owned,
                                std::uint32_t op = 7) {
  pending_snapshot part;
  part.operator_id = op;
  part.owned = owned;
  part.data = std::make_unique<checkpoint::snapshot_builder>();
  b.snapshot(part);
  return part;
}

/// The deferred phase, as the background writer runs it.
operator_snapshot finish_snapshot(pending_snapshot& part,
                                  std::uint32_t subtask = 0) {
  if (part.deferred) part.deferred(*part.data);
  return part.data->finish(part.operator_id, subtask);
}

operator_snapshot take_snapshot(state::keyed_backend& b, key_group_range owned,
                                std::uint32_t op = 7,
                                std::uint32_t subtask = 0) {
  auto part = begin_snapshot(b, owned, op);
  return finish_snapshot(part, subtask);
}

restored_state restored_from(operator_snapshot snap, std::int64_t id) {
  restored_state in;
  in.checkpoint_id = id;
  in.operator_id = snap.operator_id;
  in.operator_state = snap.operator_state;
  in.has_operator_state = true;
  in.parts.push_back(std::move(snap));
  return in;
}

/// Writes `snap` as a state file into `folder` and reads it back.
restored_state through_file(const std::string& folder,
                            const operator_snapshot& snap,
                            key_group_range owned, std::int64_t id) {
  auto handle = checkpoint::write_state_file(folder, snap, owned);
  EXPECT_TRUE(handle.ok()) << handle.error().to_string();
  if (!handle.ok()) return {};
  auto back = checkpoint::read_state_file(folder, *handle, owned);
  EXPECT_TRUE(back.ok()) << back.error().to_string();
  if (!back.ok()) return {};
  return restored_from(std::move(*back), id);
}

/// Keyed entries per state name.
std::map<std::string, std::size_t> entries_by_name(
    const operator_snapshot& snap) {
  std::map<std::string, std::size_t> out;
  auto in = restored_from(snap, 0);
  auto st =
      in.for_each([&](const std::string& name, key_group, std::string_view,
                      std::string_view) { ++out[name]; });
  EXPECT_TRUE(st.ok()) << st.to_string();
  return out;
}

// -- two kinds of table and their models ------------------------------------

using counts_table =
    state::table<std::uint64_t, state::void_namespace, std::int64_t>;
using windows_table = state::table<std::string, time_window, std::vector<int>>;
using counts_model =
    std::map<std::pair<key_group, std::uint64_t>, std::int64_t>;
using windows_model =
    std::map<std::tuple<key_group, std::string, time_window>, std::vector<int>>;

counts_model dump(counts_table& t, key_group_range range = all_groups) {
  counts_model out;
  t.for_each(range, [&](key_group kg, const std::uint64_t& k,
                        const state::void_namespace&, const std::int64_t& v) {
    EXPECT_TRUE(out.emplace(std::pair{kg, k}, v).second) << "twice: " << k;
  });
  return out;
}

windows_model dump(windows_table& t, key_group_range range = all_groups) {
  windows_model out;
  t.for_each(range, [&](key_group kg, const std::string& k,
                        const time_window& w, const std::vector<int>& v) {
    EXPECT_TRUE(out.emplace(std::tuple{kg, k, w}, v).second) << "twice: " << k;
  });
  return out;
}

counts_model fill_counts(counts_table& t, std::uint64_t n) {
  counts_model model;
  for (std::uint64_t k = 0; k < n; ++k) {
    bool created = false;
    auto v = static_cast<std::int64_t>(k) * 7 - 1000;
    t.upsert(group_of(k), k, {}, created) = v;
    model[{group_of(k), k}] = v;
  }
  // Deleted entries must not come back from a snapshot.
  for (std::uint64_t k = 0; k < n; k += 10) {
    t.erase(group_of(k), k, {});
    model.erase({group_of(k), k});
  }
  return model;
}

windows_model fill_windows(windows_table& t, int n) {
  windows_model model;
  for (int i = 0; i < n; ++i) {
    auto key = "user-" + std::to_string(i);
    for (int w = 0; w <= i % 3; ++w) {
      time_window window{w * 60'000, (w + 1) * 60'000};
      std::vector<int> value;
      for (int j = 0; j < i % 5; ++j) value.push_back(i * 100 + j);
      bool created = false;
      t.upsert(group_of(key), key, window, created) = value;
      model[{group_of(key), key, window}] = value;
    }
  }
  return model;
}

// -- keyed backends ---------------------------------------------------------

class backend_pair
    : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {
 protected:
  std::string from() const { return std::get<0>(GetParam()); }
  std::string to() const { return std::get<1>(GetParam()); }
};

TEST_P(backend_pair, a_state_file_restores_tables_equal_to_the_originals) {
  temp_dir dir;
  auto src = open_backend(from(), dir.path(), "src");
  ASSERT_NE(src, nullptr);
  auto counts =
      src->make_table<std::uint64_t, state::void_namespace, std::int64_t>(
          "counts");
  auto windows =
      src->make_table<std::string, time_window, std::vector<int>>("windows");
  auto want_counts = fill_counts(*counts, 3000);
  auto want_windows = fill_windows(*windows, 600);

  auto snap = take_snapshot(*src, all_groups);
  EXPECT_GT(snap.key_groups.size(), 120U) << "entries in few key groups";
  EXPECT_EQ(entries_by_name(snap), (std::map<std::string, std::size_t>{
                                       {"counts", want_counts.size()},
                                       {"windows", want_windows.size()}}));
  // Taking a snapshot changes nothing.
  EXPECT_EQ(dump(*counts), want_counts);

  auto in = through_file(dir.sub("chk-1"), snap, all_groups, 1);
  auto dst = open_backend(to(), dir.path(), "dst");
  ASSERT_NE(dst, nullptr);
  auto counts2 =
      dst->make_table<std::uint64_t, state::void_namespace, std::int64_t>(
          "counts");
  auto windows2 =
      dst->make_table<std::string, time_window, std::vector<int>>("windows");
  auto st = dst->restore(in);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(dump(*counts2), want_counts);
  EXPECT_EQ(dump(*windows2), want_windows);
  // Restored values are values like any other.
  const auto* v = counts2->find(group_of(std::uint64_t{1}), 1, {});
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(*v, 7 - 1000);
  EXPECT_EQ(counts2->find(group_of(std::uint64_t{10}), 10, {}), nullptr);
}

TEST_P(backend_pair, rescaling_from_two_to_three_subtasks_moves_every_entry) {
  temp_dir dir;
  auto folder = dir.sub("chk-5");
  checkpoint::metadata meta;
  meta.job = "ckpt";
  meta.id = 5;
  meta.max_parallelism = max_p;
  checkpoint::metadata::operator_entry op;
  op.id = 7;
  op.name = "sum";
  op.parallelism = 2;
  counts_model want;
  for (std::uint32_t i = 0; i < 2; ++i) {
    auto owned = range_for_subtask(max_p, 2, i);
    auto b = open_backend(from(), dir.path(), "old-" + std::to_string(i));
    ASSERT_NE(b, nullptr);
    auto t = b->make_table<std::uint64_t, state::void_namespace, std::int64_t>(
        "counts");
    for (std::uint64_t k = 0; k < 4000; ++k) {
      if (!owned.contains(group_of(k))) continue;
      bool created = false;
      t->upsert(group_of(k), k, {}, created) = static_cast<std::int64_t>(k);
      want[{group_of(k), k}] = static_cast<std::int64_t>(k);
    }
    auto h = checkpoint::write_state_file(
        folder, take_snapshot(*b, owned, 7, i), owned);
    ASSERT_TRUE(h.ok()) << h.error().to_string();
    op.subtasks.push_back(*h);
  }
  meta.operators.push_back(op);
  checkpoint::restore_point point{folder, meta};

  counts_model seen;
  std::size_t total = 0;
  for (std::uint32_t i = 0; i < 3; ++i) {
    auto owned = range_for_subtask(max_p, 3, i);
    auto in = checkpoint::load_operator_state(point, 7, i, 3, owned);
    ASSERT_TRUE(in.ok()) << in.error().to_string();
    ASSERT_NE(*in, nullptr);
    EXPECT_EQ((*in)->checkpoint_id, 5);
    EXPECT_FALSE((*in)->has_operator_state);
    auto b = open_backend(to(), dir.path(), "new-" + std::to_string(i));
    ASSERT_NE(b, nullptr);
    auto t = b->make_table<std::uint64_t, state::void_namespace, std::int64_t>(
        "counts");
    auto st = b->restore(**in);
    ASSERT_TRUE(st.ok()) << st.to_string();
    auto got = dump(*t);
    counts_model mine;
    for (const auto& [k, v] : want) {
      if (owned.contains(k.first)) mine.emplace(k, v);
    }
    EXPECT_EQ(got, mine) << "subtask " << i;
    total += got.size();
    seen.insert(got.begin(), got.end());
  }
  EXPECT_EQ(total, want.size());  // none duplicated
  EXPECT_EQ(seen, want);          // none lost
  // An operator the checkpoint does not know has no state.
  auto none = checkpoint::load_operator_state(point, 99, 0, 3, all_groups);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, nullptr);
}

INSTANTIATE_TEST_SUITE_P(
    backends, backend_pair,
    ::testing::Combine(::testing::Values("memory", "leveldb"),
                       ::testing::Values("memory", "leveldb")),
    [](const auto& info) {
      return std::get<0>(info.param) + "_to_" + std::get<1>(info.param);
    });

class one_backend : public ::testing::TestWithParam<std::string> {};

TEST_P(one_backend, a_snapshot_excludes_writes_after_its_synchronous_phase) {
  temp_dir dir;
  auto src = open_backend(GetParam(), dir.path(), "src");
  ASSERT_NE(src, nullptr);
  auto counts =
      src->make_table<std::uint64_t, state::void_namespace, std::int64_t>(
          "counts");
  auto want = fill_counts(*counts, 2000);

  auto part = begin_snapshot(*src, all_groups);
  // LevelDB leaves the scan to the background writer.
  EXPECT_EQ(static_cast<bool>(part.deferred), GetParam() == "leveldb");
  // The task goes on: updates, new keys and deletions, all written to the
  // database before the deferred scan runs.
  for (std::uint64_t k = 0; k < 2500; ++k) {
    bool created = false;
    counts->upsert(group_of(k), k, {}, created) = -1;
  }
  for (std::uint64_t k = 1; k < 2000; k += 3) counts->erase(group_of(k), k, {});
  counts->flush();
  ASSERT_NE(dump(*counts), want);

  auto snap = finish_snapshot(part);
  auto check = open_backend("memory", dir.path(), "check");
  ASSERT_NE(check, nullptr);
  auto restored =
      check->make_table<std::uint64_t, state::void_namespace, std::int64_t>(
          "counts");
  auto st = check->restore(restored_from(std::move(snap), 1));
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(dump(*restored), want);
}

TEST_P(one_backend, restored_entries_wait_for_their_table_to_be_made) {
  temp_dir dir;
  auto src = open_backend("memory", dir.path(), "src");
  ASSERT_NE(src, nullptr);
  auto early =
      src->make_table<std::uint64_t, state::void_namespace, std::int64_t>(
          "early");
  auto late =
      src->make_table<std::string, time_window, std::vector<int>>("late");
  auto want_early = fill_counts(*early, 400);
  auto want_late = fill_windows(*late, 300);
  auto in = restored_from(take_snapshot(*src, all_groups), 3);

  auto dst = open_backend(GetParam(), dir.path(), "dst");
  ASSERT_NE(dst, nullptr);
  auto early2 =
      dst->make_table<std::uint64_t, state::void_namespace, std::int64_t>(
          "early");
  auto st = dst->restore(in);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(dump(*early2), want_early);

  // A checkpoint before `late` is made keeps its restored entries.
  auto kept = take_snapshot(*dst, all_groups);
  EXPECT_EQ(entries_by_name(kept),
            (std::map<std::string, std::size_t>{{"early", want_early.size()},
                                                {"late", want_late.size()}}));
  auto third = open_backend("memory", dir.path(), "third");
  ASSERT_NE(third, nullptr);
  auto late3 =
      third->make_table<std::string, time_window, std::vector<int>>("late");
  ASSERT_TRUE(third->restore(restored_from(std::move(kept), 4)).ok());
  EXPECT_EQ(dump(*late3), want_late);

  auto late2 =
      dst->make_table<std::string, time_window, std::vector<int>>("late");
  EXPECT_EQ(dump(*late2), want_late);
  // Loaded once: a later snapshot holds each entry once.
  EXPECT_EQ(entries_by_name(take_snapshot(*dst, all_groups)),
            (std::map<std::string, std::size_t>{{"early", want_early.size()},
                                                {"late", want_late.size()}}));
  EXPECT_THROW(
      (dst->make_table<std::string, time_window, std::vector<int>>("late")),
      state::state_error);
  EXPECT_THROW(
      (dst->make_table<std::uint64_t, state::void_namespace, std::int64_t>(
          "early")),
      state::state_error);
}

TEST_P(one_backend, operator_entries_are_left_to_their_operator) {
  temp_dir dir;
  auto src = open_backend("memory", dir.path(), "src");
  ASSERT_NE(src, nullptr);
  auto counts =
      src->make_table<std::uint64_t, state::void_namespace, std::int64_t>(
          "counts");
  auto want = fill_counts(*counts, 50);
  auto part = begin_snapshot(*src, all_groups);
  timer_queue<std::uint64_t> timers;
  for (std::uint64_t k = 0; k < 20; ++k)
    timers.add(static_cast<std::int64_t>(k), group_of(k), k);
  timers.snapshot_to(*part.data, "__timers/event");
  auto in = restored_from(finish_snapshot(part), 1);

  auto dst = open_backend(GetParam(), dir.path(), "dst");
  ASSERT_NE(dst, nullptr);
  ASSERT_TRUE(dst->restore(in).ok());
  // The operator snapshots its timers itself: the backend must not repeat
  // them.
  auto again = take_snapshot(*dst, all_groups);
  EXPECT_EQ(entries_by_name(again),
            (std::map<std::string, std::size_t>{{"counts", want.size()}}));
}

INSTANTIATE_TEST_SUITE_P(backends, one_backend,
                         ::testing::Values("memory", "leveldb"));

TEST(load_operator_state, non_keyed_state_needs_the_same_parallelism) {
  temp_dir dir;
  auto folder = dir.sub("chk-2");
  checkpoint::metadata meta;
  meta.id = 2;
  checkpoint::metadata::operator_entry op;
  op.id = 1;
  op.name = "source";
  op.parallelism = 2;
  for (std::uint32_t i = 0; i < 2; ++i) {
    checkpoint::snapshot_builder b;
    b.operator_state = "position-" + std::to_string(i);
    auto owned = range_for_subtask(max_p, 2, i);
    auto h = checkpoint::write_state_file(folder, b.finish(1, i), owned);
    ASSERT_TRUE(h.ok()) << h.error().to_string();
    op.subtasks.push_back(*h);
  }
  meta.operators.push_back(op);
  checkpoint::restore_point point{folder, meta};
  auto same = checkpoint::load_operator_state(point, 1, 1, 2,
                                              range_for_subtask(max_p, 2, 1));
  ASSERT_TRUE(same.ok()) << same.error().to_string();
  EXPECT_TRUE((*same)->has_operator_state);
  EXPECT_EQ((*same)->operator_state, "position-1");
  auto other = checkpoint::load_operator_state(point, 1, 1, 3,
                                               range_for_subtask(max_p, 3, 1));
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code(), errc::invalid_config);
  EXPECT_NE(other.error().message().find("'source'"), std::string::npos)
      << other.error().message();
}

// -- timers -----------------------------------------------------------------

using fired_timer = std::tuple<std::int64_t, key_group, std::string>;

std::vector<fired_timer> drain(timer_queue<std::string>& q) {
  std::vector<fired_timer> out;
  timer_queue<std::string>::timer t;
  while (q.pop(runtime::max_watermark, t))
    out.emplace_back(t.time, t.kg, t.key);
  return out;
}

restored_state timers_of(const timer_queue<std::string>& q,
                         std::string_view name) {
  checkpoint::snapshot_builder b;
  q.snapshot_to(b, name);
  return restored_from(b.finish(1, 0), 1);
}

TEST(timer_queue, restored_timers_fire_in_the_same_order) {
  timer_queue<std::string> q;
  for (int i = 0; i < 300; ++i) {
    auto key = "k" + std::to_string(i);
    // 37 and 1000 are coprime: every timer has its own time.
    ASSERT_TRUE(q.add((i * 37) % 1000, group_of(key), key));
  }
  for (int i = 0; i < 300; i += 7) {
    auto key = "k" + std::to_string(i);
    q.remove((i * 37) % 1000, group_of(key), key);
  }
  std::set<std::string> popped;
  timer_queue<std::string>::timer t;
  while (q.pop(400, t)) popped.insert(t.key);
  ASSERT_FALSE(popped.empty());

  auto in = timers_of(q, "__timers/event");
  timer_queue<std::string> r;
  auto st = r.restore(in, "__timers/event");
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(r.size(), q.size());
  EXPECT_EQ(r.next_time(), q.next_time());
  auto want = drain(q);
  auto got = drain(r);
  EXPECT_EQ(got, want);
  for (const auto& f : got) EXPECT_EQ(popped.count(std::get<2>(f)), 0U);
  EXPECT_EQ(got.size(), 300U - 43U - popped.size());
}

TEST(timer_queue, restore_takes_only_its_own_state_and_keeps_equal_times) {
  timer_queue<std::string> event;
  timer_queue<std::string> processing;
  for (int i = 0; i < 100; ++i) {
    auto key = "k" + std::to_string(i);
    event.add((i % 5) * 10, group_of(key), key);
    processing.add(1000 + (i % 3), group_of(key), key);
  }
  checkpoint::snapshot_builder b;
  event.snapshot_to(b, "__timers/event");
  processing.snapshot_to(b, "__timers/processing");
  auto in = restored_from(b.finish(1, 0), 1);
  timer_queue<std::string> event2;
  timer_queue<std::string> processing2;
  ASSERT_TRUE(event2.restore(in, "__timers/event").ok());
  ASSERT_TRUE(processing2.restore(in, "__timers/processing").ok());
  // Equal times fire in some order; the set per time is the same.
  auto by_time = [](std::vector<fired_timer> v) {
    EXPECT_TRUE(std::is_sorted(v.begin(), v.end(),
                               [](const fired_timer& a, const fired_timer& b) {
                                 return std::get<0>(a) < std::get<0>(b);
                               }));
    std::sort(v.begin(), v.end());
    return v;
  };
  EXPECT_EQ(by_time(drain(event2)), by_time(drain(event)));
  EXPECT_EQ(by_time(drain(processing2)), by_time(drain(processing)));
}

// Regression: `timer_queue::pop` keeps the consumed prefix `next_` of the
// earliest list across calls. A timer registered while the queue is firing
// (by an `on_timer`) at a time before the timer being fired makes a new
// earliest list; the stale prefix used to skip it, so it never fired.
TEST(timer_queue, a_timer_registered_before_the_one_firing_fires) {
  timer_queue<std::string> q;
  q.add(10, 1, "a");
  timer_queue<std::string>::timer t;
  ASSERT_TRUE(q.pop(100, t));  // on_timer of "a" at 10 registers one at 5
  ASSERT_TRUE(q.add(5, 2, "b"));
  bool fired = q.pop(100, t);
  EXPECT_TRUE(fired);
  if (fired) {
    EXPECT_EQ(t.key, "b");
  }
  EXPECT_EQ(q.size(), 0U);  // fails: "b" is live but unreachable
}

using fired_window =
    std::tuple<std::int64_t, time_window, key_group, std::string>;

std::vector<fired_window> drain(detail::window_timers<std::string>& q,
                                std::size_t at_most = SIZE_MAX) {
  std::vector<fired_window> out;
  detail::window_timers<std::string>::timer t;
  while (out.size() < at_most && q.pop(runtime::max_watermark, t))
    out.emplace_back(t.time, t.window, t.kg, t.key);
  return out;
}

restored_state timers_of(const detail::window_timers<std::string>& q) {
  checkpoint::snapshot_builder b;
  q.snapshot_to(b, "__window-timers/event");
  return restored_from(b.finish(1, 0), 1);
}

TEST(window_timers, restored_timers_fire_in_the_same_order) {
  detail::window_timers<std::string> q;
  for (int i = 0; i < 200; ++i) {
    auto key = "k" + std::to_string(i);
    time_window w{(i % 20) * 100, (i % 20) * 100 + 100 + i};
    q.add(w.max_timestamp(), w, group_of(key), key);
  }
  auto fired = drain(q, 50);
  ASSERT_EQ(fired.size(), 50U);
  detail::window_timers<std::string> r;
  auto st = r.restore(timers_of(q), "__window-timers/event");
  ASSERT_TRUE(st.ok()) << st.to_string();
  auto want = drain(q);
  ASSERT_EQ(want.size(), 150U);
  EXPECT_EQ(r.next_time(), std::get<0>(want.front()));
  EXPECT_EQ(drain(r), want);
}

TEST(window_timers, timers_popped_from_a_window_are_not_in_the_snapshot) {
  detail::window_timers<std::string> q;
  time_window w{0, 100};
  for (int i = 0; i < 10; ++i) {
    auto key = "k" + std::to_string(i);
    q.add(w.max_timestamp(), w, group_of(key), key);
    q.add(w.max_timestamp() + 50, w, group_of(key), key);  // cleanup
  }
  auto fired = drain(q, 4);  // part of the first window's keys
  detail::window_timers<std::string> r;
  ASSERT_TRUE(r.restore(timers_of(q), "__window-timers/event").ok());
  auto want = drain(q);
  auto got = drain(r);
  ASSERT_EQ(got.size(), 16U);
  // Keys of one (time, window) come back by key group: compare as sets.
  std::sort(want.begin(), want.end());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want);
  for (const auto& f : fired) {
    EXPECT_EQ(std::count(got.begin(), got.end(), f), 0) << std::get<3>(f);
  }
}

// -- the exactly-once file sink ---------------------------------------------

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream{path} << text;
}

std::set<std::string> files_in(const std::string& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out.insert(e.path().filename().string());
  return out;
}

struct sink_fixture {
  using sink = detail::file_commit_sink<std::string>;

  explicit sink_fixture(std::chrono::milliseconds interval) {
    options.checkpoint_interval = interval;
    metric_labels labels{{"job", "ckpt"}, {"operator", "file_sink"}};
    ctx.job_name = "ckpt";
    ctx.operator_name = "file_sink";
    ctx.subtask = 0;
    ctx.records_in =
        &registry.get_counter("stream_records_in_total", "Records in.", labels);
    ctx.records_out = &registry.get_counter("stream_records_out_total",
                                            "Records out.", labels);
    ctx.metrics = &registry;
    ctx.options = &options;
  }

  std::unique_ptr<sink> make() {
    auto s = std::make_unique<sink>(ctx, out);
    auto st = s->open();
    EXPECT_TRUE(st.ok()) << st.to_string();
    return s;
  }

  static void push(sink& s, std::vector<std::string> lines) { s.push(lines); }

  /// The sink's operator state at checkpoint `id`.
  static std::string snapshot(sink& s, std::int64_t id) {
    pending_snapshot part;
    part.data = std::make_unique<checkpoint::snapshot_builder>();
    s.snapshot_state(id, part);
    EXPECT_FALSE(part.deferred);
    return part.data->operator_state;
  }

  static restored_state restored(std::int64_t id, std::string state) {
    restored_state in;
    in.checkpoint_id = id;
    in.operator_state = std::move(state);
    in.has_operator_state = true;
    return in;
  }

  std::string path(const std::string& name) const { return out + "/" + name; }

  temp_dir dir;
  std::string out = dir.path() + "/out";
  job_options options;
  metrics_registry registry;
  runtime::stage_context ctx;
};

using names = std::set<std::string>;

TEST(file_commit_sink, output_becomes_visible_when_its_checkpoint_completes) {
  sink_fixture f{std::chrono::milliseconds{100}};
  auto s = f.make();
  f.push(*s, {"a", "b"});
  EXPECT_EQ(files_in(f.out), names{".part-0-0.inprogress"});
  f.snapshot(*s, 1);
  EXPECT_EQ(files_in(f.out), names{".part-0-1.pending"});
  EXPECT_EQ(read_file(f.path(".part-0-1.pending")), "a\nb\n");
  f.push(*s, {"c"});
  EXPECT_FALSE(fs::exists(f.path("part-0-1")));

  s->notify_checkpoint_complete(1);
  EXPECT_EQ(read_file(f.path("part-0-1")), "a\nb\n");
  EXPECT_EQ(files_in(f.out), (names{"part-0-1", ".part-0-1.inprogress"}));
  s->notify_checkpoint_complete(1);  // again: harmless
  EXPECT_EQ(files_in(f.out), (names{"part-0-1", ".part-0-1.inprogress"}));

  // A checkpoint without new records stages nothing; one completion
  // commits every checkpoint up to it.
  f.snapshot(*s, 2);
  f.snapshot(*s, 3);
  f.push(*s, {"d"});
  f.snapshot(*s, 4);
  EXPECT_EQ(files_in(f.out),
            (names{"part-0-1", ".part-0-2.pending", ".part-0-4.pending"}));
  s->notify_checkpoint_complete(4);
  EXPECT_EQ(files_in(f.out), (names{"part-0-1", "part-0-2", "part-0-4"}));
  EXPECT_EQ(read_file(f.path("part-0-2")), "c\n");
  EXPECT_EQ(read_file(f.path("part-0-4")), "d\n");
  EXPECT_EQ(f.ctx.records_in->raw(), 4U);
}

/// A run that completed checkpoint 1, staged checkpoint 2 (whose completion
/// never arrived) and wrote on; a later attempt left its own files, and
/// subtask 1 has files in the same directory. Returns the state at 2.
std::string leave_a_failed_run(sink_fixture& f) {
  auto s = f.make();
  f.push(*s, {"a"});
  f.snapshot(*s, 1);
  s->notify_checkpoint_complete(1);
  f.push(*s, {"b"});
  auto state = f.snapshot(*s, 2);
  f.push(*s, {"c"});
  s->flush();
  s.reset();
  write_file(f.path("part-0-3"), "later\n");
  write_file(f.path(".part-0-3.inprogress"), "later\n");
  write_file(f.path("part-1-3"), "other\n");
  write_file(f.path(".part-1-2.pending"), "other\n");
  EXPECT_EQ(files_in(f.out),
            (names{"part-0-1", ".part-0-2.pending", ".part-0-2.inprogress",
                   "part-0-3", ".part-0-3.inprogress", "part-1-3",
                   ".part-1-2.pending"}));
  return state;
}

TEST(file_commit_sink, a_restored_sink_commits_the_restored_checkpoint) {
  sink_fixture f{std::chrono::milliseconds{100}};
  auto state = leave_a_failed_run(f);
  auto s = f.make();
  auto st = s->restore_state(f.restored(2, state));
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(read_file(f.path("part-0-2")), "b\n");

  // The first output removes what the failed run wrote after checkpoint 2.
  f.push(*s, {"d"});
  EXPECT_EQ(files_in(f.out),
            (names{"part-0-1", "part-0-2", ".part-0-2.inprogress", "part-1-3",
                   ".part-1-2.pending"}));
  f.snapshot(*s, 3);
  s->notify_checkpoint_complete(3);
  EXPECT_EQ(read_file(f.path("part-0-3")), "d\n");
  EXPECT_EQ(read_file(f.path("part-0-1")), "a\n");
}

TEST(file_commit_sink, a_restored_sink_cleans_up_on_finish_too) {
  sink_fixture f{std::chrono::milliseconds{100}};
  auto state = leave_a_failed_run(f);
  auto s = f.make();
  ASSERT_TRUE(s->restore_state(f.restored(2, state)).ok());
  s->finish();
  EXPECT_EQ(files_in(f.out),
            (names{"part-0-1", "part-0-2", "part-1-3", ".part-1-2.pending"}));
}

TEST(file_commit_sink, restoring_a_commit_that_already_happened_is_harmless) {
  sink_fixture f{std::chrono::milliseconds{100}};
  std::string state;
  {
    auto s = f.make();
    f.push(*s, {"a"});
    state = f.snapshot(*s, 1);
    s->notify_checkpoint_complete(1);
  }
  auto s = f.make();
  auto st = s->restore_state(f.restored(1, state));
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(read_file(f.path("part-0-1")), "a\n");
}

TEST(file_commit_sink, restore_fails_when_staged_output_is_gone) {
  sink_fixture f{std::chrono::milliseconds{100}};
  std::string state;
  {
    auto s = f.make();
    f.push(*s, {"a"});
    state = f.snapshot(*s, 2);
  }
  fs::remove(f.path(".part-0-2.pending"));
  auto s = f.make();
  auto st = s->restore_state(f.restored(2, state));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), errc::not_found);
  EXPECT_NE(st.message().find(f.path(".part-0-2.pending")), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find(f.path("part-0-2")), std::string::npos)
      << st.message();
}

TEST(file_commit_sink, without_checkpoints_finish_commits_the_output) {
  sink_fixture f{std::chrono::milliseconds{0}};
  auto s = f.make();
  f.push(*s, {"a", "b"});
  f.push(*s, {"c"});
  EXPECT_TRUE(files_in(f.out).count("part-0-1") == 0);
  s->finish();
  EXPECT_EQ(files_in(f.out), names{"part-0-1"});
  EXPECT_EQ(read_file(f.path("part-0-1")), "a\nb\nc\n");
}

TEST(part_files, clean_keeps_committed_output_and_other_subtasks_files) {
  temp_dir dir;
  detail::part_files files{dir.path(), 0};
  ASSERT_TRUE(files.open().ok());
  for (const auto* name :
       {"part-0-1", "part-0-2", "part-0-3", "part-0-12", ".part-0-3.inprogress",
        ".part-0-4.pending", "part-1-5", ".part-1-5.pending",
        ".part-1-6.inprogress", "part-10-9", ".part-10-9.pending", "part-0-x",
        "notes.txt"})
    write_file(dir.path() + "/" + name, "x\n");
  auto removed = files.clean(2);
  ASSERT_TRUE(removed.ok()) << removed.error().to_string();
  EXPECT_EQ(*removed, 4U);
  EXPECT_EQ(files_in(dir.path()),
            (names{"part-0-1", "part-0-2", "part-1-5", ".part-1-5.pending",
                   ".part-1-6.inprogress", "part-10-9", ".part-10-9.pending",
                   "part-0-x", "notes.txt"}));
}

// -- source positions ---------------------------------------------------------

/// Gathers everything pushed into it.
class gather final : public runtime::consumer<std::uint64_t> {
 public:
  void push(std::vector<std::uint64_t>& records) override {
    all.insert(all.end(), records.begin(), records.end());
  }
  void flush() override {}
  void finish() override {}
  void on_control(const runtime::control_event&) override {}

  std::vector<std::uint64_t> all;
};

struct generator_fixture {
  generator_fixture(std::uint32_t subtask, std::uint32_t parallelism) {
    ctx.subtask = subtask;
    ctx.parallelism = parallelism;
    ctx.records_in = &in;
    ctx.records_out = &out;
  }
  auto make(std::uint64_t count) {
    auto fn = [](std::uint64_t i) { return i * 3 + 1; };
    return detail::generator_source<std::uint64_t, decltype(fn)>{ctx, &sink, fn,
                                                                 count, 0};
  }
  counter in;
  counter out;
  runtime::stage_context ctx;
  gather sink;
};

template <class Source>
std::string position_of(Source& s) {
  pending_snapshot part;
  part.data = std::make_unique<checkpoint::snapshot_builder>();
  s.snapshot_state(1, part);
  return part.data->operator_state;
}

restored_state position_state(std::string state) {
  restored_state in;
  in.checkpoint_id = 1;
  in.operator_state = std::move(state);
  in.has_operator_state = true;
  return in;
}

TEST(generator_source, a_restored_source_resumes_at_the_same_index) {
  generator_fixture a{1, 3};
  auto g = a.make(500);
  ASSERT_TRUE(g.open().ok());
  g.pull(7);
  g.pull(7);
  auto state = position_of(g);
  auto before = a.sink.all.size();
  while (g.pull(10).next != runtime::pull_result::state::ended) {
  }
  std::vector<std::uint64_t> rest(a.sink.all.begin() + before,
                                  a.sink.all.end());
  ASSERT_FALSE(rest.empty());

  generator_fixture b{1, 3};
  auto h = b.make(500);
  ASSERT_TRUE(h.open().ok());
  auto st = h.restore_state(position_state(state));
  ASSERT_TRUE(st.ok()) << st.to_string();
  while (h.pull(10).next != runtime::pull_result::state::ended) {
  }
  EXPECT_EQ(b.sink.all, rest);
}

TEST(generator_source, a_position_of_another_parallelism_is_refused) {
  generator_fixture a{1, 3};
  auto g = a.make(500);
  ASSERT_TRUE(g.open().ok());
  g.pull(5);
  auto state = position_of(g);

  generator_fixture narrower{1, 2};
  auto h = narrower.make(500);
  auto st = h.restore_state(position_state(state));
  EXPECT_EQ(st.code(), errc::malformed_data) << st.to_string();

  generator_fixture other_subtask{0, 3};
  auto k = other_subtask.make(500);
  st = k.restore_state(position_state(state));
  EXPECT_EQ(st.code(), errc::malformed_data) << st.to_string();

  generator_fixture same{1, 3};
  auto m = same.make(500);
  st = m.restore_state(restored_state{});  // no position at all
  EXPECT_EQ(st.code(), errc::malformed_data) << st.to_string();
}

}  // namespace
}  // namespace stream
