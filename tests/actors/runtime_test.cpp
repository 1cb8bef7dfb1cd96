// Jobs run end to end in one process (local role) through the actor runtime.

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "stream/checkpoint/storage.hpp"
#include "stream/metrics.hpp"
#include "stream/nexmark.hpp"
#include "stream/run.hpp"

namespace stream {
namespace {

job_options test_options(std::uint32_t parallelism) {
  job_options o;
  o.parallelism = parallelism;
  o.metrics_address.clear();  // no HTTP endpoint in unit tests
  o.threads = 2;
  return o;
}

class parallelism_test : public ::testing::TestWithParam<std::uint32_t> {};

TEST_P(parallelism_test, keyed_reduce_emits_every_running_total) {
  environment env{test_options(GetParam())};
  constexpr std::uint64_t n = 100000;
  auto out = env.from_generator([](std::uint64_t i) { return i; }, {.count = n})
                 .key_by([](const std::uint64_t& x) { return x % 97; })
                 .reduce([](const std::uint64_t& a, const std::uint64_t& b) {
                   return a + b;
                 })
                 .collect();
  auto report = execute(env);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_EQ(report->source_records, n);
  auto records = out->records();
  ASSERT_EQ(records.size(), n);
  // The largest running total of each key is its full sum.
  std::map<std::uint64_t, std::uint64_t> expected;
  for (std::uint64_t i = 0; i < n; ++i) expected[i % 97] += i;
  std::uint64_t total_max = 0;
  std::vector<std::uint64_t> sorted = records;
  std::sort(sorted.begin(), sorted.end());
  for (const auto& [k, v] : expected) {
    EXPECT_TRUE(std::binary_search(sorted.begin(), sorted.end(), v)) << k;
    total_max = std::max(total_max, v);
  }
  EXPECT_EQ(sorted.back(), total_max);
}

INSTANTIATE_TEST_SUITE_P(runtime, parallelism_test,
                         ::testing::Values(1U, 2U, 4U));

TEST(runtime, delivers_every_record_once_through_rebalance_and_union) {
  environment env{test_options(3)};
  auto a =
      env.from_generator([](std::uint64_t i) { return i; }, {.count = 50000});
  auto b = env.from_collection(std::vector<std::uint64_t>{1000000, 1000001});
  auto out = a.map([](const std::uint64_t& x) { return x * 2; })
                 .parallelism(2)
                 .union_with(b)
                 .filter([](const std::uint64_t& x) {
                   return x % 4 == 0 || x >= 1000000;
                 })
                 .collect();
  auto report = execute(env);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  auto records = out->records();
  std::sort(records.begin(), records.end());
  std::vector<std::uint64_t> expected;
  for (std::uint64_t i = 0; i < 50000; ++i) {
    if ((i * 2) % 4 == 0) expected.push_back(i * 2);
  }
  expected.push_back(1000000);
  expected.push_back(1000001);
  EXPECT_EQ(records, expected);
}

TEST(runtime, keyed_process_keeps_value_state_per_key) {
  environment env{test_options(2)};
  std::vector<std::string> words;
  for (int i = 0; i < 3000; ++i) words.push_back("w" + std::to_string(i % 30));
  auto out =
      env.from_collection(words)
          .key_by([](const std::string& w) { return w; })
          .process<std::string>([](const std::string& key, const std::string&,
                                   keyed_context<std::string>& ctx,
                                   emitter<std::string>& emit) {
            auto count = ctx.get_value_state<int>("count");
            auto n = count.value().value_or(0) + 1;
            if (n == 100) {
              emit(key + "=100");
              count.clear();
            } else {
              count.update(n);
            }
          })
          .collect();
  auto report = execute(env);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  auto records = out->records();
  EXPECT_EQ(records.size(), 30U);
  std::sort(records.begin(), records.end());
  EXPECT_EQ(records.front(), "w0=100");
}

TEST(runtime, reports_an_exception_in_user_code_naming_the_operator) {
  environment env{test_options(2)};
  env.from_generator([](std::uint64_t i) { return i; }, {.count = 100000})
      .map([](const std::uint64_t& x) {
        if (x == 5000) throw std::runtime_error("boom at 5000");
        return x;
      })
      .name("fragile")
      .discard();
  auto report = execute(env);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error().code(), errc::operator_failed);
  EXPECT_NE(report.error().message().find("fragile"), std::string::npos)
      << report.error().message();
  EXPECT_NE(report.error().message().find("boom at 5000"), std::string::npos);
}

TEST(runtime, an_input_that_ends_at_once_never_reaches_unopened_stages) {
  // Regression: end of input from a source that started first reached a
  // text sink whose actor had not started yet (null writer). Many subtasks
  // on few threads make that interleaving likely; repeat to catch it.
  auto path = ::testing::TempDir() + "/empty-" + std::to_string(::getpid());
  for (int round = 0; round < 20; ++round) {
    environment env{test_options(16)};
    env.from_generator([](std::uint64_t i) { return i; }, {.count = 0})
        .map([](const std::uint64_t& x) { return x + 1; })
        .parallelism(4)
        .write_text_file(path);
    auto report = execute(env);
    ASSERT_TRUE(report.ok()) << report.error().to_string();
    EXPECT_EQ(report->source_records, 0U);
  }
  std::remove(path.c_str());
}

TEST(runtime, the_flush_timeout_bounds_the_latency_of_a_slow_stream) {
  // 50 records/s never fill a batch of 1024: only the flush timer gets
  // them to the sink while the job runs.
  auto o = test_options(1);
  o.flush_timeout = std::chrono::milliseconds(20);
  o.drain_on_stop = true;  // no savepoint to write
  environment env{o};
  auto out = env.from_generator([](std::uint64_t i) { return i; }, {.rate = 50})
                 .map([](const std::uint64_t& x) { return x; })
                 .rebalance()
                 .collect();
  std::atomic<bool> stop{false};
  execution_hooks hooks;
  hooks.stop = &stop;
  double seen_after = -1;
  std::thread watcher{[&] {
    auto start = std::chrono::steady_clock::now();
    auto deadline = start + std::chrono::seconds(5);
    while (out->size() < 5 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (out->size() >= 5)
      seen_after = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - start)
                       .count();
    stop = true;
  }};
  auto report = execute(env, hooks);
  watcher.join();
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  // Five records take about 80 ms to generate at 50/s; with a 20 ms flush
  // timeout they arrive well within a second, not at the end of the job.
  ASSERT_GE(seen_after, 0) << "records did not arrive before the stop";
  EXPECT_LT(seen_after, 1.0);
}

TEST(runtime, fails_cleanly_when_an_input_file_is_missing) {
  environment env{test_options(1)};
  env.read_text_file("/nonexistent/input.txt").discard();
  auto report = execute(env);
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.error().message().find("/nonexistent/input.txt"),
            std::string::npos)
      << report.error().message();
}

