// Restart strategies as pure functions of the failure times: synthetic
// steady_clock time points, no job and no sleeping.

#include "stream/restart.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace stream {
namespace {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

/// An arbitrary fixed origin: only differences between failures matter.
const restart_policy::clock::time_point t0 =
    restart_policy::clock::time_point{} + 1h;

job_options strategy(const std::string& name) {
  job_options o;
  o.restart_strategy = name;
  return o;
}

TEST(restart_policy, none_gives_up_at_the_first_failure_and_says_why) {
  restart_policy p{strategy("none")};
  EXPECT_EQ(p.name(), "none");
  EXPECT_EQ(p.on_failure(t0), std::nullopt);
  EXPECT_EQ(p.reason(), "restart strategy none: no restarts");
  EXPECT_EQ(p.restarts(), 0U);
}

TEST(restart_policy, fixed_delay_grants_exactly_its_attempts_then_gives_up) {
  auto o = strategy("fixed-delay");
  o.restart_attempts = 3;
  o.restart_delay = 250ms;
  restart_policy p{o};
  EXPECT_EQ(p.name(), "fixed-delay");
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(p.on_failure(t0 + i * 1s), ms{250}) << i;
    EXPECT_TRUE(p.reason().empty());
  }
  EXPECT_EQ(p.restarts(), 3U);
  EXPECT_EQ(p.on_failure(t0 + 10min), std::nullopt);
  EXPECT_EQ(p.reason(), "restart strategy fixed-delay: 3 restarts used");
  EXPECT_EQ(p.restarts(), 3U);
}

TEST(restart_policy, fixed_delay_with_no_attempts_never_restarts) {
  auto o = strategy("fixed-delay");
  o.restart_attempts = 0;
  restart_policy p{o};
  EXPECT_EQ(p.on_failure(t0), std::nullopt);
  EXPECT_EQ(p.reason(), "restart strategy fixed-delay: 0 restarts used");
}

job_options exponential(std::uint32_t attempts) {
  auto o = strategy("exponential");
  o.restart_attempts = attempts;
  o.restart_delay = 100ms;
  o.restart_max_delay = 1000ms;
  o.restart_backoff_multiplier = 2.0;
  o.restart_failure_interval = 60s;
  return o;
}

TEST(restart_policy, exponential_doubles_the_delay_up_to_the_cap) {
  restart_policy p{exponential(0)};
  std::vector<ms> got;
  for (int i = 0; i < 7; ++i) got.push_back(*p.on_failure(t0 + i * 1s));
  EXPECT_EQ(got, (std::vector<ms>{100ms, 200ms, 400ms, 800ms, 1000ms, 1000ms,
                                  1000ms}));
  EXPECT_EQ(p.restarts(), 7U);
}

TEST(restart_policy, exponential_uses_the_configured_multiplier) {
  auto o = exponential(0);
  o.restart_backoff_multiplier = 1.5;
  o.restart_max_delay = 300ms;
  restart_policy p{o};
  std::vector<ms> got;
  for (int i = 0; i < 4; ++i) got.push_back(*p.on_failure(t0 + i * 1s));
  EXPECT_EQ(got, (std::vector<ms>{100ms, 150ms, 225ms, 300ms}));
}

TEST(restart_policy, exponential_starts_over_after_a_quiet_interval) {
  restart_policy p{exponential(0)};
  EXPECT_EQ(p.on_failure(t0), 100ms);
  EXPECT_EQ(p.on_failure(t0 + 30s), 200ms);
  // 59 s after the last failure: still within the interval, the backoff
  // goes on.
  EXPECT_EQ(p.on_failure(t0 + 89s), 400ms);
  // More than the interval without a failure: back to the first delay.
  auto later = t0 + 89s + 60s + 1ms;
  EXPECT_EQ(p.on_failure(later), 100ms);
  EXPECT_EQ(p.on_failure(later + 1s), 200ms);
  EXPECT_EQ(p.restarts(), 5U);
}

TEST(restart_policy, exponential_gives_up_after_its_attempts) {
  restart_policy p{exponential(3)};
  EXPECT_EQ(p.on_failure(t0), 100ms);
  EXPECT_EQ(p.on_failure(t0 + 1s), 200ms);
  // The attempts count every restart, also across a quiet interval.
  EXPECT_EQ(p.on_failure(t0 + 10min), 100ms);
  EXPECT_EQ(p.on_failure(t0 + 10min + 1s), std::nullopt);
  EXPECT_EQ(p.reason(), "restart strategy exponential: 3 restarts used");
  EXPECT_EQ(p.restarts(), 3U);
}

TEST(restart_policy, exponential_with_zero_attempts_is_unlimited) {
  restart_policy p{exponential(0)};
  for (int i = 0; i < 1000; ++i) {
    auto d = p.on_failure(t0 + i * 1s);
    ASSERT_TRUE(d.has_value()) << i;
    ASSERT_LE(*d, 1000ms) << i;
  }
  EXPECT_EQ(p.on_failure(t0 + 1000s), 1000ms);
  EXPECT_EQ(p.restarts(), 1001U);
}

job_options failure_rate(std::uint32_t per_interval) {
  auto o = strategy("failure-rate");
  o.restart_attempts = per_interval;
  o.restart_delay = 50ms;
  o.restart_failure_interval = 10s;
  return o;
}

TEST(restart_policy, failure_rate_refuses_one_failure_too_many_in_the_window) {
  restart_policy p{failure_rate(2)};
  EXPECT_EQ(p.on_failure(t0), 50ms);
  EXPECT_EQ(p.on_failure(t0 + 1s), 50ms);
  EXPECT_EQ(p.on_failure(t0 + 2s), std::nullopt);
  EXPECT_EQ(p.reason(),
            "restart strategy failure-rate: 3 failures within 10000 ms (at "
            "most 2 allowed)");
  EXPECT_EQ(p.restarts(), 2U);
}

TEST(restart_policy, failure_rate_allows_failures_again_once_the_window_slid) {
  restart_policy p{failure_rate(2)};
  EXPECT_EQ(p.on_failure(t0), 50ms);
  EXPECT_EQ(p.on_failure(t0 + 1s), 50ms);
  // The failure at t0 left the window: two within the last 10 s.
  EXPECT_EQ(p.on_failure(t0 + 10s + 500ms), 50ms);
  EXPECT_EQ(p.on_failure(t0 + 11s + 500ms), 50ms);
  // Now the failures at 10.5 s and 11.5 s are in the window with this one.
  EXPECT_EQ(p.on_failure(t0 + 12s), std::nullopt);
  EXPECT_EQ(p.restarts(), 4U);
}

TEST(restart_policy, failure_rate_forgets_a_refusal_once_it_left_the_window) {
  restart_policy p{failure_rate(1)};
  EXPECT_EQ(p.on_failure(t0), 50ms);
  EXPECT_EQ(p.on_failure(t0 + 1s), std::nullopt);
  EXPECT_EQ(p.on_failure(t0 + 20s), 50ms);
}

TEST(restart_policy, auto_is_exponential_with_checkpoints_and_none_without) {
  auto o = strategy("auto");
  o.checkpoint_interval = 0ms;
  EXPECT_EQ(restart_policy{o}.name(), "none");
  o.checkpoint_interval = 500ms;
  restart_policy p{o};
  EXPECT_EQ(p.name(), "exponential");
  EXPECT_EQ(p.on_failure(t0), o.restart_delay);
}

}  // namespace
}  // namespace stream
