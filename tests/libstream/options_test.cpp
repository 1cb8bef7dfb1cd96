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
