// The channel protocol of one task, driven by hand through a fake transport:
// ordering of data and control events, watermark and barrier handling, and
// credit-based backpressure. No actor system involved.

#include "stream/runtime/task.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "stream/environment.hpp"
#include "stream/metrics.hpp"
#include "stream/state/tables.hpp"

namespace stream::runtime {
namespace {

/// Records every send as a short string: "B<ch>:<n>" batch, "W<ch>:<wm>",
/// "X<ch>:<id>" barrier, "E<ch>" end of input, "I<ch>" idle, "C<ch>:<n>"
/// credit.
class fake_transport final : public transport {
 public:
  void send_batch(std::uint32_t ch, batch_ptr records) override {
    log.push_back("B" + std::to_string(ch) + ":" +
                  std::to_string(records->size()));
    batches.push_back(std::move(records));
  }
  void send_event(std::uint32_t ch, const control_event& e) override {
    switch (e.kind) {
      case event_kind::watermark:
        log.push_back("W" + std::to_string(ch) + ":" + std::to_string(e.value));
        break;
      case event_kind::barrier:
        log.push_back("X" + std::to_string(ch) + ":" + std::to_string(e.value));
        break;
      case event_kind::end_of_input:
        log.push_back("E" + std::to_string(ch));
        break;
      case event_kind::idle:
        log.push_back("I" + std::to_string(ch));
        break;
      case event_kind::savepoint:
        log.push_back("S" + std::to_string(ch) + ":" + std::to_string(e.value));
        break;
    }
  }
  void grant_credit(std::uint32_t ch, std::uint32_t n) override {
    log.push_back("C" + std::to_string(ch) + ":" + std::to_string(n));
  }
  /// Kept apart from `log`, with the log position it happened at.
  struct snapshot_call {
    std::int64_t id;
    bool savepoint;
    std::vector<checkpoint::pending_snapshot> parts;
    std::size_t at;  ///< Entries of `log` before the call.
  };
  void snapshot_taken(std::int64_t id, bool savepoint,
                      std::vector<checkpoint::pending_snapshot> parts,
                      std::chrono::nanoseconds,
                      std::chrono::nanoseconds) override {
    snapshots.push_back({id, savepoint, std::move(parts), log.size()});
  }
  std::vector<std::string> take() {
    auto out = std::move(log);
    log.clear();
    return out;
  }

  std::vector<std::string> log;
  std::vector<batch_ptr> batches;
  std::vector<snapshot_call> snapshots;
};

batch_ptr ints(int from, int n) {
  auto b = std::make_shared<batch<int>>();
  for (int i = 0; i < n; ++i) b->records.push_back(from + i);
  return b;
}

/// source (parallelism `inputs`) -> map (own chain, parallelism 1) ->
/// rebalance -> collect; the task under test is the map.
struct map_task_fixture {
  explicit map_task_fixture(std::uint32_t inputs, std::uint32_t credits = 4) {
    job_options options;
    options.batch_size = 4;
    options.channel_credits = credits;
    options.metrics_address.clear();
    env = std::make_unique<environment>(options);
    env->from_generator([](std::uint64_t i) { return static_cast<int>(i); })
        .parallelism(inputs)
        .map([](const int& x) { return x * 10; })
        .parallelism(1)
        .start_new_chain()
        .rebalance()
        .collect();
    auto p = execution_plan::build(env->graph(), options);
    EXPECT_TRUE(p.ok()) << p.error().to_string();
    plan = std::make_unique<execution_plan>(std::move(*p));
    auto t = task::create(env->graph(), *plan, plan->chain_of(1), 0, registry,
                          options, io);
    EXPECT_TRUE(t.ok()) << t.error().to_string();
    under_test = std::move(*t);
    EXPECT_TRUE(under_test->open().ok());
    under_test->start(std::chrono::steady_clock::now());
  }

  std::unique_ptr<environment> env;
  std::unique_ptr<execution_plan> plan;
  metrics_registry registry;
  fake_transport io;
  std::unique_ptr<task> under_test;
};

TEST(task, grants_the_credit_window_on_every_input_at_start) {
  map_task_fixture f{2, 3};
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"C0:3", "C1:3"}));
}

