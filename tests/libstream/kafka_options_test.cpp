// The Kafka connectors' options and start-up checks that need no broker:
// names of the enums, refused configurations, how a failed check names its
// operator, the prefetch split and the event time a source subtask follows.
// The broker-facing behaviour is in tests/integration/kafka_test.cpp and
// kafka_connector_test.cpp.

#include <gtest/gtest.h>

#include "stream/environment.hpp"
#include "stream/kafka.hpp"

namespace stream {
namespace {

TEST(kafka_options, names_round_trip_and_bad_names_list_the_valid_ones) {
  for (auto v : {kafka::start_from::earliest, kafka::start_from::latest,
                 kafka::start_from::committed, kafka::start_from::timestamp})
    EXPECT_EQ(*kafka::parse_start_from(kafka::to_string(v)), v);
  for (auto v :
       {kafka::bad_record_policy::skip, kafka::bad_record_policy::dead_letter,
        kafka::bad_record_policy::fail})
    EXPECT_EQ(*kafka::parse_bad_record_policy(kafka::to_string(v)), v);
  for (auto v : {kafka::delivery::at_least_once, kafka::delivery::exactly_once})
    EXPECT_EQ(*kafka::parse_delivery(kafka::to_string(v)), v);

  auto bad = kafka::parse_start_from("newest");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message(),
            "unknown Kafka start position 'newest' (valid: earliest, latest, "
            "committed, timestamp)");
  EXPECT_FALSE(kafka::parse_delivery("exactly_once").ok());
  EXPECT_FALSE(kafka::parse_bad_record_policy("drop").ok());
}

TEST(kafka_options, configurations_refused_before_asking_the_broker) {
  job_options job;
  kafka::source_options in;
  auto st = kafka::detail::check_source(in, job);
  EXPECT_EQ(st.code(), errc::invalid_config);
  EXPECT_EQ(st.message(), "Kafka source: no topic given");

  in.topic = "views";
  in.bad_records = kafka::bad_record_policy::dead_letter;
  st = kafka::detail::check_source(in, job);
  EXPECT_EQ(st.message(),
            "Kafka source: bad records go to a dead-letter topic, but none "
            "is given");

  in.bad_records = kafka::bad_record_policy::skip;
  in.rate = -1;
  EXPECT_EQ(kafka::detail::check_source(in, job).message(),
            "Kafka source: the rate must be >= 0");

  in.rate = 0;
  in.prefetch = 999;
  EXPECT_EQ(kafka::detail::check_source(in, job).message(),
            "Kafka source: prefetch 999 is too small: a subtask keeps at "
            "least 1000 messages fetched ahead");

  kafka::sink_options out;
  EXPECT_EQ(kafka::detail::check_sink(out, job).message(),
            "Kafka sink: no topic given");
}

TEST(kafka_options, the_prefetch_is_split_over_a_subtasks_partitions) {
  using kafka::detail::queued_min_messages;
  EXPECT_EQ(queued_min_messages(500'000, 2), 250'000u);
  EXPECT_EQ(queued_min_messages(500'000, 3), 166'666u);
  // A subtask without partitions creates its consumer all the same.
  EXPECT_EQ(queued_min_messages(500'000, 0), 500'000u);
  // Within librdkafka's range 1 .. 10,000,000.
  EXPECT_EQ(queued_min_messages(1'000, 5'000), 1u);
  EXPECT_EQ(queued_min_messages(50'000'000, 1), 10'000'000u);
}

TEST(kafka_options, event_time_follows_active_partitions_or_all_idle_ones) {
  using kafka::detail::followed_timestamp;
  using kafka::detail::partition_clock;
  auto clock = [](std::int64_t max_timestamp, bool idle) {
    partition_clock c;
    c.max_timestamp = max_timestamp;
    c.idle = idle;
    return c;
  };
  const auto none = runtime::min_watermark;
  bool all_idle = true;
  // The slowest active partition; idle ones do not count.
  EXPECT_EQ(
      followed_timestamp(
          {clock(100, true), clock(1000, false), clock(700, false)}, all_idle),
      700);
  EXPECT_FALSE(all_idle);
  // An active partition without data holds event time back.
  EXPECT_EQ(
      followed_timestamp({clock(1000, false), clock(none, false)}, all_idle),
      none);
  // All idle: the furthest partition with data, whichever turned idle
  // first (an empty one adds nothing).
  EXPECT_EQ(
      followed_timestamp(
          {clock(100, true), clock(1000, true), clock(none, true)}, all_idle),
      1000);
  EXPECT_TRUE(all_idle);
  // No partitions, or only empty idle ones: idle with nothing to follow.
  EXPECT_EQ(followed_timestamp({}, all_idle), none);
  EXPECT_TRUE(all_idle);
  EXPECT_EQ(followed_timestamp({clock(none, true)}, all_idle), none);
}

TEST(kafka_options, a_failed_start_up_check_names_its_operator) {
  environment env;
  auto views = kafka::source<std::string>(
      env, kafka::source_options{}, [](const kafka::message& m) {
        return result<std::string>{std::string{m.value}};
      });
  kafka::sink(views, kafka::sink_options{}, [](const std::string& s) {
    return kafka::record{"", s};
  }).name("out");
  auto st = env.graph().run_checks(env.options());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message(),
            "operator 'kafka_source': Kafka source: no topic given");
}

TEST(kafka_options, a_watermark_strategy_needs_a_timestamp_assigner) {
  environment env;
  EXPECT_THROW(
      kafka::source<std::string>(
          env, kafka::source_options{},
          [](const kafka::message& m) {
            return result<std::string>{std::string{m.value}};
          },
          watermark_strategy<std::string>::for_monotonous_timestamps()),
      std::invalid_argument);
}

}  // namespace
}  // namespace stream
