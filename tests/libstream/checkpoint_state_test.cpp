// What keyed state backends put into checkpoints and get back: keyed tables
// on both backends (round trips, consistency of the deferred LevelDB scan,
// restore before a table exists, rescaling) and non-keyed state across a
// change of parallelism. No actor system involved.

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "checkpoint_fixture.hpp"
#include "stream/checkpoint/snapshot.hpp"
#include "stream/checkpoint/storage.hpp"
#include "stream/state.hpp"

namespace stream {
namespace {

using checkpoint::operator_snapshot;
using checkpoint::pending_snapshot;
using checkpoint::restored_state;
using testing::all_groups;
using testing::group_of;
using testing::max_p;
using testing::restored_from;
using testing::temp_dir;

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
pending_snapshot begin_snapshot(state::keyed_backend& b,
                                const key_group_set& owned,
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

operator_snapshot take_snapshot(state::keyed_backend& b,
                                const key_group_set& owned,
                                std::uint32_t op = 7,
                                std::uint32_t subtask = 0) {
  auto part = begin_snapshot(b, owned, op);
  return finish_snapshot(part, subtask);
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

/// The "counts" table that a fresh memory backend in `dir` restores from
/// `snap`; empty (with a test failure) when the restore fails.
counts_model restored_counts(const std::string& dir, operator_snapshot snap) {
  auto check = open_backend("memory", dir, "check");
  if (check == nullptr) return {};
  auto restored =
      check->make_table<std::uint64_t, state::void_namespace, std::int64_t>(
          "counts");
  auto st = check->restore(restored_from(std::move(snap), 1));
  EXPECT_TRUE(st.ok()) << st.to_string();
  return dump(*restored);
}

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
  EXPECT_EQ(restored_counts(dir.path(), std::move(snap)), want);
}

TEST_P(one_backend, a_snapshot_holds_only_the_owned_key_groups) {
  // Both backends snapshot the key groups the subtask owns and nothing else
  // (LevelDB once scanned its whole database), also when they are runs of
  // a planned table rather than one range.
  temp_dir dir;
  auto src = open_backend(GetParam(), dir.path(), "src");
  ASSERT_NE(src, nullptr);
  auto counts =
      src->make_table<std::uint64_t, state::void_namespace, std::int64_t>(
          "counts");
  auto all = fill_counts(*counts, 3000);
  // Recent writes, some still in LevelDB's write-back cache.
  for (std::uint64_t k = 3000; k < 3040; ++k) {
    bool created = false;
    counts->upsert(group_of(k), k, {}, created) = 1;
    all[{group_of(k), k}] = 1;
  }
  const key_group_set owned{{{0, 10}, {50, 51}, {100, max_p}}};
  counts_model want;
  for (const auto& [key, value] : all) {
    if (owned.contains(key.first)) want.emplace(key, value);
  }
  ASSERT_LT(want.size(), all.size());
  ASSERT_FALSE(want.empty());

  auto snap = take_snapshot(*src, owned);
  for (const auto& section : snap.key_groups) {
    EXPECT_TRUE(owned.contains(section.group)) << "key group " << section.group;
  }
  EXPECT_EQ(restored_counts(dir.path(), std::move(snap)), want);
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

TEST(load_operator_state, another_parallelism_gets_every_old_operator_state) {
  temp_dir dir;
  auto folder = dir.sub("chk-2");
  checkpoint::metadata meta;
  meta.id = 2;
  checkpoint::metadata::operator_entry op;
  op.id = 1;
  op.name = "windows";
  op.parallelism = 2;
  for (std::uint32_t i = 0; i < 2; ++i) {
    checkpoint::snapshot_builder b;
    b.operator_state = "watermark-" + std::to_string(i);
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
  EXPECT_FALSE((*same)->rescaled);
  EXPECT_TRUE((*same)->has_operator_state);
  EXPECT_EQ((*same)->operator_state, "watermark-1");
  EXPECT_TRUE((*same)->rescaled_operator_states.empty());
  // Subtask 2 of 3 owns only key groups of old subtask 1, and still gets
  // both old operator states to merge.
  auto other = checkpoint::load_operator_state(point, 1, 2, 3,
                                               range_for_subtask(max_p, 3, 2));
  ASSERT_TRUE(other.ok()) << other.error().to_string();
  EXPECT_TRUE((*other)->rescaled);
  EXPECT_FALSE((*other)->has_operator_state);
  EXPECT_EQ((*other)->rescaled_operator_states,
            (std::vector<std::string>{"watermark-0", "watermark-1"}));
}

}  // namespace
}  // namespace stream
