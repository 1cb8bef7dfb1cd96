// The versioned plan: tables per keyed operator, shared along forward
// edges, replaced by version, shipped as numbers, and adopted from a
// checkpoint on restore (kept at the same parallelism, planned otherwise).

#include "stream/rescale.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "stream/environment.hpp"
#include "stream/key_group_planner.hpp"

namespace stream {
namespace {

/// generator (p 2) -> key_by -> reduce (p `keyed`) -> map (new chain,
/// forward) -> rebalance -> discard (p 2).
struct keyed_job {
  explicit keyed_job(std::uint32_t keyed) {
    job_options o;
    o.parallelism = 2;
    o.operator_parallelism = {{"reduce", keyed}, {"map", keyed}};
    env = std::make_unique<environment>(o);
    env->from_generator([](std::uint64_t i) { return static_cast<int>(i); })
        .key_by([](const int& x) { return x % 7; })
        .reduce([](const int& a, const int& b) { return a + b; })
        .map([](const int& x) { return x; })
        .start_new_chain()
        .rebalance()
        .discard();
    auto p = execution_plan::build(env->graph(), o);
    EXPECT_TRUE(p.ok()) << p.error().to_string();
    plan = std::make_unique<execution_plan>(std::move(*p));
  }
  const execution_plan::chain& reduce() const {
    return plan->chains()[plan->chain_of(1)];
  }
  const execution_plan::chain& map() const {
    return plan->chains()[plan->chain_of(2)];
  }
  std::unique_ptr<environment> env;
  std::unique_ptr<execution_plan> plan;
};

/// Metadata of a checkpoint whose reduce (operator 1) ran with `table`.
checkpoint::metadata checkpoint_of(const key_group_table& table,
                                   std::uint64_t plan_version) {
  checkpoint::metadata meta;
  meta.max_parallelism = table.max_parallelism();
  meta.plan_version = plan_version;
  checkpoint::metadata::operator_entry op;
  op.id = 1;
  op.name = "reduce";
  op.parallelism = table.parallelism();
  op.table_version = table.version();
  for (std::uint32_t s = 0; s < table.parallelism(); ++s) {
    checkpoint::state_handle h;
    h.operator_id = 1;
    h.subtask = s;
    h.key_groups = table.owned_set(s);
    op.subtasks.push_back(h);
  }
  meta.operators.push_back(op);
  return meta;
}

TEST(plan, a_keyed_operator_has_one_table_shared_along_forward_edges) {
  keyed_job job{3};
  const auto& reduce = job.reduce();
  const auto& map = job.map();
  ASSERT_NE(reduce.id, map.id);
  EXPECT_EQ(reduce.table_root, reduce.id);
  EXPECT_EQ(map.table_root, reduce.id);
  EXPECT_EQ(map.key_groups, reduce.key_groups);
  EXPECT_EQ(job.plan->edge(0).table, reduce.key_groups);
  EXPECT_EQ(reduce.parallelism, 3u);
  EXPECT_EQ(job.plan->version(), 1u);
}

TEST(plan, with_tables_replaces_a_root_and_whatever_shares_it) {
  keyed_job job{3};
  auto planned = plan_balanced_table(*job.reduce().key_groups, 3, 7);
  ASSERT_TRUE(planned.ok());
  auto contiguous4 = key_group_table::contiguous(128, 4, 2).value();
  std::vector<std::shared_ptr<const key_group_table>> tables(
      job.plan->chains().size());
  tables[job.reduce().id] =
      std::make_shared<const key_group_table>(contiguous4);
  auto refused = job.plan->with_tables(tables, 2);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find("the chain runs 3 subtasks"),
            std::string::npos)
      << refused.error().message();

  auto other = key_group_table::from_owners(
                   [] {
                     std::vector<std::uint32_t> owners(128);
                     for (std::uint32_t kg = 0; kg < 128; ++kg)
                       owners[kg] = kg % 3;
                     return owners;
                   }(),
                   3, 5)
                   .value();
  tables[job.reduce().id] = std::make_shared<const key_group_table>(other);
  auto next = job.plan->with_tables(tables, 2);
  ASSERT_TRUE(next.ok()) << next.error().to_string();
  EXPECT_EQ(next->version(), 2u);
  const auto& reduce = next->chains()[job.reduce().id];
  const auto& map = next->chains()[job.map().id];
  EXPECT_EQ(*reduce.key_groups, other);
  EXPECT_EQ(map.key_groups, reduce.key_groups);
  EXPECT_EQ(next->edge(0).table, reduce.key_groups);
  // Everything else is the same plan.
  EXPECT_EQ(next->chains().size(), job.plan->chains().size());
  EXPECT_EQ(next->input_channel(0, 1), job.plan->input_channel(0, 1));
  // The original is untouched.
  EXPECT_EQ(job.plan->version(), 1u);
  EXPECT_EQ(job.reduce().key_groups->version(), 1u);
}

TEST(plan, encoded_tables_rebuild_the_same_plan_and_damage_is_refused) {
  keyed_job job{3};
  auto restored = plan_for_restore(
      *job.plan,
      checkpoint_of(key_group_table::contiguous(128, 2, 4).value(), 6),
      rescale_plan::minimal);
  ASSERT_TRUE(restored.ok()) << restored.error().to_string();
  const auto encoded = restored->plan.encode_tables();
  auto shipped = job.plan->with_encoded_tables(encoded);
  ASSERT_TRUE(shipped.ok()) << shipped.error().to_string();
  EXPECT_EQ(shipped->version(), restored->plan.version());
  for (std::size_t c = 0; c < restored->plan.chains().size(); ++c) {
    EXPECT_EQ(*shipped->chains()[c].key_groups,
              *restored->plan.chains()[c].key_groups);
  }
  auto cut = encoded;
  cut.pop_back();
  EXPECT_FALSE(job.plan->with_encoded_tables(cut).ok());
  auto longer = encoded;
  longer.push_back(0);
  EXPECT_FALSE(job.plan->with_encoded_tables(longer).ok());
  // Another parallelism than the worker's own plan: refused by name.
  keyed_job four{4};
  auto mismatch = four.plan->with_encoded_tables(encoded);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.error().message().find("the chain runs 4 subtasks"),
            std::string::npos)
      << mismatch.error().message();
}