TEST(task, flushes_a_partial_batch_before_forwarding_a_watermark) {
  map_task_fixture f{1};
  f.under_test->on_credit(0, 4);
  f.io.take();
  f.under_test->on_batch(0, ints(0, 3));
  // Three records do not fill a batch of four: nothing leaves yet, but the
  // processed batch's credit goes back.
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"C0:1"}));
  f.under_test->on_event(0, {event_kind::watermark, 42});
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"B0:3", "W0:42"}));
  f.under_test->on_batch(0, ints(3, 2));
  f.under_test->on_event(0, {event_kind::end_of_input, 0});
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"C0:1", "B0:2", "E0"}));
  EXPECT_TRUE(f.under_test->finished());
  auto& first = static_cast<batch<int>&>(*f.io.batches[0]).records;
  EXPECT_EQ(first, (std::vector<int>{0, 10, 20}));
}

TEST(task, forwards_the_minimum_watermark_over_its_inputs) {
  map_task_fixture f{2};
  f.under_test->on_credit(0, 4);
  f.io.take();
  f.under_test->on_event(0, {event_kind::watermark, 5});
  EXPECT_TRUE(f.io.take().empty());
  f.under_test->on_event(1, {event_kind::watermark, 7});
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"W0:5"}));
  f.under_test->on_event(0, {event_kind::watermark, 9});
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"W0:7"}));
  // A finished input no longer holds the watermark back.
  f.under_test->on_event(1, {event_kind::end_of_input, 0});
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"W0:9"}));
  f.under_test->on_event(0, {event_kind::end_of_input, 0});
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"E0"}));
}

TEST(task, an_idle_input_holds_no_watermark_back_until_it_sends_again) {
  map_task_fixture f{2};
  f.under_test->on_credit(0, 4);
  f.io.take();
  f.under_test->on_event(0, {event_kind::watermark, 5});
  EXPECT_TRUE(f.io.take().empty());
  // Input 1 never sent a watermark; once idle, input 0 alone decides.
  f.under_test->on_event(1, {event_kind::idle, 0});
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"W0:5"}));
  f.under_test->on_event(0, {event_kind::watermark, 8});
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"W0:8"}));
  // Both idle: the task says so downstream, once.
  f.under_test->on_event(0, {event_kind::idle, 0});
  f.under_test->on_event(0, {event_kind::idle, 0});
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"I0"}));
  // A batch reactivates input 1; its watermark 6 is behind the task's 8,
  // which never goes back, and now holds the next advance back.
  f.under_test->on_batch(1, ints(0, 4));
  f.under_test->on_event(1, {event_kind::watermark, 6});
  f.under_test->on_event(0, {event_kind::watermark, 20});
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"B0:4", "C1:1"}));
  f.under_test->on_event(1, {event_kind::watermark, 12});
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"W0:12"}));
  // Idle again after the data: said again.
  f.under_test->on_event(0, {event_kind::idle, 0});
  f.under_test->on_event(1, {event_kind::idle, 0});
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"I0"}));
}

TEST(task, holds_an_input_after_its_barrier_until_all_inputs_delivered_it) {
  map_task_fixture f{2};
  f.under_test->on_credit(0, 4);
  f.io.take();
  f.under_test->on_event(0, {event_kind::barrier, 1});
  f.under_test->on_batch(0, ints(100, 4));  // after the barrier: held
  EXPECT_TRUE(f.io.take().empty());
  f.under_test->on_batch(1, ints(0, 4));  // before the barrier: flows
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"B0:4", "C1:1"}));
  f.under_test->on_event(1, {event_kind::barrier, 1});
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"X0:1", "B0:4", "C0:1"}));
  auto& held = static_cast<batch<int>&>(*f.io.batches[1]).records;
  EXPECT_EQ(held.front(), 1000);
}

