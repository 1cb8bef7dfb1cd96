#include "stream/state/kv_store.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using namespace std::string_literals;
using stream::errc;
using stream::state::kv_store;
using stream::state::kv_write;
using stream::state::leveldb_options;

using entries = std::vector<std::pair<std::string, std::string>>;

/// A fresh directory under /tmp, removed with everything in it when the
/// object is destroyed.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = "/tmp/kv_store_test.XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed";
    } else {
      path_ = pattern;
    }
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }

  const std::string& path() const { return path_; }
  std::string sub(std::string_view name) const {
    return path_ + "/" + std::string{name};
  }

 private:
  std::string path_;
};

std::unique_ptr<kv_store> open_or_fail(const std::string& path,
                                       const leveldb_options& options = {}) {
  auto store = stream::state::open_leveldb(path, options);
  EXPECT_TRUE(store.ok()) << store.error().to_string();
  return store.ok() ? std::move(store).value() : nullptr;
}

/// The value of `key`, or nullopt when absent. The output string starts
/// non-empty so that an append instead of a replace shows.
std::optional<std::string> get(kv_store& store, std::string_view key) {
  std::string value = "stale bytes";
  const auto found = store.get(key, value);
  EXPECT_TRUE(found.ok()) << found.error().to_string();
  if (!found.ok() || !*found) return std::nullopt;
  return value;
}

entries scan(kv_store& store, std::string_view begin, std::string_view end,
             std::size_t limit = std::numeric_limits<std::size_t>::max()) {
  entries out;
  const stream::status s =
      store.scan(begin, end, [&](std::string_view key, std::string_view value) {
        out.emplace_back(key, value);
        return out.size() < limit;
      });
  EXPECT_TRUE(s.ok()) << s.to_string();
  return out;
}

std::vector<std::string> keys_of(const entries& es) {
  std::vector<std::string> keys;
  for (const auto& [key, value] : es) keys.push_back(key);
  return keys;
}

/// The 2-byte big-endian key-group prefix the keyed state backend puts first.
std::string group_prefix(std::uint16_t group) {
  return {static_cast<char>(group >> 8), static_cast<char>(group & 0xff)};
}

void put_or_fail(kv_store& store, std::string_view key,
                 std::string_view value) {
  const stream::status s = store.put(key, value);
  ASSERT_TRUE(s.ok()) << s.to_string();
}

/// The contract both implementations share, run against each.
class kv_store_contract : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "memory") {
      store_ = stream::state::make_memory_kv_store();
    } else {
      store_ = open_or_fail(dir_.sub("store"));
      ASSERT_NE(store_, nullptr);
    }
  }

  temp_dir dir_;
  std::unique_ptr<kv_store> store_;
};

TEST_P(kv_store_contract, gets_what_was_put_and_false_for_absent_keys) {
  kv_store& store = *store_;
  EXPECT_EQ(get(store, "a"), std::nullopt);
  put_or_fail(store, "a", "1");
  put_or_fail(store, "b", "");
  EXPECT_EQ(get(store, "a"), "1");
  EXPECT_EQ(get(store, "b"), "");
  put_or_fail(store, "a", "22");
  EXPECT_EQ(get(store, "a"), "22");
  EXPECT_TRUE(store.erase("a").ok());
  EXPECT_EQ(get(store, "a"), std::nullopt);
  EXPECT_TRUE(store.erase("never there").ok());
  EXPECT_EQ(get(store, "b"), "");
  EXPECT_EQ(get(store, "a\0"s), std::nullopt);
}

TEST_P(kv_store_contract, keys_with_nul_and_ff_bytes_are_distinct_keys) {
  kv_store& store = *store_;
  // In the unsigned bytewise order the store must keep.
  const std::vector<std::string> keys{
      ""s,     "\0"s,   "a"s,      "a\0"s,      "a\0b"s,
      "a\xff", "\xff"s, "\xff\0"s, "\xff\xff"s, "\xff\xff\0"s};
  for (std::size_t i = 0; i < keys.size(); ++i) {
    put_or_fail(store, keys[i], "v\0"s + std::to_string(i));
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(get(store, keys[i]), "v\0"s + std::to_string(i)) << i;
  }
  EXPECT_EQ(keys_of(scan(store, "", "")), keys);
  EXPECT_TRUE(store.erase("a\0"s).ok());
  EXPECT_EQ(get(store, "a\0"s), std::nullopt);
  EXPECT_EQ(get(store, "a"), "v\0"s + "2");
  EXPECT_EQ(get(store, "a\0b"s), "v\0"s + "4");
  EXPECT_EQ(keys_of(scan(store, "a", "a\xff")),
            (std::vector<std::string>{"a", "a\0b"s}));
}

