#include "stream/job_graph.hpp"

#include <cassert>
#include <cstdio>
#include <map>

#include "stream/key_groups.hpp"

namespace stream {

std::string_view to_string(partitioning p) noexcept {
  switch (p) {
    case partitioning::automatic:
      return "automatic";
    case partitioning::forward:
      return "forward";
    case partitioning::rebalance:
      return "rebalance";
    case partitioning::hash:
      return "hash";
  }
  return "unknown";
}

std::uint32_t job_graph::add_node(node n) {
  n.id = static_cast<std::uint32_t>(nodes_.size());
  n.in_edges.clear();
  n.out_edges.clear();
  nodes_.push_back(std::move(n));
  return nodes_.back().id;
}

std::size_t job_graph::main_outputs(std::uint32_t id) const {
  std::size_t n = 0;
  for (auto e : nodes_.at(id).out_edges) n += edges_[e].side_tag.empty();
  return n;
}

std::uint32_t job_graph::add_edge(std::uint32_t from, std::uint32_t to,
                                  partitioning kind, router_factory hash_router,
                                  std::string side_tag) {
  assert(from < nodes_.size() && to < nodes_.size() && from < to);
  assert((kind == partitioning::hash) == static_cast<bool>(hash_router));
  auto id = static_cast<std::uint32_t>(edges_.size());
  edges_.push_back(
      edge{id, from, to, kind, std::move(hash_router), std::move(side_tag)});
  nodes_[from].out_edges.push_back(id);
  nodes_[to].in_edges.push_back(id);
  return id;
}

namespace {

status plan_error(const std::string& what) {
  return status{errc::invalid_config, what};
}

// Default names are the operator kind; a repeated default name gets the node
// id appended so that metric label sets stay unique. A name the user chose
// twice is an error instead: silently renaming it would break dashboards.
result<std::vector<std::string>> unique_names(const job_graph& graph) {
  std::map<std::string, int> uses;
  for (const auto& n : graph.nodes()) ++uses[n.name];
  std::vector<std::string> names;
  for (const auto& n : graph.nodes()) {
    if (n.name.empty()) return plan_error("an operator has an empty name");
    bool rename = uses[n.name] > 1 && !n.user_named;
    names.push_back(rename ? n.name + "_" + std::to_string(n.id) : n.name);
  }
  std::map<std::string, int> after;
  for (const auto& name : names) {
    if (++after[name] > 1)
      return plan_error("operator name '" + name + "' is used twice");
  }
  return names;
}

result<std::vector<std::uint32_t>> resolve_parallelism(
    const job_graph& graph, const job_options& options,
    const std::vector<std::string>& names) {
  std::vector<std::uint32_t> result;
  for (const auto& n : graph.nodes()) {
    auto p = n.parallelism != 0 ? n.parallelism : options.parallelism;
    if (n.parallelism == 0 && n.max_parallelism != 0)
      p = std::min(p, n.max_parallelism);
    if (p == 0)
      return plan_error("operator '" + names[n.id] + "' has parallelism 0");
    if (n.max_parallelism != 0 && p > n.max_parallelism)
      return plan_error("operator '" + names[n.id] + "' supports at most " +
                        std::to_string(n.max_parallelism) +
                        " parallel instances, asked for " + std::to_string(p));
    if (n.keyed && p > options.max_parallelism)
      return plan_error("keyed operator '" + names[n.id] +
                        "' has parallelism " + std::to_string(p) +
                        " above max parallelism " +
                        std::to_string(options.max_parallelism));
    result.push_back(p);
  }
  return result;
}

}  // namespace

result<execution_plan> execution_plan::build(const job_graph& graph,
                                             const job_options& options,
                                             bool chaining) {
  if (auto st = options.validate(); !st.ok()) return st;
  bool has_source = false;
  bool has_sink = false;
  for (const auto& n : graph.nodes()) {
    has_source |= n.kind == job_graph::node_kind::source;
    has_sink |= n.kind == job_graph::node_kind::sink;
  }
  if (!has_source) return plan_error("the job has no source");
  if (!has_sink) return plan_error("the job has no sink");
  auto names = unique_names(graph);
  if (!names) return names.error();
  auto par = resolve_parallelism(graph, options, *names);
  if (!par) return par.error();

  execution_plan plan;
  plan.names_ = std::move(*names);
  plan.edges_.resize(graph.edges().size());
  for (const auto& e : graph.edges()) {
    auto& r = plan.edges_[e.id];
    r.kind = e.kind;
    auto same = (*par)[e.from] == (*par)[e.to];
    if (r.kind == partitioning::automatic)
      r.kind = same ? partitioning::forward : partitioning::rebalance;
    if (r.kind == partitioning::forward && !same)
      return plan_error("forward edge from '" + plan.names_[e.from] + "' to '" +
                        plan.names_[e.to] + "' joins different parallelisms");
    const auto& from = graph.at(e.from);
    const auto& to = graph.at(e.to);
    r.chained = chaining && r.kind == partitioning::forward &&
                e.side_tag.empty() && graph.main_outputs(from.id) == 1 &&
                to.in_edges.size() == 1 && !to.new_chain;
    if (r.kind == partitioning::hash) {
      auto table =
          key_group_table::contiguous(options.max_parallelism, (*par)[e.to]);
      if (!table) return table.error();
      r.table = std::make_shared<const key_group_table>(std::move(*table));
    }
  }
  // Node ids are a topological order (edges always point to a later node),
  // so a node's chained predecessor already has its chain.
  plan.chain_of_.assign(graph.nodes().size(), 0);
  for (const auto& n : graph.nodes()) {
    if (n.in_edges.size() == 1 && plan.edges_[n.in_edges[0]].chained) {
      auto c = plan.chain_of_[graph.edges()[n.in_edges[0]].from];
      plan.chain_of_[n.id] = c;
      plan.chains_[c].nodes.push_back(n.id);
      plan.chains_[c].name += " -> " + plan.names_[n.id];
      continue;
    }
    chain c;
    c.id = static_cast<std::uint32_t>(plan.chains_.size());
    c.nodes.push_back(n.id);
    c.parallelism = (*par)[n.id];
    c.name = plan.names_[n.id];
    c.in_edges = n.in_edges;
    plan.chain_of_[n.id] = c.id;
    plan.chains_.push_back(std::move(c));
  }
  for (const auto& e : graph.edges()) {
    plan.edges_[e.id].from_chain = plan.chain_of_[e.from];
    plan.edges_[e.id].to_chain = plan.chain_of_[e.to];
  }
  for (auto& c : plan.chains_) {
    c.out_edges.clear();
    for (auto n : c.nodes) {
      for (auto e : graph.at(n).out_edges) {
        if (!graph.edges()[e].side_tag.empty()) c.out_edges.push_back(e);
      }
    }
    for (auto e : graph.at(c.nodes.back()).out_edges) {
      if (graph.edges()[e].side_tag.empty()) c.out_edges.push_back(e);
    }
    std::uint32_t base = 0;
    for (auto e : c.in_edges) {
      plan.edges_[e].input_base = base;
      base += plan.channels_per_receiver(e);
    }
  }
  for (auto& c : plan.chains_) {
    std::uint32_t base = 0;
    for (auto e : c.out_edges) {
      plan.edges_[e].output_base = base;
      base += plan.channels_per_sender(e);
    }
  }
  return plan;
}

std::uint32_t execution_plan::channels_per_receiver(std::uint32_t edge) const {
  const auto& e = edges_.at(edge);
  return e.kind == partitioning::forward ? 1
                                         : chains_.at(e.from_chain).parallelism;
}

std::uint32_t execution_plan::channels_per_sender(std::uint32_t edge) const {
  const auto& e = edges_.at(edge);
  return e.kind == partitioning::forward ? 1
                                         : chains_.at(e.to_chain).parallelism;
}

std::uint32_t execution_plan::input_channel(std::uint32_t edge,
                                            std::uint32_t from_subtask) const {
  const auto& e = edges_.at(edge);
  return e.input_base + (e.kind == partitioning::forward ? 0 : from_subtask);
}

std::uint32_t execution_plan::output_channel(std::uint32_t edge,
                                             std::uint32_t to_subtask) const {
  const auto& e = edges_.at(edge);
  return e.output_base + (e.kind == partitioning::forward ? 0 : to_subtask);
}

std::vector<execution_plan::channel_ref> execution_plan::inputs(
    std::uint32_t chain, std::uint32_t subtask) const {
  std::vector<channel_ref> result;
  for (auto e : chains_.at(chain).in_edges) {
    if (edges_[e].kind == partitioning::forward) {
      result.push_back({e, subtask});
      continue;
    }
    for (std::uint32_t u = 0; u < channels_per_receiver(e); ++u)
      result.push_back({e, u});
  }
  return result;
}

std::vector<execution_plan::channel_ref> execution_plan::outputs(
    std::uint32_t chain, std::uint32_t subtask) const {
  std::vector<channel_ref> result;
  for (auto e : chains_.at(chain).out_edges) {
    if (edges_[e].kind == partitioning::forward) {
      result.push_back({e, subtask});
      continue;
    }
    for (std::uint32_t d = 0; d < channels_per_sender(e); ++d)
      result.push_back({e, d});
  }
  return result;
}

status job_graph::run_checks(const job_options& options) const {
  for (const auto& n : nodes_) {
    if (!n.check) continue;
    if (auto st = n.check(options); !st.ok())
      return {st.code(), "operator '" + n.name + "': " + st.message()};
  }
  return {};
}

std::string job_graph::fingerprint() const {
  // FNV-1a over a canonical text of the graph.
  std::uint64_t h = 0xcbf29ce484222325ULL;
  auto mix = [&](std::string_view text) {
    for (unsigned char c : text) {
      h ^= c;
      h *= 0x100000001b3ULL;
    }
    h ^= 0xff;
    h *= 0x100000001b3ULL;
  };
  for (const auto& n : nodes_) {
    mix(std::to_string(n.id));
    mix(n.name);
    mix(std::to_string(static_cast<int>(n.kind)));
  }
  for (const auto& e : edges_) {
    mix(std::to_string(e.from) + ">" + std::to_string(e.to));
    mix(std::to_string(static_cast<int>(e.kind)));
    mix(e.side_tag);
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace stream