TEST(task, stops_processing_input_while_an_output_has_no_credit) {
  map_task_fixture f{1, 4};
  f.io.take();
  // No output credit yet: the first batch is processed and waits, and the
  // task is blocked, so later input stays queued and keeps its credit.
  f.under_test->on_batch(0, ints(0, 4));
  EXPECT_TRUE(f.under_test->blocked());
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"C0:1"}));
  f.under_test->on_batch(0, ints(4, 4));
  f.under_test->on_batch(0, ints(8, 4));
  f.under_test->on_event(0, {event_kind::watermark, 3});
  EXPECT_TRUE(f.io.take().empty());
  EXPECT_EQ(f.under_test->queued(0), 2U);
  // One credit: the pending batch leaves, input resumes, the next output
  // batch waits for credit again.
  f.under_test->on_credit(0, 1);
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"B0:4", "C0:1"}));
  EXPECT_TRUE(f.under_test->blocked());
  f.under_test->on_credit(0, 4);
  EXPECT_EQ(f.io.take(),
            (std::vector<std::string>{"B0:4", "B0:4", "C0:1", "W0:3"}));
  EXPECT_FALSE(f.under_test->blocked());
  EXPECT_EQ(f.under_test->max_in_flight(0), 4U);
}

TEST(task, queues_control_events_behind_batches_waiting_for_credit) {
  map_task_fixture f{1, 4};
  f.io.take();
  f.under_test->on_batch(0, ints(0, 4));
  f.under_test->on_event(0, {event_kind::end_of_input, 0});
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"C0:1"}));
  EXPECT_FALSE(f.under_test->finished());
  f.under_test->on_credit(0, 1);
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"B0:4", "E0"}));
  EXPECT_TRUE(f.under_test->finished());
}

TEST(task, counts_backpressured_time_only_while_blocked) {
  map_task_fixture f{1, 4};
  using namespace std::chrono;
  auto t0 = steady_clock::now();
  f.under_test->begin_work(t0);
  f.under_test->on_batch(0, ints(0, 4));  // blocks: no output credit
  f.under_test->end_work(t0 + milliseconds(1));
  f.under_test->begin_work(t0 + milliseconds(11));  // 10 ms blocked
  f.under_test->on_credit(0, 4);
  f.under_test->end_work(t0 + milliseconds(12));
  f.under_test->begin_work(t0 + milliseconds(32));  // 20 ms idle
  f.under_test->end_work(t0 + milliseconds(32));
  auto value = [&](const std::string& name) {
    for (const auto& fam : f.registry.snapshot()) {
      if (fam.name == name) return fam.samples.at(0).value;
    }
    return -1.0;
  };
  EXPECT_NEAR(value("stream_backpressured_seconds_total"), 0.010, 1e-9);
  EXPECT_NEAR(value("stream_busy_seconds_total"), 0.002, 1e-9);
  EXPECT_GE(value("stream_idle_seconds_total"), 0.020 - 1e-9);
}

void overrun_credit_window() {
  map_task_fixture f{1, 2};
  for (int i = 0; i < 4; ++i) f.under_test->on_batch(0, ints(0, 4));
}

TEST(task_death, aborts_when_a_sender_exceeds_its_credit_window) {
  EXPECT_DEATH(overrun_credit_window(),
               "more batches queued than credits granted");
}

/// source (parallelism 2) -> key_by(parity) -> reduce (sum, own chain,
/// parallelism 1) -> rebalance -> collect; the task under test is the
/// reduce, whose keyed state goes into snapshots.
struct keyed_task_fixture {
  keyed_task_fixture() {
    job_options options;
    options.batch_size = 4;
    options.channel_credits = 4;
    options.metrics_address.clear();
    env = std::make_unique<environment>(options);
    env->from_generator([](std::uint64_t i) { return static_cast<int>(i); })
        .parallelism(2)
        .key_by([](const int& x) { return x % 2; })
        .reduce([](const int& a, const int& b) { return a + b; })
        .parallelism(1)
        .rebalance()
        .collect();
    auto p = execution_plan::build(env->graph(), options);
    EXPECT_TRUE(p.ok()) << p.error().to_string();
    plan = std::make_unique<execution_plan>(std::move(*p));
    auto t = task::create(env->graph(), *plan, plan->chain_of(reduce_id), 0,
                          registry, options, io);
    EXPECT_TRUE(t.ok()) << t.error().to_string();
    under_test = std::move(*t);
    EXPECT_TRUE(under_test->open().ok());
    under_test->start(std::chrono::steady_clock::now());
    under_test->on_credit(0, 4);
    io.take();
  }