/// Runs `env` and asks it to stop once `out` holds 100 records.
result<job_report> run_until_100_then_stop(
    environment& env, const collected<std::uint64_t>& out) {
  std::atomic<bool> stop{false};
  execution_hooks hooks;
  hooks.stop = &stop;
  std::thread stopper{[&] {
    while (out.size() < 100) std::this_thread::yield();
    stop = true;
  }};
  auto report = execute(env, hooks);
  stopper.join();
  return report;
}

TEST(runtime, a_drain_stops_an_unbounded_job_with_a_gap_free_prefix) {
  auto o = test_options(2);
  o.drain_on_stop = true;
  environment env{o};
  auto out = env.from_generator([](std::uint64_t i) { return i; })
                 .filter([](const std::uint64_t& x) { return x % 1000 == 0; })
                 .collect();
  auto report = run_until_100_then_stop(env, *out);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_TRUE(report->stopped);
  // Multiples of 1000 are even, so all come from generator subtask 0, in
  // order: a graceful stop drains, so they form a gap-free prefix.
  auto records = out->records();
  ASSERT_GE(records.size(), 100U);
  for (std::size_t i = 0; i < records.size(); ++i)
    ASSERT_EQ(records[i], i * 1000) << "lost or reordered at " << i;
}

}  // namespace
}  // namespace stream

namespace stream {
namespace {

// A parsing file source: numbers, one per line; anything else is bad.
result<std::int64_t> parse_number(std::string_view line) {
  std::int64_t v = 0;
  auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), v);
  if (ec != std::errc{} || ptr != line.data() + line.size())
    return status{errc::malformed_data,
                  "not a number: '" + std::string{line} + "'"};
  return v;
}

TEST(parsed_file_source, counts_and_skips_bad_lines_and_loses_nothing_else) {
  auto path = ::testing::TempDir() + "/numbers-" + std::to_string(::getpid());
  std::int64_t good_sum = 0;
  std::size_t good = 0, bad = 0;
  {
    std::ofstream out{path};
    for (int i = 0; i < 5000; ++i) {
      if (i % 97 == 3) {
        out << (i % 2 == 0 ? "x" + std::to_string(i) : "") << "\n";
        ++bad;
      } else {
        out << i << "\n";
        good_sum += i;
        ++good;
      }
    }
  }
  environment env{test_options(1)};
  auto got = env.read_text_file<std::int64_t>(path, parse_number).collect();
  auto registry = std::make_shared<metrics_registry>();
  execution_hooks hooks;
  hooks.registry = registry;
  auto report = execute(env, hooks);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  auto records = got->records();
  EXPECT_EQ(records.size(), good);
  std::int64_t sum = 0;
  for (auto v : records) sum += v;
  EXPECT_EQ(sum, good_sum);
  double counted = 0;
  for (const auto& f : registry->snapshot()) {
    if (f.name != "stream_bad_records_total") continue;
    for (const auto& s : f.samples) counted += s.value;
  }
  EXPECT_EQ(counted, static_cast<double>(bad));

  // With the fail policy the job fails at the first bad line (line 4).
  environment strict{test_options(1)};
  strict.read_text_file<std::int64_t>(path, parse_number, bad_records::fail)
      .discard();
  auto failed = execute(strict);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message().find(path + ":4:"), std::string::npos)
      << failed.error().message();
  std::remove(path.c_str());
}

}  // namespace
}  // namespace stream

