#include "stream/metrics.hpp"

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "stream/metrics_server.hpp"
#include "stream/status.hpp"

namespace stream {
namespace {

// Substring check that prints the whole text on failure (no gmock needed).
// Expected sample lines stop after the value's leading digits: prometheus-cpp
// releases differ in how they print doubles ("7" in 1.0.1, "7.000000" later).
::testing::AssertionResult contains(const std::string& text,
                                    const std::string& part) {
  if (text.find(part) != std::string::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "\"" << part << "\" not in:\n"
                                       << text;
}

struct http_response {
  long code = 0;
  std::string body;
};

std::size_t append_body(char* data, std::size_t size, std::size_t count,
                        void* body) {
  static_cast<std::string*>(body)->append(data, size * count);
  return size * count;
}

// A real HTTP client, as a Prometheus server would scrape.
http_response http_get(const std::string& url) {
  http_response response;
  const std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl{
      curl_easy_init(), &curl_easy_cleanup};
  EXPECT_NE(curl, nullptr);
  if (curl == nullptr) return response;
  curl_easy_setopt(curl.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl.get(), CURLOPT_WRITEFUNCTION, &append_body);
  curl_easy_setopt(curl.get(), CURLOPT_WRITEDATA, &response.body);
  curl_easy_setopt(curl.get(), CURLOPT_NOSIGNAL, 1L);
  // A hung server must fail the test, not stall the suite.
  curl_easy_setopt(curl.get(), CURLOPT_TIMEOUT_MS, 5000L);
  const CURLcode rc = curl_easy_perform(curl.get());
  EXPECT_EQ(rc, CURLE_OK) << curl_easy_strerror(rc);
  curl_easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &response.code);
  return response;
}

std::string metrics_url(const metrics_server& server) {
  return "http://127.0.0.1:" + std::to_string(server.port()) + "/metrics";
}

TEST(counter, accumulates_what_is_added) {
  counter c;
  c.add();
  c.add(41);
  EXPECT_EQ(c.raw(), 42u);
  EXPECT_DOUBLE_EQ(c.value(), 42.0);
}

TEST(gauge, follows_sets_and_signed_adds) {
  gauge g;
  g.set(10);
  g.add(5);
  g.add(-20);
  EXPECT_EQ(g.value(), -5);
  EXPECT_DOUBLE_EQ(g.scaled_value(), -5.0);
}

TEST(metrics_registry, returns_the_same_series_for_the_same_name_and_labels) {
  metrics_registry registry;
  counter& first =
      registry.get_counter("records_in_total", "Records read.",
                           {{"operator", "map"}, {"subtask", "0"}});
  counter& again =
      registry.get_counter("records_in_total", "Records read.",
                           {{"operator", "map"}, {"subtask", "0"}});
  counter& reordered =
      registry.get_counter("records_in_total", "Records read.",
                           {{"subtask", "0"}, {"operator", "map"}});
  first.add(3);
  EXPECT_EQ(&first, &again);
  EXPECT_EQ(&first, &reordered);
  EXPECT_EQ(again.raw(), 3u);

  gauge& queue = registry.get_gauge("queue_length", "Batches queued.", {});
  EXPECT_EQ(&queue, &registry.get_gauge("queue_length", "Batches queued.", {}));
}

TEST(metrics_registry, keeps_series_with_different_labels_apart) {
  metrics_registry registry;
  counter& zero = registry.get_counter("records_in_total", "Records read.",
                                       {{"subtask", "0"}});
  counter& one = registry.get_counter("records_in_total", "Records read.",
                                      {{"subtask", "1"}});
  zero.add(1);
  one.add(2);
  EXPECT_NE(&zero, &one);
  EXPECT_EQ(zero.raw(), 1u);
  EXPECT_EQ(one.raw(), 2u);
  const auto families = registry.snapshot();
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].samples.size(), 2u);
}

