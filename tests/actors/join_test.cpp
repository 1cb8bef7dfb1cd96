// Window and interval joins against brute-force pair enumeration. Both
// inputs are in timestamp order, so no record is late and the expected
// pairs are exact.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "backend_fixture.hpp"
#include "stream/codec.hpp"
#include "stream/joins.hpp"
#include "stream/run.hpp"

namespace stream::join_test {

struct order {
  std::int64_t customer = 0;
  std::int64_t ts = 0;
  std::int64_t id = 0;
};
STREAM_FIELDS(order, customer, ts, id);

struct payment {
  std::int64_t customer = 0;
  std::int64_t ts = 0;
  std::string ref;
};
STREAM_FIELDS(payment, customer, ts, ref);

using pair_t = std::tuple<std::int64_t, std::int64_t, std::string>;

std::vector<order> make_orders(std::size_t n, unsigned seed) {
  std::mt19937_64 rng{seed};
  std::vector<order> out;
  std::int64_t t = 1'000'000;
  for (std::size_t i = 0; i < n; ++i) {
    t += static_cast<std::int64_t>(rng() % 40);
    out.push_back({static_cast<std::int64_t>(rng() % 30), t,
                   static_cast<std::int64_t>(i)});
  }
  return out;
}

std::vector<payment> make_payments(std::size_t n, unsigned seed) {
  std::mt19937_64 rng{seed};
  std::vector<payment> out;
  std::int64_t t = 1'000'000;
  for (std::size_t i = 0; i < n; ++i) {
    t += static_cast<std::int64_t>(rng() % 50);
    out.push_back(
        {static_cast<std::int64_t>(rng() % 30), t, "p" + std::to_string(i)});
  }
  return out;
}

class join_test : public stream::testing::backend_test {
 protected:
  job_options options() const { return backend_options(32); }
};

template <class T>
data_stream<T> timed(environment& env, const std::vector<T>& in) {
  return env.from_collection(in).assign_timestamps_and_watermarks(
      watermark_strategy<T>::for_monotonous_timestamps()
          .with_timestamp_assigner([](const T& x) { return x.ts; }));
}

TEST_P(join_test, window_join_emits_every_pair_of_a_key_and_window) {
  auto orders = make_orders(3000, 1);
  auto payments = make_payments(2500, 2);
  std::vector<pair_t> want;
  for (const auto& o : orders) {
    for (const auto& p : payments) {
      if (o.customer == p.customer && o.ts / 1000 == p.ts / 1000)
        want.emplace_back(o.customer, o.id, p.ref);
    }
  }
  ASSERT_GT(want.size(), 1000u);
  environment env{options()};
  auto out =
      window_join(
          timed(env, orders).key_by([](const order& o) { return o.customer; }),
          timed(env, payments).key_by([](const payment& p) {
            return p.customer;
          }),
          tumbling_event_time_windows(std::chrono::seconds{1}),
          [](const order& o, const payment& p) {
            return pair_t{o.customer, o.id, p.ref};
          })
          .collect();
  auto report = execute(env);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  auto got = out->records();
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
}

TEST_P(join_test, interval_join_emits_pairs_within_the_bounds) {
  auto orders = make_orders(3000, 3);
  auto payments = make_payments(2500, 4);
  constexpr std::int64_t lower = -200, upper = 500;
  std::vector<pair_t> want;
  for (const auto& o : orders) {
    for (const auto& p : payments) {
      if (o.customer == p.customer && p.ts >= o.ts + lower &&
          p.ts <= o.ts + upper)
        want.emplace_back(o.customer, o.id, p.ref);
    }
  }
  ASSERT_GT(want.size(), 1000u);
  environment env{options()};
  auto out =
      interval_join<pair_t>(
          timed(env, orders).key_by([](const order& o) { return o.customer; }),
          timed(env, payments).key_by([](const payment& p) {
            return p.customer;
          }),
          std::chrono::milliseconds{lower}, std::chrono::milliseconds{upper},
          [](const order& o, const payment& p, emitter<pair_t>& emit) {
            emit(pair_t{o.customer, o.id, p.ref});
          })
          .collect();
  auto report = execute(env);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  auto got = out->records();
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
}

INSTANTIATE_TEST_SUITE_P(backends, join_test,
                         ::testing::Values("memory", "leveldb"));

TEST(join, inputs_without_timestamps_are_refused_at_build_time) {
  environment env{job_options{}};
  auto a = env.from_collection(std::vector<order>{}).key_by([](const order& o) {
    return o.customer;
  });
  auto b =
      env.from_collection(std::vector<payment>{}).key_by([](const payment& p) {
        return p.customer;
      });
  EXPECT_THROW(
      window_join(a, b, tumbling_event_time_windows(std::chrono::seconds{1}),
                  [](const order&, const payment&) { return 0; }),
      std::invalid_argument);
}

}  // namespace stream::join_test