TEST_P(kv_store_contract, scan_orders_keys_as_unsigned_bytes) {
  kv_store& store = *store_;
  for (const char* key : {"\xff", "\x80", "\x01", "\x7f", "\x80\x01"}) {
    put_or_fail(store, key, key);
  }
  EXPECT_EQ(
      keys_of(scan(store, "", "")),
      (std::vector<std::string>{"\x01", "\x7f", "\x80", "\x80\x01", "\xff"}));
  EXPECT_EQ(keys_of(scan(store, "\x7f\xff", "\xff")),
            (std::vector<std::string>{"\x80", "\x80\x01"}));
}

TEST_P(kv_store_contract, scan_bounds_are_half_open_and_empty_end_is_open) {
  kv_store& store = *store_;
  for (const char* key : {"a", "b", "ba", "c", "d"})
    put_or_fail(store, key, "");
  using keys = std::vector<std::string>;
  EXPECT_EQ(keys_of(scan(store, "b", "c")), (keys{"b", "ba"}));
  EXPECT_EQ(keys_of(scan(store, "b", "")), (keys{"b", "ba", "c", "d"}));
  EXPECT_EQ(keys_of(scan(store, "", "b")), (keys{"a"}));
  EXPECT_EQ(keys_of(scan(store, "a\0"s, "ba")), (keys{"b"}));
  EXPECT_EQ(keys_of(scan(store, "ba", "ba\0"s)), (keys{"ba"}));
  EXPECT_EQ(keys_of(scan(store, "bb", "c")), keys{});
  EXPECT_EQ(keys_of(scan(store, "c", "c")), keys{});
  EXPECT_EQ(keys_of(scan(store, "d", "b")), keys{});
  EXPECT_EQ(keys_of(scan(store, "d\0"s, "")), keys{});
}

TEST_P(kv_store_contract, scan_passes_values_and_stops_when_fn_returns_false) {
  kv_store& store = *store_;
  for (int i = 0; i < 10; ++i) {
    put_or_fail(store, "k" + std::to_string(i), "v" + std::to_string(i));
  }
  EXPECT_EQ(scan(store, "k3", "", 2), (entries{{"k3", "v3"}, {"k4", "v4"}}));
  int calls = 0;
  EXPECT_TRUE(store
                  .scan("", "",
                        [&](std::string_view, std::string_view) {
                          ++calls;
                          return false;
                        })
                  .ok());
  EXPECT_EQ(calls, 1);
}

TEST_P(kv_store_contract, erase_range_deletes_exactly_the_range_and_counts) {
  kv_store& store = *store_;
  // Group 2 holds 2,500 keys, more than one deletion batch.
  for (int i = 0; i < 2500; ++i) {
    put_or_fail(store, group_prefix(2) + std::to_string(i), "x");
  }
  const std::string before = group_prefix(1) + "\xff\xff";
  const std::string first = group_prefix(2);
  const std::string after = group_prefix(3);
  for (const std::string& key : {before, first, after}) {
    put_or_fail(store, key, "edge");
  }
  auto erased = store.erase_range(group_prefix(2), group_prefix(3));
  ASSERT_TRUE(erased.ok()) << erased.error().to_string();
  EXPECT_EQ(*erased, 2501u);
  EXPECT_EQ(keys_of(scan(store, "", "")),
            (std::vector<std::string>{before, after}));

  erased = store.erase_range(after, after);
  ASSERT_TRUE(erased.ok());
  EXPECT_EQ(*erased, 0u);
  erased = store.erase_range(group_prefix(2), group_prefix(1));
  ASSERT_TRUE(erased.ok());
  EXPECT_EQ(*erased, 0u);
  EXPECT_EQ(get(store, after), "edge");

  erased = store.erase_range(group_prefix(1) + "\xff\xff\0"s, "");
  ASSERT_TRUE(erased.ok());
  EXPECT_EQ(*erased, 1u);
  EXPECT_EQ(keys_of(scan(store, "", "")), (std::vector<std::string>{before}));
}

