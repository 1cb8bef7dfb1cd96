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

}  // namespace
}  // namespace stream
