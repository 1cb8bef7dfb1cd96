// Sources on their own: deterministic output and resumable positions.

#include "stream/detail/sources.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "stream/metrics.hpp"

namespace stream::detail {
namespace {

/// Gathers everything pushed into it.
class gather final : public runtime::consumer<std::uint64_t> {
 public:
  void push(std::vector<std::uint64_t>& records) override {
    all.insert(all.end(), records.begin(), records.end());
  }
  void flush() override {}
  void finish() override { finished = true; }
  void on_control(const runtime::control_event&) override {}

  std::vector<std::uint64_t> all;
  bool finished = false;
};

struct generator_fixture {
  generator_fixture(std::uint32_t subtask, std::uint32_t parallelism) {
    ctx.subtask = subtask;
    ctx.parallelism = parallelism;
    ctx.records_in = &in;
    ctx.records_out = &out;
  }
  auto make(std::uint64_t count) {
    auto fn = [](std::uint64_t i) { return i * i; };
    return generator_source<std::uint64_t, decltype(fn)>{ctx, &sink, fn, count,
                                                         0};
  }
  counter in;
  counter out;
  runtime::stage_context ctx;
  gather sink;
};

TEST(generator_source, subtask_produces_its_stride_of_indices_up_to_count) {
  generator_fixture f{1, 3};
  auto g = f.make(11);
  ASSERT_TRUE(g.open().ok());
  while (g.pull(2).next != runtime::pull_result::state::ended) {
  }
  EXPECT_EQ(f.sink.all, (std::vector<std::uint64_t>{1, 16, 49, 100}));
  EXPECT_TRUE(f.sink.finished);
  EXPECT_EQ(f.out.raw(), 4U);
  EXPECT_EQ(g.position(), 11U);
}

TEST(generator_source, resumes_from_a_position_with_the_same_records) {
  generator_fixture whole{0, 2};
  auto a = whole.make(1000);
  ASSERT_TRUE(a.open().ok());
  while (a.pull(64).next != runtime::pull_result::state::ended) {
  }

  generator_fixture first{0, 2};
  auto b = first.make(1000);
  ASSERT_TRUE(b.open().ok());
  for (int i = 0; i < 3; ++i) b.pull(37);
  auto position = b.position();
  EXPECT_EQ(position, 3U * 37 * 2);

  generator_fixture rest{0, 2};
  auto c = rest.make(1000);
  ASSERT_TRUE(c.open().ok());
  c.seek(position);
  while (c.pull(64).next != runtime::pull_result::state::ended) {
  }
  auto joined = first.sink.all;
  joined.insert(joined.end(), rest.sink.all.begin(), rest.sink.all.end());
  EXPECT_EQ(joined, whole.sink.all);
  EXPECT_EQ(whole.sink.all.size(), 500U);
}

}  // namespace
}  // namespace stream::detail
