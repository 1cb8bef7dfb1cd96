#include "stream/key_group_planner.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <numeric>
#include <random>
#include <utility>
#include <vector>

namespace {

using stream::key_group;
using stream::key_group_table;

key_group_table contiguous(std::uint32_t max_parallelism,
                           std::uint32_t parallelism) {
  auto table = key_group_table::contiguous(max_parallelism, parallelism);
  EXPECT_TRUE(table.ok()) << table.error().message();
  return std::move(*table);
}

key_group_table planned(const key_group_table& current,
                        std::uint32_t parallelism) {
  auto table =
      stream::plan_balanced_table(current, parallelism, current.version() + 1);
  EXPECT_TRUE(table.ok()) << table.error().message();
  return std::move(*table);
}

std::vector<std::uint32_t> counts_of(const key_group_table& table) {
  std::vector<std::uint32_t> counts(table.parallelism(), 0);
  for (key_group kg = 0; kg < table.max_parallelism(); ++kg) {
    ++counts[table.owner(kg)];
  }
  return counts;
}

// The reference minimum, by dynamic programming over subtasks instead of the
// planner's greedy choice: subtask i < q keeps min(c_i, quota_i) key groups,
// exactly M mod q subtasks get the larger quota, and every other key group
// moves.
std::uint32_t reference_minimum(const key_group_table& current,
                                std::uint32_t q) {
  const std::uint32_t m = current.max_parallelism();
  std::vector<std::uint32_t> counts(q, 0);
  for (key_group kg = 0; kg < m; ++kg) {
    if (current.owner(kg) < q) ++counts[current.owner(kg)];
  }
  const std::uint32_t base = m / q;
  const std::uint32_t larger = m % q;
  constexpr std::int64_t impossible = std::numeric_limits<std::int64_t>::min();
  // kept[e]: most key groups kept so far with e larger quotas handed out.
  std::vector<std::int64_t> kept(larger + 1, impossible);
  kept[0] = 0;
  for (std::uint32_t i = 0; i < q; ++i) {
    std::vector<std::int64_t> next(larger + 1, impossible);
    for (std::uint32_t e = 0; e <= larger; ++e) {
      if (kept[e] == impossible) continue;
      next[e] = std::max(next[e], kept[e] + std::min(counts[i], base));
      if (e < larger) {
        next[e + 1] =
            std::max(next[e + 1], kept[e] + std::min(counts[i], base + 1));
      }
    }
    kept = std::move(next);
  }
  return m - static_cast<std::uint32_t>(kept[larger]);
}

void expect_balanced(const key_group_table& table) {
  const std::uint32_t m = table.max_parallelism();
  const std::uint32_t p = table.parallelism();
  for (std::uint32_t count : counts_of(table)) {
    EXPECT_TRUE(count == m / p || count == (m + p - 1) / p)
        << count << " key groups in " << table.to_string();
  }
}

void expect_minimal_and_balanced(const key_group_table& current,
                                 std::uint32_t q) {
  const key_group_table next = planned(current, q);
  ASSERT_EQ(next.parallelism(), q);
  ASSERT_EQ(next.max_parallelism(), current.max_parallelism());
  EXPECT_EQ(next.version(), current.version() + 1);
  expect_balanced(next);
  const std::uint32_t minimum = reference_minimum(current, q);
  EXPECT_EQ(stream::moved_key_groups(current, next), minimum)
      << current.parallelism() << " -> " << q;
  EXPECT_EQ(stream::minimum_moved_key_groups(current, q), minimum);
}

TEST(key_group_planner,
     moves_the_fewest_key_groups_and_balances_for_every_p_and_q_up_to_32) {
  for (std::uint32_t p = 1; p <= 32; ++p) {
    const key_group_table from_ranges = contiguous(128, p);
    // Also from a table the planner made, which is no longer contiguous.
    const key_group_table from_plan = planned(contiguous(128, 33 - p), p);
    for (std::uint32_t q = 1; q <= 32; ++q) {
      SCOPED_TRACE(std::to_string(p) + " -> " + std::to_string(q));
      expect_minimal_and_balanced(from_ranges, q);
      expect_minimal_and_balanced(from_plan, q);
    }
  }
}

TEST(key_group_planner, moves_the_fewest_key_groups_for_32768_key_groups) {
  std::mt19937 random{20261208};
  std::uniform_int_distribution<std::uint32_t> any(1, 2000);
  std::vector<std::pair<std::uint32_t, std::uint32_t>> samples{
      {1, 2}, {2, 3}, {7, 8}, {100, 101}, {1000, 999}, {3, 1}, {1, 1}};
  for (int i = 0; i < 12; ++i) samples.emplace_back(any(random), any(random));
  for (auto [p, q] : samples) {
    SCOPED_TRACE(std::to_string(p) + " -> " + std::to_string(q));
    expect_minimal_and_balanced(contiguous(32768, p), q);
  }
}

TEST(key_group_planner, a_plus_one_step_moves_one_in_p_plus_one) {
  std::printf("M = 128, key groups moved on p -> p + 1\n");
  std::printf("%4s %8s %11s %8s\n", "p", "planner", "contiguous", "minimum");
  for (std::uint32_t p = 1; p <= 16; ++p) {
    const key_group_table from = planned(contiguous(128, 1), p);
    const std::uint32_t by_planner =
        stream::moved_key_groups(from, planned(from, p + 1));
    const std::uint32_t by_ranges =
        stream::moved_key_groups(contiguous(128, p), contiguous(128, p + 1));
    // Every one of the p + 1 subtasks ends with about M / (p + 1) key groups,
    // and the new one got all of its own from the others.
    EXPECT_EQ(by_planner, reference_minimum(from, p + 1));
    EXPECT_LE(by_planner, (128 + p) / (p + 1));
    EXPECT_LE(by_planner, by_ranges);
    std::printf("%4u %8u %11u %8u\n", p, by_planner, by_ranges,
                reference_minimum(from, p + 1));
  }
}

TEST(key_group_planner, keeps_the_lowest_key_groups_and_hands_out_runs) {
  const key_group_table two = planned(contiguous(8, 1), 2);
  EXPECT_EQ(two.to_string(), "v2 [0-3]->0 [4-7]->1");
  const key_group_table three = planned(two, 3);
  // 8 = 3 + 3 + 2: subtasks 0 and 1 keep three each, subtask 2 gets the
  // released key groups 3 and 7.
  EXPECT_EQ(three.to_string(), "v3 [0-2]->0 [3]->2 [4-6]->1 [7]->2");
  EXPECT_EQ(planned(three, 1).to_string(), "v4 [0-7]->0");
}

TEST(key_group_planner, refuses_a_parallelism_outside_one_to_m) {
  const key_group_table table = contiguous(16, 2);
  EXPECT_EQ(stream::plan_balanced_table(table, 0, 2).error().code(),
            stream::errc::invalid_argument);
  auto too_many = stream::plan_balanced_table(table, 17, 2);
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.error().message().find("got 17"), std::string::npos);
}

