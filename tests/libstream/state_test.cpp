// Keyed state types, TTL and timers. Every test runs the same code on the
// memory and the LevelDB backend.

#include "stream/state.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace stream {
namespace {

class state_test : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/stream-state-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    options_.state_backend = GetParam();
    options_.state_dir = dir_;
    options_.job_name = "state_test";
    options_.state_cache_entries = 4;  // small: exercise write-back
    auto b = state::keyed_backend::open(options_, "op-0");
    ASSERT_TRUE(b.ok()) << b.error().to_string();
    backend_ = std::move(*b);
    ctx_ = std::make_unique<keyed_context<std::string>>(
        *backend_, [this] { return now_; });
  }
  void TearDown() override {
    ctx_.reset();
    backend_.reset();
    std::filesystem::remove_all(dir_);
  }

  void use(const std::string& key) {
    key_ = key;
    ctx_->set_key(key_, assign_key_group(hash_key(key_), 128));
  }

  std::string dir_;
  job_options options_;
  std::unique_ptr<state::keyed_backend> backend_;
  std::unique_ptr<keyed_context<std::string>> ctx_;
  std::string key_;
  std::int64_t now_ = 1000;
};

TEST_P(state_test, backend_is_the_one_configured) {
  EXPECT_EQ(backend_->persistent(), GetParam() == "leveldb");
  if (GetParam() == "leveldb") {
    EXPECT_TRUE(std::filesystem::exists(dir_ + "/state_test/op-0"));
  }
}

TEST_P(state_test, value_state_is_per_key) {
  auto v = ctx_->get_value_state<long>("v");
  use("a");
  EXPECT_FALSE(v.value().has_value());
  v.update(1);
  use("b");
  EXPECT_FALSE(v.value().has_value());
  v.update(2);
  // Many keys: far more than the LevelDB cache holds.
  for (int i = 0; i < 200; ++i) {
    use("k" + std::to_string(i));
    v.update(i * 3);
  }
  for (int i = 0; i < 200; ++i) {
    use("k" + std::to_string(i));
    ASSERT_EQ(v.value(), i * 3);
  }
  use("a");
  EXPECT_EQ(v.value(), 1);
  v.clear();
  EXPECT_FALSE(v.value().has_value());
  use("b");
  EXPECT_EQ(v.value(), 2);
  // Asking again by name gives the same state; another type is refused.
  EXPECT_EQ(ctx_->get_value_state<long>("v").value(), 2);
  EXPECT_THROW(ctx_->get_value_state<int>("v"), state::state_error);
}

TEST_P(state_test, list_state_appends_in_order) {
  auto l = ctx_->get_list_state<std::string>("l");
  use("a");
  EXPECT_TRUE(l.get().empty());
  l.add("x");
  l.add("y");
  l.add_all({"z", "w"});
  use("b");
  l.add("other");
  use("a");
  EXPECT_EQ(l.get(), (std::vector<std::string>{"x", "y", "z", "w"}));
  l.update({"only"});
  EXPECT_EQ(l.get(), (std::vector<std::string>{"only"}));
  l.update({});
  EXPECT_TRUE(l.get().empty());
  use("b");
  EXPECT_EQ(l.get(), (std::vector<std::string>{"other"}));
}

TEST_P(state_test, map_state_matches_a_std_map) {
  auto m = ctx_->get_map_state<int, std::string>("m");
  std::map<std::string, std::map<int, std::string>> model;
  std::mt19937 rng{7};
  for (int step = 0; step < 3000; ++step) {
    auto key = "k" + std::to_string(rng() % 20);
    use(key);
    int uk = static_cast<int>(rng() % 30);
    switch (rng() % 4) {
      case 0:
        m.put(uk, std::to_string(step));
        model[key][uk] = std::to_string(step);
        break;
      case 1:  // in place: appends to the value, or starts it empty
        m.update(uk, [&](std::string& v) { v += std::to_string(step); });
        model[key][uk] += std::to_string(step);
        break;
      case 2:
        m.remove(uk);
        model[key].erase(uk);
        break;
      case 3: {
        auto got = m.get(uk);
        auto it = model[key].find(uk);
        if (it == model[key].end())
          ASSERT_FALSE(got.has_value());
        else
          ASSERT_EQ(got, it->second);
        ASSERT_EQ(m.contains(uk), it != model[key].end());
        break;
      }
    }
  }
  for (const auto& [key, entries] : model) {
    use(key);
    std::vector<std::pair<int, std::string>> want(entries.begin(),
                                                  entries.end());
    EXPECT_EQ(m.entries(), want) << key;
    std::vector<std::pair<int, std::string>> visited;
    m.for_each([&](const int& k, const std::string& v) {
      visited.emplace_back(k, v);
    });
    EXPECT_EQ(visited, want) << key;
    EXPECT_EQ(m.empty(), want.empty());
  }
}