TEST_P(kv_store_contract, write_applies_every_put_and_erase_of_a_batch) {
  kv_store& store = *store_;
  put_or_fail(store, "x", "old");
  put_or_fail(store, "y", "old");
  using op = kv_write::op;
  const std::vector<kv_write> batch{
      {op::put, "a", "1"},  {op::put, "b\0"s, "2"}, {op::erase, "x", ""},
      {op::put, "c", "3"},  {op::erase, "c", ""},   {op::put, "b\0"s, "22"},
      {op::put, "y", "new"}};
  const stream::status s = store.write(batch);
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(scan(store, "", ""),
            (entries{{"a", "1"}, {"b\0"s, "22"}, {"y", "new"}}));
  EXPECT_TRUE(store.write({}).ok());
}

INSTANTIATE_TEST_SUITE_P(implementations, kv_store_contract,
                         ::testing::Values("leveldb", "memory"),
                         [](const auto& info) { return info.param; });

// --- The randomized differential test -------------------------------------

/// Random keys shaped like keyed state: a 2-byte big-endian key group and a
/// short suffix. Few groups and a small alphabet of edge bytes make keys
/// collide, so overwrites, erases and ranges hit existing keys.
class key_maker {
 public:
  explicit key_maker(std::mt19937_64& rng) : rng_(rng) {}

  std::uint16_t group() { return groups_[pick(groups_.size())]; }

  std::string key() { return key(group()); }

  std::string key(std::uint16_t group) {
    std::string key = group_prefix(group);
    const std::size_t length = pick(4);
    for (std::size_t i = 0; i < length; ++i) {
      key.push_back(static_cast<char>(alphabet_[pick(alphabet_.size())]));
    }
    return key;
  }

  /// Bytes of any value, NUL included, 0..64 long.
  std::string value() {
    std::string value(pick(65), '\0');
    for (char& c : value) c = static_cast<char>(pick(256));
    return value;
  }

  /// A range [begin, end): mostly within one key group, sometimes a whole
  /// group, open-ended or across groups; possibly inverted (so empty).
  std::pair<std::string, std::string> range() {
    const std::size_t mode = pick(20);
    if (mode < 5) {
      const std::uint16_t g = group();
      return {group_prefix(g),
              g == 0xffff ? std::string{} : group_prefix(g + 1)};
    }
    if (mode < 18) {
      const std::uint16_t g = group();
      return {key(g), key(g)};
    }
    if (mode < 19) return {key(), ""};
    return {key(), key()};
  }

  std::size_t pick(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>{0, n - 1}(rng_);
  }

 private:
  std::mt19937_64& rng_;
  std::vector<std::uint16_t> groups_{0x0000, 0x0001, 0x0002, 0x007f, 0x0080,
                                     0x00ff, 0x0100, 0xff00, 0xffff};
  std::vector<unsigned char> alphabet_{0x00, 0x01, 'a', 0x7f, 0x80, 0xfe, 0xff};
};

void expect_same_scan(kv_store& actual, kv_store& model, std::string_view begin,
                      std::string_view end, std::size_t limit) {
  const entries want = scan(model, begin, end, limit);
  ASSERT_EQ(scan(actual, begin, end, limit), want);
}

