// Planning: parallelism, partitioning, chaining and channel numbering.

#include "stream/job_graph.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <memory>

#include "stream/environment.hpp"

namespace stream {
namespace {

job_options options_with(std::uint32_t parallelism) {
  job_options o;
  o.parallelism = parallelism;
  return o;
}

execution_plan plan_of(const environment& env) {
  auto p = execution_plan::build(env.graph(), env.options(), env.chaining());
  EXPECT_TRUE(p.ok()) << p.error().to_string();
  return std::move(*p);
}

std::vector<std::string> chain_names(const execution_plan& plan) {
  std::vector<std::string> names;
  for (const auto& c : plan.chains()) names.push_back(c.name);
  return names;
}

auto gen() {
  return [](std::uint64_t i) { return static_cast<int>(i); };
}

TEST(chaining, joins_forward_operators_of_equal_parallelism) {
  environment env{options_with(2)};
  env.from_generator(gen())
      .map([](const int& x) { return x + 1; })
      .filter([](const int& x) { return x > 0; })
      .discard();
  auto plan = plan_of(env);
  EXPECT_EQ(
      chain_names(plan),
      (std::vector<std::string>{"generator -> map -> filter -> discard"}));
  EXPECT_EQ(plan.chains()[0].parallelism, 2U);
}

TEST(chaining, breaks_at_a_key_by_and_resumes_after_the_keyed_operator) {
  environment env{options_with(2)};
  env.from_generator(gen())
      .map([](const int& x) { return x; })
      .key_by([](const int& x) { return x % 7; })
      .reduce([](const int& a, const int& b) { return a + b; })
      .map([](const int& x) { return x * 2; })
      .discard();
  auto plan = plan_of(env);
  EXPECT_EQ(chain_names(plan),
            (std::vector<std::string>{"generator -> map_1",
                                      "reduce -> map_3 -> discard"}));
  EXPECT_EQ(plan.edge(1).kind, partitioning::hash);
  EXPECT_FALSE(plan.edge(1).chained);
  ASSERT_NE(plan.edge(1).table, nullptr);
  EXPECT_EQ(plan.edge(1).table->parallelism(), 2U);
}

TEST(chaining, breaks_where_parallelism_changes) {
  environment env{options_with(4)};
  env.from_generator(gen())
      .map([](const int& x) { return x; })
      .parallelism(2)
      .filter([](const int&) { return true; })
      .parallelism(2)
      .discard();
  auto plan = plan_of(env);
  EXPECT_EQ(chain_names(plan), (std::vector<std::string>{
                                   "generator", "map -> filter", "discard"}));
  EXPECT_EQ(plan.edge(0).kind, partitioning::rebalance);
  EXPECT_EQ(plan.edge(2).kind, partitioning::rebalance);
}

TEST(chaining, respects_start_new_chain_rebalance_and_disable) {
  environment env{options_with(1)};
  auto s = env.from_generator(gen());
  s.map([](const int& x) { return x; })
      .start_new_chain()
      .rebalance()
      .filter([](const int&) { return true; })
      .discard();
  EXPECT_EQ(
      chain_names(plan_of(env)),
      (std::vector<std::string>{"generator", "map", "filter -> discard"}));
  env.disable_chaining();
  EXPECT_EQ(plan_of(env).chains().size(), 4U);
}

TEST(chaining, does_not_chain_a_stream_consumed_twice_or_a_union) {
  environment env{options_with(1)};
  auto a = env.from_generator(gen());
  auto b = env.from_collection(std::vector<int>{1, 2});
  auto m = a.map([](const int& x) { return x; });
  m.discard();
  m.union_with(b).discard();
  auto plan = plan_of(env);
  EXPECT_EQ(chain_names(plan),
            (std::vector<std::string>{"generator -> map", "collection",
                                      "discard_3", "union -> discard_5"}));
}

TEST(execution_plan, numbers_channels_the_same_at_both_ends) {
  environment env{options_with(1)};
  env.from_generator(gen())
      .parallelism(2)
      .rebalance()
      .map([](const int& x) { return x; })
      .parallelism(3)
      .discard();
  auto plan = plan_of(env);
  ASSERT_EQ(plan.chains().size(), 3U);
  EXPECT_EQ(plan.outputs(0, 1).size(), 3U);
  EXPECT_EQ(plan.inputs(1, 2).size(), 2U);
  for (std::uint32_t from = 0; from < 2; ++from) {
    for (std::uint32_t to = 0; to < 3; ++to) {
      auto out = plan.outputs(0, from).at(plan.output_channel(0, to));
      auto in = plan.inputs(1, to).at(plan.input_channel(0, from));
      EXPECT_EQ(out.peer_subtask, to);
      EXPECT_EQ(in.peer_subtask, from);
    }
  }
}

TEST(execution_plan, wire_ids_of_an_input_stay_when_another_changes) {
  // Two generators rebalanced into one union at parallelism 2; the first
  // generator goes from 2 to 3 subtasks. The union's channel numbers for
  // the second generator shift by one, but the ids its subtasks send do
  // not, and the index finds each of them.
  auto build = [](std::uint32_t first) {
    job_options o;
    o.parallelism = 2;
    o.operator_parallelism = {{"generator", first}};
    auto env = std::make_unique<environment>(o);
    auto a = env->from_generator(gen()).name("generator");
    auto b = env->from_generator(gen()).name("other");
    a.rebalance().union_with(b.rebalance()).discard();
    execution_plan plan = plan_of(*env);
    return std::pair{std::move(env), std::move(plan)};
  };
  auto [env2, two] = build(2);
  auto [env3, three] = build(3);
  const std::uint32_t u2 = two.chain_of(2);
  const std::uint32_t u3 = three.chain_of(2);
  auto ins2 = two.inputs(u2, 0);
  auto ins3 = three.inputs(u3, 0);
  ASSERT_EQ(ins2.size(), 4u);
  ASSERT_EQ(ins3.size(), 5u);
  const execution_plan::channel_index index2{ins2};
  const execution_plan::channel_index index3{ins3};
  for (std::uint32_t s = 0; s < 2; ++s) {
    // Subtask s of "other" (edge 1) names itself the same in both plans.
    const auto id = execution_plan::channel_id(1, s);
    EXPECT_EQ(index2.find(id), 2 + s);
    EXPECT_EQ(index3.find(id), 3 + s);
    EXPECT_EQ(ins3[3 + s].edge, 1u);
    EXPECT_EQ(ins3[3 + s].peer_subtask, s);
  }
  for (std::uint32_t i = 0; i < ins3.size(); ++i) {
    EXPECT_EQ(index3.find(execution_plan::channel_id(ins3[i].edge,
                                                     ins3[i].peer_subtask)),
              i);
  }
  // An id of no input: -1, for the actor to fail loudly.
  EXPECT_EQ(index3.find(execution_plan::channel_id(0, 7)), -1);
  EXPECT_EQ(index3.find(execution_plan::channel_id(9, 0)), -1);
}

TEST(execution_plan, rejects_invalid_jobs_with_a_message_naming_the_problem) {
  {
    environment env;
    env.from_generator(gen()).map([](const int& x) { return x; });
    auto p = execution_plan::build(env.graph(), env.options());
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message().find("no sink"), std::string::npos);
  }
  {
    job_options o;
    o.max_parallelism = 4;
    environment env{o};
    env.from_generator(gen())
        .key_by([](const int& x) { return x; })
        .reduce([](const int& a, const int&) { return a; })
        .parallelism(8)
        .discard();
    auto p = execution_plan::build(env.graph(), o);
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message().find("reduce"), std::string::npos);
  }
  {
    environment env;
    auto s = env.from_generator(gen());
    s.map([](const int& x) { return x; }).name("same").discard();
    s.map([](const int& x) { return x; }).name("same").discard();
    auto p = execution_plan::build(env.graph(), env.options());
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message().find("'same'"), std::string::npos);
  }
  {
    environment env;
    env.read_text_file("/dev/null").parallelism(3).discard();
    auto p = execution_plan::build(env.graph(), env.options());
    ASSERT_FALSE(p.ok());
    EXPECT_NE(p.error().message().find("text_file"), std::string::npos);
  }
}

