#pragma once

// The fixture of the tests that run the exactly_once example across
// processes: a fresh cluster (job `eo`, parallelism 3, its own folder) and
// the check of its committed output against the reference.

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>

#include "cluster_support.hpp"
#include "exactly_once_reference.hpp"

namespace stream::testing {

class cluster_fixture : public ::testing::Test {
 protected:
  void SetUp() override { c_ = std::make_unique<cluster>(); }
  void TearDown() override { c_.reset(); }

  /// The committed output equals the reference of `readings` readings of
  /// `sensors` sensors, line for line.
  void expect_exact_output(std::uint64_t readings,
                           std::uint64_t sensors) const {
    auto expected = exactly_once_expected(readings, sensors);
    auto actual = committed_lines(c_->output());
    EXPECT_EQ(actual.size(), expected.size());
    EXPECT_TRUE(actual == expected) << line_diff(expected, actual);
  }

  std::unique_ptr<cluster> c_;
};

}  // namespace stream::testing