TEST(leveldb_store, random_operations_match_the_memory_model) {
  constexpr std::uint64_t seed = 20240611;
  constexpr int operations = 20000;
  temp_dir dir;
  // A 64 KiB write buffer (LevelDB's minimum) makes the memtable spill to
  // tables and compact many times during the run.
  const leveldb_options options{.wipe = true, .write_buffer_bytes = 64 << 10};
  std::unique_ptr<kv_store> db = open_or_fail(dir.sub("db"), options);
  ASSERT_NE(db, nullptr);
  const std::unique_ptr<kv_store> model = stream::state::make_memory_kv_store();
  std::mt19937_64 rng{seed};
  key_maker make{rng};
  std::string db_value;
  std::string model_value;
  std::size_t peak_keys = 0;
  for (int i = 0; i < operations; ++i) {
    SCOPED_TRACE("seed " + std::to_string(seed) + ", operation " +
                 std::to_string(i));
    // Per mille: 45% put, 25% get, 10% erase, 5% batch, 14.5% scan, 0.5%
    // erase_range (more would keep the store nearly empty).
    const std::size_t kind = make.pick(1000);
    if (kind < 450) {
      const std::string key = make.key();
      const std::string value = make.value();
      ASSERT_TRUE(db->put(key, value).ok());
      ASSERT_TRUE(model->put(key, value).ok());
    } else if (kind < 700) {
      const std::string key = make.key();
      db_value = "stale";
      model_value = "stale";
      const auto found = db->get(key, db_value);
      const auto want = model->get(key, model_value);
      ASSERT_TRUE(found.ok()) << found.error().to_string();
      ASSERT_EQ(*found, *want);
      if (*want) {
        ASSERT_EQ(db_value, model_value);
      }
    } else if (kind < 800) {
      const std::string key = make.key();
      ASSERT_TRUE(db->erase(key).ok());
      ASSERT_TRUE(model->erase(key).ok());
    } else if (kind < 850) {
      std::vector<kv_write> batch(1 + make.pick(8));
      for (kv_write& w : batch) {
        w.kind = make.pick(3) == 0 ? kv_write::op::erase : kv_write::op::put;
        w.key = make.key();
        if (w.kind == kv_write::op::put) w.value = make.value();
      }
      ASSERT_TRUE(db->write(batch).ok());
      ASSERT_TRUE(model->write(batch).ok());
    } else if (kind < 995) {
      const auto [begin, end] = make.range();
      const std::size_t limit = make.pick(4) == 0
                                    ? std::numeric_limits<std::size_t>::max()
                                    : 1 + make.pick(50);
      ASSERT_NO_FATAL_FAILURE(expect_same_scan(*db, *model, begin, end, limit));
    } else {
      const auto [begin, end] = make.range();
      const auto erased = db->erase_range(begin, end);
      const auto want = model->erase_range(begin, end);
      ASSERT_TRUE(erased.ok()) << erased.error().to_string();
      ASSERT_EQ(*erased, *want);
    }
    if (i % 1000 == 0) {
      const entries all = scan(*model, "", "");
      ASSERT_EQ(scan(*db, "", ""), all);
      peak_keys = std::max(peak_keys, all.size());
    }
    if (i == operations / 2) {
      // Half way through, the data must survive a close and reopen.
      db.reset();
      db = open_or_fail(dir.sub("db"),
                        {.wipe = false, .write_buffer_bytes = 64 << 10});
      ASSERT_NE(db, nullptr);
    }
  }
  ASSERT_NO_FATAL_FAILURE(expect_same_scan(
      *db, *model, "", "", std::numeric_limits<std::size_t>::max()));
  // Guards the workload itself: enough keys for ranges and compactions to
  // matter, and some left at the end for the final comparison.
  EXPECT_GT(peak_keys, 500u);
  EXPECT_GT(scan(*model, "", "").size(), 100u);
}

// --- LevelDB only: opening, reopening, locking, destroying ----------------

TEST(leveldb_store, reopen_without_wipe_keeps_data_and_with_wipe_starts_empty) {
  temp_dir dir;
  const std::string path = dir.sub("store");
  {
    auto store = open_or_fail(path);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->path(), path);
    put_or_fail(*store, "k\0"s, "v\xff"s);
  }
  {
    auto store = open_or_fail(path, {.wipe = false});
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(get(*store, "k\0"s), "v\xff"s);
  }
  auto store = open_or_fail(path, {.wipe = true});
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(get(*store, "k\0"s), std::nullopt);
  EXPECT_EQ(scan(*store, "", ""), entries{});
}

TEST(leveldb_store, second_open_of_an_open_path_fails_with_io_error_and_path) {
  temp_dir dir;
  const std::string path = dir.sub("store");
  auto first = open_or_fail(path);
  ASSERT_NE(first, nullptr);
  put_or_fail(*first, "k", "v");
  for (const bool wipe : {false, true}) {
    const auto second = stream::state::open_leveldb(path, {.wipe = wipe});
    ASSERT_FALSE(second.ok()) << "wipe " << wipe;
    EXPECT_EQ(second.error().code(), errc::io_error);
    EXPECT_NE(second.error().message().find(path), std::string::npos)
        << second.error().message();
    EXPECT_NE(second.error().message().find("LOCK"), std::string::npos)
        << second.error().message();
  }
  // The failed attempts, including the one asked to wipe, left data alone.
  EXPECT_EQ(get(*first, "k"), "v");
  first.reset();
  auto again = open_or_fail(path, {.wipe = false});
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(get(*again, "k"), "v");
}