namespace stream {
namespace {

TEST(rolling_aggregate, gives_the_same_totals_on_leveldb_as_in_memory) {
  auto run_on = [](const std::string& backend, const std::string& dir) {
    auto o = test_options(2);
    o.state_backend = backend;
    o.state_dir = dir;
    o.state_cache_entries = 64;  // far fewer than keys: real writes
    environment env{o};
    auto out =
        env.from_generator([](std::uint64_t i) { return i; }, {.count = 50000})
            .key_by([](const std::uint64_t& x) {
              return "k" + std::to_string(x % 997);
            })
            .aggregate(
                std::pair<std::uint64_t, std::uint64_t>{0, 0},
                [](std::pair<std::uint64_t, std::uint64_t>& acc,
                   const std::uint64_t& x) {
                  acc.first += x;
                  ++acc.second;
                },
                [](const std::string& key,
                   const std::pair<std::uint64_t, std::uint64_t>& acc) {
                  return key + "=" + std::to_string(acc.first) + "/" +
                         std::to_string(acc.second);
                })
            .collect();
    auto report = execute(env);
    EXPECT_TRUE(report.ok()) << report.error().to_string();
    // Two source subtasks interleave differently from run to run, so only
    // each key's final total (the update with the largest count) is fixed.
    std::map<std::string, std::pair<std::uint64_t, std::string>> last;
    auto records = out->records();
    for (const auto& r : records) {
      auto key = r.substr(0, r.find('='));
      auto count = std::stoull(r.substr(r.find('/') + 1));
      auto& l = last[key];
      if (count > l.first) l = {count, r};
    }
    EXPECT_EQ(records.size(), 50000u);
    return last;
  };
  auto dir = ::testing::TempDir() + "/rolling-" + std::to_string(::getpid());
  auto memory = run_on("memory", dir);
  auto leveldb = run_on("leveldb", dir);
  EXPECT_EQ(memory.size(), 997u);
  EXPECT_EQ(leveldb, memory);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stream

namespace stream {
namespace {

TEST(parsed_file_source, counts_each_bad_nexmark_line_in_the_metric) {
  auto path =
      ::testing::TempDir() + "/bad-" + std::to_string(::getpid()) + ".jsonl";
  nexmark::generator_config cfg;
  std::size_t good = 0, bad = 0;
  {
    std::ofstream out{path};
    const char* broken[] = {
        R"({"type":"bid","auction":1000)",                     // truncated
        R"({"type":"lot","id":1})",                            // unknown type
        R"({"type":"bid","auction":1,"bidder":2,"price":3})",  // missing
        R"({"type":"bid","auction":"x","bidder":2,"price":3,"channel":"c","url":"u","dateTime":1,"extra":""})",
        "",
        "not json at all",
    };
    for (std::uint64_t i = 0; i < 3000; ++i) {
      out << nexmark::to_json(nexmark::make_event(cfg, i)) << "\n";
      ++good;
      if (i % 500 == 7) {
        out << broken[bad % std::size(broken)] << "\n";
        ++bad;
      }
    }
  }
  environment env{test_options(1)};
  auto got =
      env.read_text_file<nexmark::event>(
             path,
             [](std::string_view line) { return nexmark::parse_json(line); })
          .collect();
  auto registry = std::make_shared<metrics_registry>();
  execution_hooks hooks;
  hooks.registry = registry;
  auto report = execute(env, hooks);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  auto events = got->records();
  ASSERT_EQ(events.size(), good);
  for (std::uint64_t i = 0; i < good; ++i)
    ASSERT_EQ(events[i], nexmark::make_event(cfg, i)) << "event " << i;
  double counted = 0;
  for (const auto& f : registry->snapshot()) {
    if (f.name != "stream_bad_records_total") continue;
    for (const auto& s : f.samples) counted += s.value;
  }
  EXPECT_EQ(counted, static_cast<double>(bad));
  std::remove(path.c_str());
}

TEST(runtime, a_stop_takes_a_savepoint_and_does_not_drain) {
  char tmpl[] = "/tmp/stream-runtime-stop-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  auto o = test_options(2);
  o.checkpoint_dir = dir;
  o.job_name = "stop";
  environment env{o};
  auto out = env.from_generator([](std::uint64_t i) { return i; })
                 .filter([](const std::uint64_t& x) { return x % 1000 == 0; })
                 .collect();
  auto report = run_until_100_then_stop(env, *out);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_TRUE(report->stopped);
  ASSERT_EQ(report->savepoint.rfind(dir + "/stop/sp-", 0), 0U)
      << report->savepoint;
  auto meta = checkpoint::read_metadata(report->savepoint);
  ASSERT_TRUE(meta.ok()) << meta.error().to_string();
  EXPECT_EQ(meta->kind, checkpoint::snapshot_kind::savepoint);
  EXPECT_FALSE(meta->final) << "the input was not ended";
  EXPECT_FALSE(meta->drained);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace stream
