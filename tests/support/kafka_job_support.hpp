#pragma once

// What the Kafka tests share: the page views they write (the seed
// example's format), the windows the job must commit for them, and reading
// the output back with a read_committed consumer.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kafka_support.hpp"
#include "line_diff.hpp"
#include "windowed_process.hpp"

namespace stream::testing {

namespace tk = stream::test::kafka;
namespace wp = windowed_process;

inline constexpr std::uint64_t users = 100;
inline constexpr std::uint64_t per_second = 1000;
/// Topics of one test: input (4 partitions), output (4), dead letters (1).
struct topics {
  std::string in = tk::unique_topic("views");
  std::string out = tk::unique_topic("windows");
  std::string dead = tk::unique_topic("dead");

  explicit topics(const std::string& brokers) {
    tk::create_topic(brokers, in, 4);
    tk::create_topic(brokers, out, 4);
    tk::create_topic(brokers, dead, 1);
  }
};

/// Views 0..n-1 as key/value messages; every `malformed_every`-th one
/// (0 = none) replaced by a line that does not parse.
inline std::vector<std::pair<std::string, std::string>> views(
    std::uint64_t n, std::uint64_t malformed_every = 0) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) {
    auto v = wp::make_view(i, users, per_second);
    if (malformed_every > 0 && (i + 1) % malformed_every == 0)
      out.emplace_back(std::to_string(v.user),
                       "malformed view #" + std::to_string(i));
    else
      out.emplace_back(std::to_string(v.user), wp::to_csv(v));
  }
  return out;
}

/// What the job must write for `input`: one line per user and window,
/// computed straight from the views that parse. Sorted.
inline std::vector<std::string> expected_windows(
    const std::vector<std::pair<std::string, std::string>>& input) {
  std::map<std::pair<std::uint64_t, std::int64_t>, std::vector<wp::page_view>>
      windows;
  for (const auto& [key, value] : input) {
    auto v = wp::parse_csv(value);
    if (!v) continue;
    auto start = v->ts - v->ts % 10'000;
    windows[{v->user, start}].push_back(*v);
  }
  std::vector<std::string> lines;
  for (const auto& [k, vs] : windows) {
    std::set<std::uint32_t> pages;
    for (const auto& v : vs) pages.insert(v.page);
    lines.push_back(wp::to_line(
        {k.first, k.second, k.second + 10'000, vs.size(), pages.size()}));
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

/// The values of every committed message of `topic`, sorted (duplicates
/// kept, so that a duplicate shows as a difference).
inline std::vector<std::string> committed_values(const std::string& brokers,
                                                 const std::string& topic) {
  std::vector<std::string> values;
  for (auto& m : tk::read_all(brokers, topic, true)) values.push_back(m.value);
  std::sort(values.begin(), values.end());
  return values;
}

/// Polls `done` every 10 ms for at most `timeout`.
template <class F>
bool eventually(F done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
  return done();
}

}  // namespace stream::testing