TEST(leveldb_store, open_under_a_regular_file_fails_with_io_error) {
  temp_dir dir;
  std::ofstream{dir.sub("file")} << "not a directory";
  const std::string path = dir.sub("file/store");
  const auto store = stream::state::open_leveldb(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.error().code(), errc::io_error);
  EXPECT_NE(store.error().message().find(path), std::string::npos)
      << store.error().message();
}

TEST(leveldb_store, open_creates_missing_parent_directories) {
  temp_dir dir;
  const std::string path = dir.sub("a/b/c/store");
  auto store = open_or_fail(path);
  ASSERT_NE(store, nullptr);
  put_or_fail(*store, "k", "v");
  EXPECT_TRUE(std::filesystem::is_directory(path));
}

TEST(leveldb_store, empty_path_is_an_invalid_argument) {
  EXPECT_EQ(stream::state::open_leveldb("").error().code(),
            errc::invalid_argument);
  EXPECT_EQ(stream::state::destroy_leveldb("").code(), errc::invalid_argument);
}

TEST(leveldb_store, destroy_removes_the_directory_unless_the_store_is_open) {
  temp_dir dir;
  const std::string path = dir.sub("store");
  auto store = open_or_fail(path);
  ASSERT_NE(store, nullptr);
  put_or_fail(*store, "k", "v");
  std::ofstream{dir.sub("store/extra")} << "not leveldb's";

  const stream::status refused = stream::state::destroy_leveldb(path);
  EXPECT_EQ(refused.code(), errc::io_error) << refused.to_string();
  EXPECT_EQ(get(*store, "k"), "v");
  EXPECT_TRUE(std::filesystem::exists(dir.sub("store/extra")));

  store.reset();
  const stream::status destroyed = stream::state::destroy_leveldb(path);
  EXPECT_TRUE(destroyed.ok()) << destroyed.to_string();
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_TRUE(stream::state::destroy_leveldb(path).ok());
}

TEST(leveldb_store, approximate_size_covers_the_range_on_disk) {
  temp_dir dir;
  const std::string path = dir.sub("store");
  {
    auto store = open_or_fail(path);
    ASSERT_NE(store, nullptr);
    std::mt19937_64 rng{7};
    // Random values, so that compression cannot shrink them: 2 MB in all.
    std::string value(1000, '\0');
    for (int i = 0; i < 2000; ++i) {
      for (char& c : value) c = static_cast<char>(rng());
      // Four digits, zero padded, so that key order is number order.
      const std::string suffix = std::to_string(10000 + i).substr(1);
      put_or_fail(*store, group_prefix(1) + suffix, value);
    }
  }
  // Reopening writes the recovered log to a table, so all of it is on disk.
  auto store = open_or_fail(path, {.wipe = false});
  ASSERT_NE(store, nullptr);
  const std::uint64_t all = store->approximate_size("", "");
  const std::uint64_t group =
      store->approximate_size(group_prefix(1), group_prefix(2));
  const std::uint64_t half =
      store->approximate_size(group_prefix(1) + "1000", "");
  EXPECT_GE(all, 1'900'000u);
  EXPECT_LE(all, 2'300'000u);
  EXPECT_GE(group, 1'900'000u);
  EXPECT_GE(half, 900'000u);
  EXPECT_LE(half, 1'100'000u);
  EXPECT_LT(store->approximate_size(group_prefix(0), group_prefix(1)), 10'000u);
  EXPECT_EQ(store->approximate_size(group_prefix(2), ""), 0u);
  EXPECT_EQ(store->approximate_size(group_prefix(2), group_prefix(1)), 0u);
}

TEST(memory_kv_store, approximate_size_sums_key_and_value_bytes) {
  const auto store = stream::state::make_memory_kv_store();
  put_or_fail(*store, "a", "12");
  put_or_fail(*store, "bb", "123");
  put_or_fail(*store, "c", "");
  EXPECT_EQ(store->approximate_size("", ""), 9u);
  EXPECT_EQ(store->approximate_size("b", "c"), 5u);
  EXPECT_EQ(store->approximate_size("c", "b"), 0u);
  EXPECT_EQ(store->path(), "");
}

}  // namespace