// Weights of 128 key groups when `keys` keys with Zipf(s) frequencies are
// hashed to their key groups.
std::vector<double> zipf_weights(std::uint32_t keys, double s) {
  std::vector<double> weights(128, 0);
  for (std::uint64_t rank = 1; rank <= keys; ++rank) {
    const std::uint32_t kg = stream::hash_key(rank) % 128;
    weights[kg] += 1 / std::pow(static_cast<double>(rank), s);
  }
  return weights;
}

double heaviest_load(const key_group_table& table,
                     const std::vector<double>& weights) {
  std::vector<double> loads(table.parallelism(), 0);
  for (key_group kg = 0; kg < table.max_parallelism(); ++kg) {
    loads[table.owner(kg)] += weights[kg];
  }
  return *std::max_element(loads.begin(), loads.end());
}

double lower_bound(const std::vector<double>& weights, std::uint32_t q) {
  const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
  return std::max(total / q, *std::max_element(weights.begin(), weights.end()));
}

void expect_near_the_bound(const std::vector<double>& weights,
                           const char* name) {
  const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
  std::printf("%s: p -> q, heaviest / bound, weight moved (%% of total)\n",
              name);
  for (std::uint32_t q = 2; q <= 16; ++q) {
    for (std::uint32_t p : {q - 1, q}) {
      const key_group_table current = contiguous(128, p);
      auto plan = stream::plan_weighted_table(current, weights, q, 2);
      ASSERT_TRUE(plan.ok()) << plan.error().message();
      // Recomputed from the table, not taken from the plan's own figures.
      const double heaviest = heaviest_load(plan->table, weights);
      const double bound = lower_bound(weights, q);
      EXPECT_NEAR(plan->heaviest_load, heaviest, 1e-9 * total);
      EXPECT_NEAR(plan->lower_bound, bound, 1e-9 * total);
      EXPECT_LE(heaviest, 1.10 * bound) << p << " -> " << q;
      double moved = 0;
      for (key_group kg = 0; kg < 128; ++kg) {
        if (current.owner(kg) != plan->table.owner(kg)) moved += weights[kg];
      }
      EXPECT_NEAR(plan->moved_weight, moved, 1e-9 * total);
      EXPECT_EQ(plan->moved, stream::moved_key_groups(current, plan->table));
      std::printf("  %2u -> %2u  %.3f  %5.1f%%  (contiguous: %.3f)\n", p, q,
                  heaviest / bound, 100 * moved / total,
                  heaviest_load(contiguous(128, q), weights) / bound);
    }
  }
}