TEST_P(state_test, reducing_and_aggregating_state_fold_their_inputs) {
  auto r = ctx_->get_reducing_state<long>(
      "max", [](long a, long b) { return std::max(a, b); });
  auto avg = ctx_->get_aggregating_state<long, std::pair<long, long>, double>(
      "avg", std::pair<long, long>{0, 0},
      [](std::pair<long, long>& acc, const long& v) {
        acc.first += v;
        ++acc.second;
      },
      [](const std::pair<long, long>& acc) {
        return static_cast<double>(acc.first) / static_cast<double>(acc.second);
      });
  use("a");
  EXPECT_FALSE(r.get().has_value());
  EXPECT_FALSE(avg.get().has_value());
  for (long v : {5L, 9L, 2L, 4L}) {
    r.add(v);
    avg.add(v);
  }
  use("b");
  r.add(-3);
  avg.add(-3);
  use("a");
  EXPECT_EQ(r.get(), 9);
  EXPECT_DOUBLE_EQ(*avg.get(), 5.0);
  use("b");
  EXPECT_EQ(r.get(), -3);
  EXPECT_DOUBLE_EQ(*avg.get(), -3.0);
  r.clear();
  avg.clear();
  EXPECT_FALSE(r.get().has_value());
  EXPECT_FALSE(avg.get().has_value());
}

TEST_P(state_test, ttl_expires_values_after_the_last_write) {
  state_ttl ttl{std::chrono::milliseconds{100}};
  auto v = ctx_->get_value_state<int>("v", ttl);
  auto l = ctx_->get_list_state<int>("l", ttl);
  use("a");
  v.update(1);
  l.add(1);
  now_ += 60;
  EXPECT_EQ(v.value(), 1);  // a read does not extend the life
  l.add(2);                 // a write does
  now_ += 40;               // 100 ms after the write of v
  EXPECT_FALSE(v.value().has_value());
  EXPECT_EQ(l.get(), (std::vector<int>{1, 2}));
  now_ += 59;
  EXPECT_EQ(l.get(), (std::vector<int>{1, 2}));
  now_ += 1;
  EXPECT_TRUE(l.get().empty());
  // An expired list starts over on the next write.
  l.add(3);
  EXPECT_EQ(l.get(), (std::vector<int>{3}));
}

TEST_P(state_test, ttl_on_read_and_write_extends_on_every_read) {
  state_ttl ttl{std::chrono::milliseconds{100},
                state_ttl::update::on_read_and_write};
  auto v = ctx_->get_value_state<int>("v", ttl);
  auto m = ctx_->get_map_state<int, int>("m", ttl);
  use("a");
  v.update(7);
  m.put(1, 2);
  for (int i = 0; i < 5; ++i) {
    now_ += 90;
    ASSERT_EQ(v.value(), 7) << i;
    ASSERT_EQ(m.get(1), 2) << i;
  }
  now_ += 100;
  EXPECT_FALSE(v.value().has_value());
  EXPECT_FALSE(m.get(1).has_value());
}