TEST(metrics_registry, exposes_a_nanosecond_counter_in_seconds) {
  metrics_registry registry;
  counter& busy = registry.get_counter("busy_seconds_total", "Time busy.",
                                       {{"subtask", "0"}}, 1e-9);
  busy.add(1'500'000'000);
  EXPECT_EQ(busy.raw(), 1'500'000'000u);
  EXPECT_DOUBLE_EQ(busy.value(), 1.5);
  const auto families = registry.snapshot();
  ASSERT_EQ(families.size(), 1u);
  ASSERT_EQ(families[0].samples.size(), 1u);
  EXPECT_DOUBLE_EQ(families[0].samples[0].value, 1.5);
  EXPECT_TRUE(contains(registry.to_prometheus_text(),
                       "busy_seconds_total{subtask=\"0\"} 1.5"));

  gauge& lag = registry.get_gauge("lag_seconds", "Event-time lag.", {}, 1e-3);
  lag.set(250);
  EXPECT_DOUBLE_EQ(lag.scaled_value(), 0.25);
}

TEST(metrics_registry, exposes_counters_in_prometheus_text) {
  metrics_registry registry;
  registry
      .get_counter("records_out_total", "Records written.",
                   {{"job", "wordcount"}, {"operator", "sink"}})
      .add(7);
  registry
      .get_gauge("channel_credits", "Credits left,\nper channel.",
                 {{"channel", "a\"b\\c"}})
      .set(-3);
  const std::string text = registry.to_prometheus_text();
  EXPECT_TRUE(contains(text, "# HELP records_out_total Records written.\n"));
  EXPECT_TRUE(contains(text, "# TYPE records_out_total counter\n"));
  EXPECT_TRUE(contains(text,
                       "records_out_total{job=\"wordcount\","
                       "operator=\"sink\"} 7"));
  // Help and label values are escaped as the exposition format requires.
  EXPECT_TRUE(
      contains(text, "# HELP channel_credits Credits left,\\nper channel.\n"));
  EXPECT_TRUE(contains(text, "# TYPE channel_credits gauge\n"));
  EXPECT_TRUE(contains(text, "channel_credits{channel=\"a\\\"b\\\\c\"} -3"));
}

TEST(metrics_registry, snapshot_returns_what_was_registered) {
  metrics_registry registry;
  registry
      .get_gauge("key_groups_owned", "Key groups owned.", {{"subtask", "1"}})
      .set(64);
  registry.get_counter("restarts_total", "Task restarts.", {}).add(2);

  const auto families = registry.snapshot();
  ASSERT_EQ(families.size(), 2u);  // sorted by name
  EXPECT_EQ(families[0].name, "key_groups_owned");
  EXPECT_EQ(families[0].help, "Key groups owned.");
  EXPECT_EQ(families[0].type, metrics_registry::family::kind::gauge);
  ASSERT_EQ(families[0].samples.size(), 1u);
  EXPECT_EQ(families[0].samples[0].name, "key_groups_owned");
  EXPECT_EQ(families[0].samples[0].labels, (metric_labels{{"subtask", "1"}}));
  EXPECT_DOUBLE_EQ(families[0].samples[0].value, 64.0);

  EXPECT_EQ(families[1].name, "restarts_total");
  EXPECT_EQ(families[1].type, metrics_registry::family::kind::counter);
  ASSERT_EQ(families[1].samples.size(), 1u);
  EXPECT_TRUE(families[1].samples[0].labels.empty());
  EXPECT_DOUBLE_EQ(families[1].samples[0].value, 2.0);
}

TEST(metrics_registry, sums_concurrent_increments_exactly) {
  constexpr int thread_count = 4;
  constexpr int increments_per_thread = 100'000;
  metrics_registry registry;
  std::vector<std::thread> threads;
  threads.reserve(thread_count);
  for (int t = 0; t < thread_count; ++t) {
    // Every thread also races to create the series.
    threads.emplace_back([&registry] {
      counter& c = registry.get_counter("records_in_total", "Records read.",
                                        {{"operator", "map"}});
      for (int i = 0; i < increments_per_thread; ++i) c.add();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(registry
                .get_counter("records_in_total", "Records read.",
                             {{"operator", "map"}})
                .raw(),
            std::uint64_t{thread_count} * increments_per_thread);
}

#ifndef NDEBUG
TEST(metrics_registry, asserts_when_a_counter_name_is_reused_for_a_gauge) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  metrics_registry registry;
  registry.get_counter("restarts_total", "Task restarts.", {});
  EXPECT_DEATH(registry.get_gauge("restarts_total", "Task restarts.", {}),
               "another kind");
}

TEST(metrics_registry, asserts_on_a_name_prometheus_rejects) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  metrics_registry registry;
  EXPECT_DEATH(registry.get_counter("records-in", "Records read.", {}),
               "Prometheus rules");
  EXPECT_DEATH(registry.get_counter("records_in_total", "Records read.",
                                    {{"__reserved", "x"}}),
               "Prometheus rules");
}
#endif

TEST(metrics_server, serves_the_registry_over_http_on_a_free_port) {
  auto registry = std::make_shared<metrics_registry>();
  counter& records = registry->get_counter("records_in_total", "Records read.",
                                           {{"operator", "map"}});
  records.add(5);

  auto server = metrics_server::start(registry, "127.0.0.1", 0);
  ASSERT_TRUE(server.ok()) << server.error().to_string();
  EXPECT_NE((*server)->port(), 0);

  const http_response first = http_get(metrics_url(**server));
  EXPECT_EQ(first.code, 200);
  EXPECT_TRUE(contains(first.body, "# TYPE records_in_total counter\n"));
  EXPECT_TRUE(contains(first.body, "records_in_total{operator=\"map\"} 5"));

  // Later updates and new series show up in the next scrape.
  records.add(10);
  registry->get_gauge("queue_length", "Batches queued.", {}).set(3);
  const http_response second = http_get(metrics_url(**server));
  EXPECT_TRUE(contains(second.body, "records_in_total{operator=\"map\"} 15"));
  EXPECT_TRUE(contains(second.body, "queue_length 3"));
}

TEST(metrics_server, fails_with_io_error_naming_the_port_when_it_is_taken) {
  auto registry = std::make_shared<metrics_registry>();
  auto first = metrics_server::start(registry, "127.0.0.1", 0);
  ASSERT_TRUE(first.ok()) << first.error().to_string();
  const std::uint16_t taken = (*first)->port();

  auto second = metrics_server::start(registry, "127.0.0.1", taken);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), errc::io_error);
  EXPECT_TRUE(
      contains(second.error().message(), "127.0.0.1:" + std::to_string(taken)));
  EXPECT_TRUE(contains(second.error().message(), "in use"));

  // The first server is unaffected.
  EXPECT_EQ(http_get(metrics_url(**first)).code, 200);
}

TEST(metrics_server, fails_with_io_error_on_an_address_it_cannot_bind) {
  auto registry = std::make_shared<metrics_registry>();
  auto server = metrics_server::start(registry, "256.1.1.1", 9249);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.error().code(), errc::io_error);
  EXPECT_TRUE(contains(server.error().message(), "256.1.1.1:9249"));
}

TEST(metrics_server, rejects_an_address_that_would_open_more_listeners) {
  auto registry = std::make_shared<metrics_registry>();
  for (const std::string address : {"", "127.0.0.1:0,127.0.0.1", "a b"}) {
    auto server = metrics_server::start(registry, address, 0);
    ASSERT_FALSE(server.ok()) << address;
    EXPECT_EQ(server.error().code(), errc::invalid_argument) << address;
  }
}

}  // namespace
}  // namespace stream