TEST(key_group_planner, balances_a_zipf_load_near_the_lower_bound) {
  expect_near_the_bound(zipf_weights(100000, 1.0), "zipf s=1.0");
  expect_near_the_bound(zipf_weights(100000, 0.7), "zipf s=0.7");
}

TEST(key_group_planner, gives_a_key_group_with_a_fifth_of_the_load_its_own) {
  std::vector<double> weights(128, 1.0);
  weights[77] = 127.0 / 4;  // 20% of the total 158.75.
  expect_near_the_bound(weights, "one key group at 20%");
}

TEST(key_group_planner, a_balanced_load_moves_nothing_at_the_same_p) {
  const std::vector<double> uniform(128, 2.5);
  const key_group_table current = contiguous(128, 4);
  auto plan = stream::plan_weighted_table(current, uniform, 4, 2);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->moved, 0u);
  EXPECT_EQ(plan->moved_weight, 0.0);
}

TEST(key_group_planner, zero_weights_fall_back_to_the_balanced_plan) {
  const std::vector<double> zeros(64, 0);
  const key_group_table current = contiguous(64, 3);
  auto plan = stream::plan_weighted_table(current, zeros, 4, 2);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->table, planned(current, 4));
}

TEST(key_group_planner, refuses_weights_it_cannot_balance) {
  const key_group_table current = contiguous(4, 2);
  const std::vector<double> three(3, 1);
  const std::vector<double> negative{1, -1, 1, 1};
  const std::vector<double> nan{1, std::nan(""), 1, 1};
  const std::vector<double> fine{1, 1, 1, 1};
  EXPECT_FALSE(stream::plan_weighted_table(current, three, 2, 2).ok());
  EXPECT_FALSE(stream::plan_weighted_table(current, negative, 2, 2).ok());
  EXPECT_FALSE(stream::plan_weighted_table(current, nan, 2, 2).ok());
  EXPECT_FALSE(stream::plan_weighted_table(current, fine, 5, 2).ok());
  EXPECT_FALSE(stream::plan_weighted_table(current, fine, 2, 2, -0.1).ok());
  EXPECT_TRUE(stream::plan_weighted_table(current, fine, 2, 2).ok());
}

}  // namespace