  /// The sum per key in the snapshot of call `n`.
  std::map<int, int> sums(std::size_t n) {
    std::map<int, int> out;
    auto& parts = io.snapshots.at(n).parts;
    EXPECT_EQ(parts.size(), 1U);
    if (parts.size() != 1) return out;
    auto& part = parts[0];
    EXPECT_EQ(part.operator_id, reduce_id);
    if (part.deferred) part.deferred(*part.data);
    checkpoint::restored_state in;
    in.parts.push_back(part.data->finish(part.operator_id, 0));
    auto st = in.for_each([&](const std::string& name, key_group,
                              std::string_view key, std::string_view value) {
      if (name.starts_with("__")) return;
      int k = 0;
      int v = 0;
      state::void_namespace ns;
      EXPECT_TRUE(state::decode_entry_key(key, 0, k, ns).ok());
      EXPECT_TRUE(checkpoint::decode_all(value, v).ok());
      out[k] = v;
    });
    EXPECT_TRUE(st.ok()) << st.to_string();
    return out;
  }

  static constexpr std::uint32_t reduce_id = 1;
  std::unique_ptr<environment> env;
  std::unique_ptr<execution_plan> plan;
  metrics_registry registry;
  fake_transport io;
  std::unique_ptr<task> under_test;
};

TEST(task, a_keyed_operator_flags_records_of_key_groups_it_does_not_own) {
  // Subtask 0 of a reduce at parallelism 2 over 8 key groups owns 0-3; the
  // batch below is pushed to it directly, as a router with another table
  // would, so the records of key groups 4-7 are not its own.
  job_options options;
  options.batch_size = 4;
  options.channel_credits = 4;
  options.max_parallelism = 8;
  options.metrics_address.clear();
  environment env{options};
  env.from_generator([](std::uint64_t i) { return static_cast<int>(i); })
      .parallelism(2)
      .key_by([](const int& x) { return x; })
      .reduce([](const int& a, const int& b) { return a + b; })
      .parallelism(2)
      .rebalance()
      .collect();
  auto plan = execution_plan::build(env.graph(), options);
  ASSERT_TRUE(plan.ok()) << plan.error().to_string();
  metrics_registry registry;
  fake_transport io;
  auto t = task::create(env.graph(), *plan, plan->chain_of(1), 0, registry,
                        options, io);
  ASSERT_TRUE(t.ok()) << t.error().to_string();
  ASSERT_TRUE((*t)->open().ok());
  (*t)->start(std::chrono::steady_clock::now());
  (*t)->on_credit(0, 4);
  std::uint64_t foreign = 0;
  for (int k = 0; k < 40; ++k) {
    if (assign_key_group(hash_key(k), 8) >= 4) ++foreign;
  }
  ASSERT_GT(foreign, 0u);
  ASSERT_LT(foreign, 40u);
#ifdef NDEBUG
  // Release builds count them.
  (*t)->on_batch(0, ints(0, 40));
  auto& counted = registry.get_counter(
      "stream_foreign_key_group_records_total", "",
      {{"job", "job"}, {"operator", "reduce"}, {"subtask", "0"}});
  EXPECT_EQ(counted.raw(), foreign);
#else
  // Debug builds fail the task, naming the key group and the owner.
  EXPECT_THROW((*t)->on_batch(0, ints(0, 40)), std::logic_error);
#endif
}

TEST(task, snapshots_once_when_the_barrier_aligned_then_releases_input) {
  keyed_task_fixture f;
  ASSERT_TRUE(f.under_test->has_state());
  f.under_test->on_batch(0, ints(0, 4));
  f.under_test->on_event(0, {event_kind::barrier, 7});
  f.under_test->on_batch(0, ints(100, 4));  // after the barrier: held
  f.under_test->on_batch(1, ints(10, 4));   // before it: flows
  EXPECT_EQ(f.io.take(),
            (std::vector<std::string>{"B0:4", "C0:1", "B0:4", "C1:1"}));
  EXPECT_EQ(f.under_test->queued(0), 1U);
  EXPECT_TRUE(f.io.snapshots.empty());

  f.under_test->on_event(1, {event_kind::barrier, 7});
  ASSERT_EQ(f.io.snapshots.size(), 1U);
  EXPECT_EQ(f.io.snapshots[0].id, 7);
  EXPECT_FALSE(f.io.snapshots[0].savepoint);
  // The barrier is on its way downstream when the snapshot is handed over;
  // the held batch is processed only after both.
  EXPECT_EQ(f.io.log, (std::vector<std::string>{"X0:7", "B0:4", "C0:1"}));
  EXPECT_EQ(f.io.snapshots[0].at, 1U);
  // The state holds every record before the barrier and none after it.
  EXPECT_EQ(f.sums(0),
            (std::map<int, int>{{0, 0 + 2 + 10 + 12}, {1, 1 + 3 + 11 + 13}}));
  auto& after = static_cast<batch<int>&>(*f.io.batches.back()).records;
  EXPECT_EQ(after,
            (std::vector<int>{24 + 100, 28 + 101, 124 + 102, 129 + 103}));
  // A trigger for a snapshot already taken is ignored.
  f.under_test->trigger_snapshot(7, false);
  EXPECT_EQ(f.io.snapshots.size(), 1U);
}

