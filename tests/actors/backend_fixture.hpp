#pragma once

// A test parameterised by state backend ("memory" or "leveldb"), with a
// fresh state directory per test and job options that make runs
// deterministic: a watermark after every batch of `batch_size` records.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "stream/options.hpp"

namespace stream::testing {

class backend_test : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/stream-backend-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  /// Parallelism 2, two threads, no /metrics, the backend under test.
  job_options backend_options(std::uint32_t batch_size) const {
    job_options o;
    o.parallelism = 2;
    o.threads = 2;
    o.metrics_address.clear();
    o.batch_size = batch_size;
    o.watermark_interval = std::chrono::milliseconds{0};
    o.state_backend = GetParam();
    o.state_dir = dir_;
    return o;
  }

  std::string dir_;
};

}  // namespace stream::testing
