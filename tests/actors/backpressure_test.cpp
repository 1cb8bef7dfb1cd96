// A fast source into a deliberately slow sink: credits bound every channel,
// memory stays flat, and /metrics shows the source's backpressured time grow.

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "scrape.hpp"
#include "stream/metrics.hpp"
#include "stream/run.hpp"

namespace stream {
namespace {

using stream::testing::http_get;
using stream::testing::sum_of;

long rss_kib() {
  std::ifstream status{"/proc/self/status"};
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      long kib = 0;
      status >> kib;
      return kib;
    }
  }
  return -1;
}

TEST(backpressure, bounds_channels_by_credits_and_shows_at_the_source) {
  job_options o;
  o.parallelism = 2;
  o.threads = 2;
  o.channel_credits = 8;
  o.drain_on_stop = true;  // the stop below only ends the measurement
  o.metrics_address = "127.0.0.1";
  o.metrics_port = 0;
  environment env{o};
  std::atomic<std::uint64_t> consumed{0};
  env.from_generator(
         [](std::uint64_t i) { return std::string(64, 'a' + i % 26); })
      .map([](const std::string& s) { return s + "!"; })
      .for_each([&consumed](const std::string&) {
        // Deliberately slow: about 50k records/s against a source that
        // makes millions.
        if (++consumed % 50 == 0)
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
      })
      .name("slow_sink")
      .parallelism(1);

  auto registry = std::make_shared<metrics_registry>();
  std::atomic<int> port{-1};
  std::atomic<bool> stop{false};
  execution_hooks hooks;
  hooks.registry = registry;
  hooks.stop = &stop;
  hooks.on_metrics_ready = [&](std::uint16_t p) { port = p; };
  result<job_report> report{status{errc::internal, "not run"}};
  std::thread job{[&] { report = execute(env, hooks); }};

  // Bounded waits: the job must get going within 20 s.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while ((port < 0 || consumed < 20000) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_GE(port.load(), 0);
  ASSERT_GE(consumed.load(), 20000U);
  auto url = "http://127.0.0.1:" + std::to_string(port.load()) + "/metrics";
  const std::string at_source = "operator=\"generator\"";
  auto first = http_get(url);
  auto rss_first = rss_kib();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  auto second = http_get(url);
  auto rss_second = rss_kib();
  stop = true;
  job.join();
  ASSERT_TRUE(report.ok()) << report.error().to_string();

  // Both generator subtasks spent most of those 2 s waiting for credit.
  auto bp1 = sum_of(first, "stream_backpressured_seconds_total", at_source);
  auto bp2 = sum_of(second, "stream_backpressured_seconds_total", at_source);
  std::printf(
      "measured: source backpressured %.3f s -> %.3f s over 2 s (2 "
      "subtasks); RSS %ld KiB -> %ld KiB\n",
      bp1, bp2, rss_first, rss_second);
  EXPECT_GT(bp2 - bp1, 2.0) << "backpressured seconds " << bp1 << " -> " << bp2;
  // Memory flat: without credits the sink's mailbox would grow by hundreds
  // of megabytes per second here.
#if defined(__SANITIZE_ADDRESS__)
  // ASan keeps freed memory in quarantine for a while.
  constexpr long limit_kib = 96 * 1024;
#else
  constexpr long limit_kib = 16 * 1024;
#endif
  EXPECT_LT(rss_second - rss_first, limit_kib)
      << "RSS " << rss_first << " KiB -> " << rss_second << " KiB";

  // No channel ever held more batches than its credits (batches sent and
  // not yet given back, counted at the sender), and the channels into the
  // sink did fill their window.
  int channels = 0;
  int sink_channels = 0;
  for (const auto& fam : registry->snapshot()) {
    if (fam.name != "stream_channel_in_flight_batches_max") continue;
    for (const auto& s : fam.samples) {
      ++channels;
      EXPECT_LE(s.value, 8.0);
      bool at_sink = false;
      for (const auto& [k, v] : s.labels)
        at_sink |= k == "channel" && v.rfind("slow_sink/", 0) == 0;
      if (at_sink) {
        ++sink_channels;
        EXPECT_EQ(s.value, 8.0);
      }
    }
  }
  EXPECT_EQ(channels, 2);
  EXPECT_EQ(sink_channels, 2);
}

}  // namespace
}  // namespace stream
