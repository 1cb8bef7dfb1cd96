#include "stream/options.hpp"

#include <gtest/gtest.h>

namespace stream {
namespace {

TEST(parse_duration, accepts_every_unit) {
  EXPECT_EQ(parse_duration("250us")->count(), 250);
  EXPECT_EQ(parse_duration("5ms")->count(), 5000);
  EXPECT_EQ(parse_duration("2s")->count(), 2000000);
  EXPECT_EQ(parse_duration("1m")->count(), 60000000);
  EXPECT_EQ(parse_duration("1h")->count(), 3600000000LL);
  EXPECT_EQ(parse_duration("0")->count(), 0);
}

TEST(parse_duration, rejects_missing_or_unknown_units_and_garbage) {
  for (const char* bad : {"", "5", "ms", "5 ms", "5sec", "-1s", "1.5s",
                          "99999999999999999999s"}) {
    auto d = parse_duration(bad);
    EXPECT_FALSE(d.ok()) << bad;
    if (!d.ok()) {
      EXPECT_EQ(d.error().code(), errc::invalid_config);
    }
  }
}

TEST(job_options, validates_ranges_and_names_the_option) {
  job_options o;
  EXPECT_TRUE(o.validate().ok());
  o.parallelism = 200;
  auto st = o.validate();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("--parallelism"), std::string::npos);
  o = {};
  o.batch_size = 0;
  EXPECT_NE(o.validate().message().find("--batch-size"), std::string::npos);
  o = {};
  o.max_parallelism = 40000;
  EXPECT_NE(o.validate().message().find("--max-parallelism"),
            std::string::npos);
}

TEST(job_options, a_job_name_must_stay_inside_its_folders) {
  job_options o;
  for (const char* good : {"eo", "keyed_sum", "nexmark-q5.v2", "A1"}) {
    o.job_name = good;
    EXPECT_TRUE(o.validate().ok()) << good;
  }
  for (const char* bad :
       {"../../x", "a/b", ".hidden", "..", "tab\there", "white space", ""}) {
    o.job_name = bad;
    auto st = o.validate();
    EXPECT_FALSE(st.ok()) << bad;
    EXPECT_EQ(st.code(), errc::invalid_config) << bad;
    EXPECT_NE(st.message().find("--job-name"), std::string::npos)
        << st.message();
  }
  o.job_name = std::string(129, 'j');
  auto st = o.validate();
  EXPECT_NE(st.message().find("longer than 128"), std::string::npos)
      << st.message();
  EXPECT_LT(st.message().size(), 200U) << "the name is shortened";
}

TEST(job_options, long_values_are_shortened_in_errors) {
  job_options o;
  o.state_backend = std::string(2 << 20, 'x');
  auto st = o.validate();
  ASSERT_FALSE(st.ok());
  EXPECT_LT(st.message().size(), 300U);
  EXPECT_NE(st.message().find("2097152 characters"), std::string::npos)
      << st.message();
  auto d = parse_duration(std::string(1 << 20, '7') + "q");
  ASSERT_FALSE(d.ok());
  EXPECT_LT(d.error().message().size(), 300U);
}

TEST(job_options, the_stop_timeout_has_bounds) {
  job_options o;
  EXPECT_EQ(o.stop_timeout, std::chrono::seconds{20});
  EXPECT_FALSE(o.drain_on_stop) << "a stop takes a savepoint by default";
  o.stop_timeout = std::chrono::milliseconds{50};
  EXPECT_NE(o.validate().message().find("--stop-timeout"), std::string::npos);
  o.stop_timeout = std::chrono::hours{2};
  EXPECT_NE(o.validate().message().find("--stop-timeout"), std::string::npos);
}

TEST(job_options, validates_the_cluster_options) {
  job_options o;
  o.role = "leader";
  EXPECT_NE(o.validate().message().find("--role must be local, coordinator "
                                        "or worker, not 'leader'"),
            std::string::npos);
  o = {};
  o.role = "worker";
  EXPECT_TRUE(o.validate().ok());
  for (const char* bad : {"host", ":80", "host:", "host:http", "host:70000"}) {
    o.coordinator = bad;
    EXPECT_NE(o.validate().message().find("--coordinator must be HOST:PORT"),
              std::string::npos)
        << bad;
  }
  o = {};
  o.slots = 0;
  EXPECT_NE(o.validate().message().find("--slots"), std::string::npos);
  o = {};
  o.tls_cert = "node.pem";
  EXPECT_NE(o.validate().message().find(
                "TLS needs all of --tls-cert, --tls-key and --tls-ca"),
            std::string::npos);
  o.tls_key = "node.key";
  o.tls_ca = "ca.pem";
  EXPECT_TRUE(o.validate().ok());
  o = {};
  o.peer_timeout = std::chrono::milliseconds{300};
  EXPECT_NE(o.validate().message().find("--peer-timeout"), std::string::npos);
  o.peer_timeout = std::chrono::milliseconds{0};
  EXPECT_TRUE(o.validate().ok()) << "0 turns the timeout off";
}

}  // namespace
}  // namespace stream