TEST(task, a_savepoint_barrier_takes_a_savepoint_and_forwards_it) {
  keyed_task_fixture f;
  f.under_test->on_batch(1, ints(1, 2));
  f.under_test->on_event(0, {event_kind::savepoint, 8});
  f.under_test->on_event(1, {event_kind::savepoint, 8});
  ASSERT_EQ(f.io.snapshots.size(), 1U);
  EXPECT_EQ(f.io.snapshots[0].id, 8);
  EXPECT_TRUE(f.io.snapshots[0].savepoint);
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"C1:1", "B0:2", "S0:8"}));
  EXPECT_EQ(f.sums(0), (std::map<int, int>{{0, 2}, {1, 1}}));
}

TEST(task, a_trigger_on_a_running_task_waits_for_the_barriers) {
  keyed_task_fixture f;
  f.under_test->on_batch(0, ints(0, 4));
  f.io.take();
  f.under_test->trigger_snapshot(3, false);
  EXPECT_TRUE(f.io.snapshots.empty());
  EXPECT_TRUE(f.io.take().empty());
  // The barriers still bring it.
  f.under_test->on_event(0, {event_kind::barrier, 3});
  f.under_test->on_event(1, {event_kind::barrier, 3});
  ASSERT_EQ(f.io.snapshots.size(), 1U);
  EXPECT_EQ(f.io.snapshots[0].id, 3);
}

TEST(task, a_trigger_on_a_finished_task_snapshots_without_a_barrier) {
  keyed_task_fixture f;
  f.under_test->on_batch(0, ints(0, 4));
  f.under_test->on_event(0, {event_kind::end_of_input, 0});
  f.under_test->on_event(1, {event_kind::end_of_input, 0});
  ASSERT_TRUE(f.under_test->finished());
  f.io.take();
  f.under_test->trigger_snapshot(9, false);
  ASSERT_EQ(f.io.snapshots.size(), 1U);
  EXPECT_EQ(f.io.snapshots[0].id, 9);
  EXPECT_FALSE(f.io.snapshots[0].savepoint);
  EXPECT_TRUE(f.io.take().empty());  // no barrier after end of input
  EXPECT_EQ(f.sums(0), (std::map<int, int>{{0, 2}, {1, 4}}));
  // Repeated or older requests are ignored; a newer one is taken.
  f.under_test->trigger_snapshot(9, false);
  f.under_test->trigger_snapshot(8, true);
  EXPECT_EQ(f.io.snapshots.size(), 1U);
  f.under_test->trigger_snapshot(10, true);
  ASSERT_EQ(f.io.snapshots.size(), 2U);
  EXPECT_TRUE(f.io.snapshots[1].savepoint);
  EXPECT_TRUE(f.io.take().empty());
}

TEST(task, a_stateless_task_reports_its_snapshot_with_no_parts) {
  map_task_fixture f{2};
  f.under_test->on_credit(0, 4);
  f.io.take();
  EXPECT_FALSE(f.under_test->has_state());
  f.under_test->on_event(0, {event_kind::barrier, 2});
  f.under_test->on_event(1, {event_kind::barrier, 2});
  ASSERT_EQ(f.io.snapshots.size(), 1U);
  EXPECT_TRUE(f.io.snapshots[0].parts.empty());
  EXPECT_EQ(f.io.take(), (std::vector<std::string>{"X0:2"}));
}

}  // namespace
}  // namespace stream::runtime