TEST_P(state_test, tables_visit_and_drop_exactly_one_key_group_range) {
  auto table = backend_->make_table<std::string, time_window, long>("windows");
  std::map<std::pair<key_group, std::string>, long> model;
  for (int i = 0; i < 500; ++i) {
    auto key = "key" + std::to_string(i);
    auto kg = assign_key_group(hash_key(key), 128);
    bool created = false;
    table->upsert(kg, key, time_window{i, i + 10}, created) = i;
    ASSERT_TRUE(created);
    model[{kg, key}] = i;
  }
  key_group_range range{20, 60};
  std::map<std::pair<key_group, std::string>, long> seen;
  table->for_each(range, [&](key_group kg, const std::string& key,
                             const time_window& w, const long& v) {
    EXPECT_EQ(w.start, v);
    EXPECT_EQ(w.end, v + 10);
    seen[{kg, key}] = v;
  });
  std::map<std::pair<key_group, std::string>, long> want;
  for (const auto& [k, v] : model) {
    if (range.contains(k.first)) want[k] = v;
  }
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(seen, want);
  table->drop(range);
  std::size_t left = 0;
  table->for_each({0, 128}, [&](key_group kg, const std::string&,
                                const time_window&, const long&) {
    EXPECT_FALSE(range.contains(kg));
    ++left;
  });
  EXPECT_EQ(left, model.size() - want.size());
}

TEST(timer_queue, fires_each_timer_once_in_time_order) {
  timer_queue<std::string> timers;
  EXPECT_TRUE(timers.add(30, 1, "a"));
  EXPECT_TRUE(timers.add(10, 2, "b"));
  EXPECT_FALSE(timers.add(30, 1, "a"));  // deduplicated
  EXPECT_TRUE(timers.add(20, 1, "a"));
  EXPECT_TRUE(timers.add(10, 3, "c"));
  timers.remove(20, 1, "a");
  timers.add(20, 1, "a");  // re-registered after deletion: fires once
  timers.remove(10, 3, "c");
  std::vector<std::pair<std::int64_t, std::string>> fired;
  timer_queue<std::string>::timer t;
  while (timers.pop(25, t)) fired.emplace_back(t.time, t.key);
  EXPECT_EQ(fired, (std::vector<std::pair<std::int64_t, std::string>>{
                       {10, "b"}, {20, "a"}}));
  EXPECT_EQ(timers.size(), 1u);
  EXPECT_EQ(timers.next_time(), 30);
  while (timers.pop(100, t)) fired.emplace_back(t.time, t.key);
  EXPECT_EQ(fired.back(), (std::pair<std::int64_t, std::string>{30, "a"}));
  EXPECT_EQ(timers.size(), 0u);
}

INSTANTIATE_TEST_SUITE_P(backends, state_test,
                         ::testing::Values("memory", "leveldb"));

TEST(state_backend, an_unusable_state_dir_is_a_clear_error) {
  job_options options;
  options.state_backend = "leveldb";
  options.state_dir = "/proc/no-such-dir";
  auto b = state::keyed_backend::open(options, "op-0");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message().find("/proc/no-such-dir"), std::string::npos)
      << b.error().message();
}

}  // namespace
}  // namespace stream

namespace stream {
namespace {

TEST(flat_map, matches_an_unordered_map_under_random_inserts_and_erases) {
  detail::flat_map<std::uint64_t, std::uint64_t, state::key_hash<std::uint64_t>>
      map;
  std::unordered_map<std::uint64_t, std::uint64_t> model;
  std::mt19937_64 rng{11};
  for (int step = 0; step < 200000; ++step) {
    // Few distinct keys: long probe clusters, many deletions inside them.
    auto key = rng() % 3000;
    switch (rng() % 3) {
      case 0: {
        bool created = false;
        map.try_emplace(key, created) = static_cast<std::uint64_t>(step);
        ASSERT_EQ(created, model.count(key) == 0);
        model[key] = static_cast<std::uint64_t>(step);
        break;
      }
      case 1:
        map.erase(key);
        model.erase(key);
        break;
      case 2: {
        auto* v = map.find(key);
        auto it = model.find(key);
        ASSERT_EQ(v != nullptr, it != model.end()) << "step " << step;
        if (v != nullptr) {
          ASSERT_EQ(*v, it->second);
        }
        break;
      }
    }
    ASSERT_EQ(map.size(), model.size());
  }
  std::size_t seen = 0;
  map.for_each([&](const std::uint64_t& k, const std::uint64_t& v) {
    ++seen;
    EXPECT_EQ(model.at(k), v);
  });
  EXPECT_EQ(seen, model.size());
}

}  // namespace
}  // namespace stream