TEST(execution_plan, caps_default_parallelism_of_single_instance_sources) {
  environment env{options_with(4)};
  env.read_text_file("/dev/null").discard();
  auto plan = plan_of(env);
  EXPECT_EQ(plan.chains()[0].name, "text_file");
  EXPECT_EQ(plan.chains()[0].parallelism, 1U);
  EXPECT_EQ(plan.chains()[1].parallelism, 4U);
}

TEST(job_definition, names_each_option_in_which_two_processes_differ) {
  auto build = [](job_options o, const std::string& sensors) {
    auto env = std::make_unique<environment>(o);
    env->from_generator(gen())
        .map([](const int& x) { return x + 1; })
        .discard();
    env->set_arg("sensors", sensors);
    env->set_arg("note", "two\nlines\\");
    return env;
  };
  job_options a;
  a.job_name = "eo";
  auto mine = build(a, "20");
  EXPECT_TRUE(
      definition_differences(mine->definition(), mine->definition()).empty());
  EXPECT_TRUE(
      definition_differences(mine->definition(), build(a, "20")->definition())
          .empty())
      << "the same options give the same definition";
  auto b = a;
  b.max_parallelism = 64;
  b.checkpoint_dir = "/elsewhere";
  auto theirs = build(b, "30");
  auto d = definition_differences(mine->definition(), theirs->definition());
  ASSERT_EQ(d.size(), 3U);
  EXPECT_EQ(d[0].option, "--checkpoint-dir");
  EXPECT_EQ(d[0].mine, "/tmp/stream-checkpoints");
  EXPECT_EQ(d[0].theirs, "/elsewhere");
  EXPECT_EQ(d[1].option, "--max-parallelism");
  EXPECT_EQ(d[1].mine, "128");
  EXPECT_EQ(d[1].theirs, "64");
  EXPECT_EQ(d[2].option, "--sensors");
  // Every option that defines the job counts.
  for (auto change : std::vector<std::function<void(job_options&)>>{
           [](job_options& o) { o.parallelism = 3; },
           [](job_options& o) { o.job_name = "other"; },
           [](job_options& o) { o.savepoint_dir = "/sp"; },
           [](job_options& o) { o.channel_credits = 4; }}) {
    auto c = a;
    change(c);
    EXPECT_EQ(
        definition_differences(mine->definition(), build(c, "20")->definition())
            .size(),
        1U);
  }
  // Another topology is named as such.
  environment other{a};
  other.from_generator(gen()).discard();
  auto t = definition_differences(mine->definition(), other.definition());
  EXPECT_TRUE(std::any_of(t.begin(), t.end(), [](const auto& x) {
    return x.option == "topology";
  }));
  // A long value is shortened.
  auto huge = build(a, std::string(5000, '9'));
  auto h = definition_differences(mine->definition(), huge->definition());
  ASSERT_EQ(h.size(), 1U);
  EXPECT_LT(h[0].theirs.size(), 70U);
}

}  // namespace
}  // namespace stream
