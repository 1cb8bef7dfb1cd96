// The Kafka test support and the kafka_load generator against the real
// broker named by STREAM_TEST_KAFKA.

#include "kafka_support.hpp"

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "windowed_process.hpp"

namespace stream::test::kafka {
namespace {

using std::chrono::steady_clock;
using key_values = std::vector<std::pair<std::string, std::string>>;

std::vector<std::string> values_of(const std::vector<message>& messages) {
  std::vector<std::string> out;
  for (const auto& m : messages) out.push_back(m.value);
  std::sort(out.begin(), out.end());
  return out;
}

double seconds_since(steady_clock::time_point start) {
  return std::chrono::duration<double>(steady_clock::now() - start).count();
}

/// Kafka's murmur2 (as the Java client's default partitioner uses it).
std::uint32_t murmur2(const std::string& key) {
  constexpr std::uint32_t m = 0x5bd1e995;
  constexpr int r = 24;
  const auto* data = reinterpret_cast<const unsigned char*>(key.data());
  auto length = key.size();
  std::uint32_t h = 0x9747b28c ^ static_cast<std::uint32_t>(length);
  for (; length >= 4; data += 4, length -= 4) {
    std::uint32_t k = data[0] | data[1] << 8 | data[2] << 16 |
                      static_cast<std::uint32_t>(data[3]) << 24;
    k *= m;
    k ^= k >> r;
    k *= m;
    h = h * m ^ k;
  }
  switch (length) {
    case 3:
      h ^= static_cast<std::uint32_t>(data[2]) << 16;
      [[fallthrough]];
    case 2:
      h ^= static_cast<std::uint32_t>(data[1]) << 8;
      [[fallthrough]];
    case 1:
      h ^= data[0];
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  return h ^ (h >> 15);
}

TEST(kafka_support, broker_config_reads_the_transaction_timeout_default) {
  EXPECT_EQ(broker_config(broker(), "transaction.max.timeout.ms"), "900000");
  EXPECT_THROW(broker_config(broker(), "no.such.setting"), std::runtime_error);
}

TEST(kafka_support, broker_says_how_to_get_one_when_unset) {
  std::string saved = broker();
  ::unsetenv("STREAM_TEST_KAFKA");
  try {
    broker();
    ADD_FAILURE() << "broker() did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string{e.what()}.find("tools/kafka-broker"),
              std::string::npos)
        << e.what();
  }
  ::setenv("STREAM_TEST_KAFKA", saved.c_str(), 1);
}

TEST(kafka_support, produce_partitions_by_key_like_the_java_client) {
  auto topic = unique_topic("support-keys");
  create_topic(broker(), topic, 4, {{"retention.ms", "3600000"}});
  key_values written;
  for (int i = 0; i < 200; ++i)
    written.emplace_back("key-" + std::to_string(i % 37),
                         "value-" + std::to_string(i));
  produce(broker(), topic, written);
  auto read = read_all(broker(), topic);
  ASSERT_EQ(read.size(), written.size());
  std::map<std::string, std::int64_t> next_offset;
  for (const auto& m : read) {
    EXPECT_EQ(m.partition,
              static_cast<std::int32_t>((murmur2(m.key) & 0x7fffffff) % 4))
        << m.key;
    EXPECT_GT(m.timestamp_ms, 0);
    // One partition keeps a key's order.
    auto& next = next_offset[m.key];
    EXPECT_GE(m.offset, next);
    next = m.offset + 1;
  }
  std::vector<std::string> expected;
  for (const auto& kv : written) expected.push_back(kv.second);
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(values_of(read), expected);
  auto ends = end_offsets(broker(), topic);
  ASSERT_EQ(ends.size(), 4u);
  std::int64_t total = 0;
  for (auto end : ends) total += end;
  EXPECT_EQ(total, 200);
}

TEST(kafka_support, produce_to_one_partition_and_read_at_least) {
  auto topic = unique_topic("support-partition");
  create_topic(broker(), topic, 3);
  produce(broker(), topic, {{"a", "1"}, {"b", "2"}, {"c", "3"}}, 2);
  EXPECT_EQ(end_offsets(broker(), topic), (std::vector<std::int64_t>{0, 0, 3}));
  auto some = read_at_least(broker(), topic, 2, std::chrono::seconds{10});
  EXPECT_GE(some.size(), 2u);
  for (const auto& m : some) EXPECT_EQ(m.partition, 2);
  // Too few never throws: the test asserts on what arrived.
  auto start = steady_clock::now();
  auto all = read_at_least(broker(), topic, 10, std::chrono::seconds{2});
  EXPECT_EQ(all.size(), 3u);
  EXPECT_LT(seconds_since(start), 5.0);
}

TEST(kafka_support, read_all_of_empty_partitions_returns_at_once) {
  auto topic = unique_topic("support-empty");
  create_topic(broker(), topic, 3);
  auto start = steady_clock::now();
  EXPECT_TRUE(read_all(broker(), topic).empty());
  EXPECT_TRUE(read_all(broker(), topic, false).empty());
  EXPECT_LT(seconds_since(start), 5.0);
  EXPECT_THROW(read_all(broker(), unique_topic("support-missing")),
               std::runtime_error);
}

/// A transactional librdkafka producer for the tests below.
class transactional_producer {
 public:
  explicit transactional_producer(const std::string& topic) : topic_{topic} {
    std::array<char, 512> error{};
    auto* conf = rd_kafka_conf_new();
    auto id = unique_topic("support-txn");
    for (auto [name, value] : {std::pair{"bootstrap.servers", broker()},
                               std::pair{"transactional.id", id}})
      if (rd_kafka_conf_set(conf, name, value.c_str(), error.data(),
                            error.size()) != RD_KAFKA_CONF_OK)
        throw std::runtime_error{error.data()};
    rk_.reset(
        rd_kafka_new(RD_KAFKA_PRODUCER, conf, error.data(), error.size()));
    if (!rk_) throw std::runtime_error{error.data()};
    check(rd_kafka_init_transactions(rk_.get(), 30'000), "init");
  }

  /// Writes `records` in one transaction, committed or aborted; with a
  /// header "h: <value>" on each. `finish` false leaves it open.
  void transaction(const key_values& records, bool commit, bool finish = true) {
    check(rd_kafka_begin_transaction(rk_.get()), "begin");
    for (const auto& [key, value] : records) {
      auto err = rd_kafka_producev(
          rk_.get(), RD_KAFKA_V_TOPIC(topic_.c_str()),
          RD_KAFKA_V_KEY(key.data(), key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_HEADER("h", value.data(),
                            static_cast<ssize_t>(value.size())),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      ASSERT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(err);
    }
    // Aborting purges what is not yet sent: flush, so that the aborted
    // records really are in the log for read_uncommitted to find.
    ASSERT_EQ(rd_kafka_flush(rk_.get(), 30'000), RD_KAFKA_RESP_ERR_NO_ERROR);
    if (!finish) return;
    if (commit)
      check(rd_kafka_commit_transaction(rk_.get(), 30'000), "commit");
    else
      check(rd_kafka_abort_transaction(rk_.get(), 30'000), "abort");
  }

  void abort() {
    check(rd_kafka_abort_transaction(rk_.get(), 30'000), "abort");
  }

 private:
  static void check(rd_kafka_error_t* error, const char* what) {
    if (error == nullptr) return;
    std::string text = std::string{what} + ": " + rd_kafka_error_string(error);
    rd_kafka_error_destroy(error);
    throw std::runtime_error{text};
  }

  struct destroyer {
    void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
  };
  std::string topic_;
  std::unique_ptr<rd_kafka_t, destroyer> rk_;
};

/// `n` records "k<i>" -> "<tag><i>", spread over the partitions by key.
key_values records(const std::string& tag, int n) {
  key_values out;
  for (int i = 0; i < n; ++i)
    out.emplace_back("k" + std::to_string(i), tag + std::to_string(i));
  return out;
}

TEST(kafka_support, read_all_returns_committed_records_up_to_the_markers) {
  for (bool commit_last : {false, true}) {
    auto topic = unique_topic("support-txn");
    create_topic(broker(), topic, 2);
    transactional_producer producer{topic};
    producer.transaction(records("committed-", 6), true);
    producer.transaction(records("aborted-", 4), false);
    if (commit_last) producer.transaction(records("late-", 2), true);

    auto start = steady_clock::now();
    auto committed = read_all(broker(), topic);
    EXPECT_LT(seconds_since(start), 5.0) << "commit_last " << commit_last;
    auto expected = records("committed-", 6);
    if (commit_last)
      for (auto& kv : records("late-", 2)) expected.push_back(kv);
    std::vector<std::string> want;
    for (const auto& kv : expected) want.push_back(kv.second);
    std::sort(want.begin(), want.end());
    EXPECT_EQ(values_of(committed), want);
    for (const auto& m : committed) EXPECT_EQ(m.headers.at("h"), m.value);

    auto everything = read_all(broker(), topic, false);
    for (const auto& kv : records("aborted-", 4)) want.push_back(kv.second);
    std::sort(want.begin(), want.end());
    EXPECT_EQ(values_of(everything), want);
  }
}

TEST(kafka_support, read_all_committed_waits_for_an_open_transaction) {
  auto topic = unique_topic("support-open");
  create_topic(broker(), topic, 1);
  transactional_producer producer{topic};
  producer.transaction(records("committed-", 3), true);
  producer.transaction(records("open-", 2), false, false);
  EXPECT_EQ(read_all(broker(), topic, false).size(), 5u);
  try {
    read_all(broker(), topic, true, std::chrono::seconds{2});
    ADD_FAILURE() << "read_all did not time out";
  } catch (const std::runtime_error& e) {
    // Offsets 0-2 committed, 3 the commit marker, 4-5 the open ones.
    EXPECT_NE(std::string{e.what()}.find(
                  "with 3 messages; still missing data from partition 0 "
                  "(at offset 4 of 6)"),
              std::string::npos)
        << e.what();
  }
  producer.abort();
  auto start = steady_clock::now();
  EXPECT_EQ(read_all(broker(), topic).size(), 3u);
  EXPECT_LT(seconds_since(start), 5.0);
}

/// Runs the built kafka_load with `args`; returns its exit code and output.
std::pair<int, std::string> run_kafka_load(const std::string& args) {
  auto log = std::string{"/tmp/kafka_load_test_"} + std::to_string(::getpid()) +
             ".log";
  // `timeout` bounds the wait should the generator hang.
  auto command = std::string{"timeout 120 "} + KAFKA_LOAD_PATH + " " + args +
                 " > " + log + " 2>&1";
  int status = std::system(command.c_str());
  std::ifstream in{log};
  std::stringstream text;
  text << in.rdbuf();
  std::remove(log.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
}

TEST(kafka_load, writes_the_page_views_and_the_malformed_records) {
  auto topic = unique_topic("load");
  auto [code, output] =
      run_kafka_load("--brokers " + broker() + " --topic " + topic +
                     " --records 5000 --partitions 4 --malformed-every 1000");
  ASSERT_EQ(code, 0) << output;
  EXPECT_NE(output.find("wrote 5000 records (5 malformed) to " + topic),
            std::string::npos)
      << output;

  auto read = read_all(broker(), topic);
  ASSERT_EQ(read.size(), 5000u);
  std::set<std::int32_t> partitions;
  std::multiset<std::tuple<std::uint64_t, std::uint32_t, std::int64_t>> got;
  std::set<std::string> malformed;
  for (const auto& m : read) {
    partitions.insert(m.partition);
    if (m.value.starts_with("malformed view #")) {
      malformed.insert(m.value);
      continue;
    }
    auto view = windowed_process::parse_csv(m.value);
    ASSERT_TRUE(view.ok()) << m.value;
    EXPECT_EQ(m.key, std::to_string(view->user));
    EXPECT_EQ(m.timestamp_ms, view->ts);
    got.emplace(view->user, view->page, view->ts);
  }
  EXPECT_EQ(partitions, (std::set<std::int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(malformed, (std::set<std::string>{
                           "malformed view #999", "malformed view #1999",
                           "malformed view #2999", "malformed view #3999",
                           "malformed view #4999"}));
  std::multiset<std::tuple<std::uint64_t, std::uint32_t, std::int64_t>> want;
  for (std::uint64_t i = 0; i < 5000; ++i) {
    if ((i + 1) % 1000 == 0) continue;
    auto v = windowed_process::make_view(i, 1000, 1000);
    want.emplace(v.user, v.page, v.ts);
  }
  EXPECT_EQ(got, want);
}

TEST(kafka_load, continues_a_sequence_and_checks_the_partition_count) {
  auto topic = unique_topic("load-continue");
  auto base = "--brokers " + broker() + " --topic " + topic + " --quiet";
  auto first = run_kafka_load(base + " --records 100 --partitions 2");
  ASSERT_EQ(first.first, 0) << first.second;
  EXPECT_EQ(first.second, "");
  auto second = run_kafka_load(base + " --records 100 --first 100 --rate 1000");
  ASSERT_EQ(second.first, 0) << second.second;
  std::multiset<std::string> got;
  for (const auto& m : read_all(broker(), topic)) got.insert(m.value);
  std::multiset<std::string> want;
  for (std::uint64_t i = 0; i < 200; ++i)
    want.insert(
        windowed_process::to_csv(windowed_process::make_view(i, 1000, 1000)));
  EXPECT_EQ(got, want);

  auto wrong = run_kafka_load(base + " --records 1 --partitions 3");
  EXPECT_EQ(wrong.first, 1);
  EXPECT_NE(wrong.second.find("has 2 partitions"), std::string::npos)
      << wrong.second;
  auto usage = run_kafka_load(base + " --acks 2");
  EXPECT_EQ(usage.first, 2);
  EXPECT_NE(usage.second.find("kafka_load: --acks"), std::string::npos)
      << usage.second;
}

TEST(kafka_load, fails_fast_when_the_broker_is_unreachable) {
  auto start = steady_clock::now();
  auto [code, output] =
      run_kafka_load("--brokers 127.0.0.1:1 --topic t --records 1");
  EXPECT_EQ(code, 1);
  EXPECT_NE(output.find("kafka_load: cannot reach the Kafka broker at "
                        "127.0.0.1:1"),
            std::string::npos)
      << output;
  EXPECT_LT(seconds_since(start), 30.0);
}

}  // namespace
}  // namespace stream::test::kafka