TEST(plan_for_restore, keeps_the_checkpoints_table_at_the_same_parallelism) {
  keyed_job job{3};
  auto planned =
      plan_balanced_table(key_group_table::contiguous(128, 2).value(), 3, 2)
          .value();
  auto restored = plan_for_restore(*job.plan, checkpoint_of(planned, 2),
                                   rescale_plan::ranges);
  ASSERT_TRUE(restored.ok()) << restored.error().to_string();
  EXPECT_EQ(*restored->plan.chains()[job.reduce().id].key_groups, planned);
  EXPECT_EQ(restored->plan.version(), 2u) << "no table changed";
  EXPECT_TRUE(restored->changes.empty());
  // The generator's chain had no state in the checkpoint: unchanged.
  EXPECT_EQ(*restored->plan.chains()[0].key_groups,
            *job.plan->chains()[0].key_groups);
}

TEST(plan_for_restore, plans_a_new_parallelism_by_the_policy) {
  keyed_job job{3};
  const auto two = key_group_table::contiguous(128, 2, 1).value();
  auto minimal =
      plan_for_restore(*job.plan, checkpoint_of(two, 1), rescale_plan::minimal);
  ASSERT_TRUE(minimal.ok()) << minimal.error().to_string();
  const auto& planned = *minimal->plan.chains()[job.reduce().id].key_groups;
  EXPECT_EQ(planned, plan_balanced_table(two, 3, 2).value());
  EXPECT_EQ(planned.version(), 2u);
  EXPECT_EQ(minimal->plan.version(), 2u);
  EXPECT_EQ(moved_key_groups(two, planned), 42u);
  ASSERT_EQ(minimal->changes.size(), 1u);
  const table_change& change = minimal->changes[0];
  EXPECT_EQ(change.chain, job.reduce().name);
  EXPECT_EQ(change.from, 2u);
  EXPECT_EQ(change.to, 3u);
  EXPECT_EQ(change.moved, 42u);
  EXPECT_EQ(change.key_groups, 128u);
  EXPECT_EQ(change.version, 2u);
  // Not contiguous: subtask 2 holds the tails of both old subtasks.
  EXPECT_EQ(planned.owned_set(2).runs().size(), 2u) << planned.to_string();

  auto ranges =
      plan_for_restore(*job.plan, checkpoint_of(two, 1), rescale_plan::ranges);
  ASSERT_TRUE(ranges.ok());
  EXPECT_EQ(*ranges->plan.chains()[job.reduce().id].key_groups,
            key_group_table::contiguous(128, 3, 2).value());
  EXPECT_EQ(
      moved_key_groups(two, *ranges->plan.chains()[job.reduce().id].key_groups),
      63u);
  ASSERT_EQ(ranges->changes.size(), 1u);
  EXPECT_EQ(ranges->changes[0].moved, 63u);
}

TEST(plan_for_restore, a_checkpoint_with_unowned_key_groups_cannot_rescale) {
  keyed_job job{3};
  auto meta = checkpoint_of(key_group_table::contiguous(128, 2).value(), 1);
  meta.operators[0].subtasks.pop_back();  // subtask 1 left no file
  auto restored = plan_for_restore(*job.plan, meta, rescale_plan::minimal);
  ASSERT_FALSE(restored.ok());
  EXPECT_EQ(restored.error().code(), errc::malformed_data);
  EXPECT_NE(restored.error().message().find("'reduce'"), std::string::npos)
      << restored.error().message();
}

TEST(rescale_plan, parses_its_two_names) {
  EXPECT_EQ(parse_rescale_plan("minimal").value(), rescale_plan::minimal);
  EXPECT_EQ(parse_rescale_plan("ranges").value(), rescale_plan::ranges);
  EXPECT_EQ(parse_rescale_plan("flink").error().code(), errc::invalid_config);
}

}  // namespace
}  // namespace stream
