#include "stream/job_graph.hpp"

#include <algorithm>
#include <cassert>
#include <cstdio>
#include <map>
#include <optional>

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
  for (const auto& [name, p] : options.operator_parallelism) {
    if (std::find(names.begin(), names.end(), name) != names.end()) {
      if (p < 1 || p > options.max_parallelism)
        return plan_error("--parallelism-of " + name + "=" + std::to_string(p) +
                          ": must be in 1..--max-" + "parallelism (" +
                          std::to_string(options.max_parallelism) + ")");
      continue;
    }
    std::string known;
    for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
    return plan_error("--parallelism-of names '" + name +
                      "', which is not an operator of this job (its "
                      "operators: " +
                      known + ")");
  }
  std::vector<std::uint32_t> result;
  for (const auto& n : graph.nodes()) {
    auto p = n.parallelism != 0 ? n.parallelism : options.parallelism;
    if (n.parallelism == 0 && n.max_parallelism != 0)
      p = std::min(p, n.max_parallelism);
    if (auto it = options.operator_parallelism.find(names[n.id]);
        it != options.operator_parallelism.end())
      p = it->second;
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
  if (auto st = plan.assign_key_groups(options.max_parallelism); !st.ok())
    return st;
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

status execution_plan::assign_key_groups(std::uint32_t max_parallelism) {
  // Chain ids follow node ids, a topological order: a chain's upstream
  // chains already have their roots.
  for (auto& c : chains_) {
    // Only forward edges in, from chains of one root: subtask i receives
    // what upstream subtask i owned, so it owns the same key groups (a
    // keyed operator after a keyed one in a new chain). Anything else is a
    // root with a table of its own, contiguous ranges to begin with.
    std::optional<std::uint32_t> upstream;
    bool inherits = !c.in_edges.empty();
    for (auto e : c.in_edges) {
      const auto& r = edges_[e];
      const std::uint32_t root = chains_[r.from_chain].table_root;
      if (r.kind != partitioning::forward || (upstream && *upstream != root)) {
        inherits = false;
        break;
      }
      upstream = root;
    }
    c.table_root = inherits ? *upstream : c.id;
    if (c.table_root != c.id) continue;
    auto table = key_group_table::contiguous(max_parallelism, c.parallelism);
    if (!table) return table.error();
    c.key_groups = std::make_shared<const key_group_table>(std::move(*table));
  }
  link_tables();
  return status::success();
}

void execution_plan::link_tables() {
  for (auto& c : chains_) {
    if (c.table_root != c.id) c.key_groups = chains_[c.table_root].key_groups;
    // One table per keyed operator, shared by every hash edge into it.
    for (auto e : c.in_edges) {
      if (edges_[e].kind == partitioning::hash) edges_[e].table = c.key_groups;
    }
  }
}

result<execution_plan> execution_plan::with_tables(
    const std::vector<std::shared_ptr<const key_group_table>>& tables,
    std::uint64_t version) const {
  if (tables.size() != chains_.size()) {
    return status{errc::invalid_argument,
                  "a plan of " + std::to_string(chains_.size()) +
                      " chains got " + std::to_string(tables.size()) +
                      " key-group tables"};
  }
  execution_plan next = *this;
  next.version_ = version;
  for (auto& c : next.chains_) {
    const auto& table = tables[c.id];
    if (c.table_root != c.id || table == nullptr) continue;
    const auto& old = *c.key_groups;
    if (table->parallelism() != c.parallelism ||
        table->max_parallelism() != old.max_parallelism()) {
      return status{errc::invalid_argument,
                    "the key-group table of '" + c.name + "' is for " +
                        std::to_string(table->parallelism()) + " of " +
                        std::to_string(table->max_parallelism()) +
                        " key groups' owners, the chain runs " +
                        std::to_string(c.parallelism) + " subtasks of " +
                        std::to_string(old.max_parallelism())};
    }
    c.key_groups = table;
  }
  next.link_tables();
  return next;
}

execution_plan::channel_index::channel_index(
    const std::vector<channel_ref>& refs) {
  for (std::size_t i = 0; i < refs.size(); ++i) {
    const auto& ref = refs[i];
    if (ref.edge >= slots_.size()) slots_.resize(ref.edge + 1);
    auto& peers = slots_[ref.edge];
    if (ref.peer_subtask >= peers.size())
      peers.resize(ref.peer_subtask + 1, -1);
    peers[ref.peer_subtask] = static_cast<std::int64_t>(i);
  }
}

std::int64_t execution_plan::channel_index::find(
    std::uint32_t id) const noexcept {
  const std::uint32_t edge = edge_of(id);
  const std::uint32_t peer = subtask_of(id);
  if (edge >= slots_.size() || peer >= slots_[edge].size()) return -1;
  return slots_[edge][peer];
}

std::vector<std::uint32_t> execution_plan::encode_tables() const {
  auto halves = [](std::vector<std::uint32_t>& out, std::uint64_t v) {
    out.push_back(static_cast<std::uint32_t>(v));
    out.push_back(static_cast<std::uint32_t>(v >> 32));
  };
  std::vector<std::uint32_t> out;
  halves(out, version_);
  out.push_back(static_cast<std::uint32_t>(chains_.size()));
  for (const auto& c : chains_) {
    const key_group_table& t = *c.key_groups;
    halves(out, t.version());
    out.push_back(t.parallelism());
    out.push_back(t.max_parallelism());
    const std::size_t count_at = out.size();
    out.push_back(0);
    std::uint32_t runs = 0;
    for (key_group start = 0; start < t.max_parallelism();) {
      key_group end = start + 1;
      while (end < t.max_parallelism() && t.owner(end) == t.owner(start)) ++end;
      out.insert(out.end(), {start, end, t.owner(start)});
      ++runs;
      start = end;
    }
    out[count_at] = runs;
  }
  return out;
}

result<execution_plan> execution_plan::with_encoded_tables(
    const std::vector<std::uint32_t>& encoded) const {
  std::size_t at = 0;
  auto take = [&](std::uint32_t& v) {
    if (at >= encoded.size()) return false;
    v = encoded[at++];
    return true;
  };
  auto take64 = [&](std::uint64_t& v) {
    std::uint32_t lo = 0;
    std::uint32_t hi = 0;
    if (!take(lo) || !take(hi)) return false;
    v = (std::uint64_t{hi} << 32) | lo;
    return true;
  };
  auto bad = [](const std::string& why) {
    return status{errc::invalid_argument, "shipped plan: " + why};
  };
  std::uint64_t version = 0;
  std::uint32_t count = 0;
  if (!take64(version) || !take(count)) return bad("cut short");
  if (count != chains_.size())
    return bad(std::to_string(count) + " chains, this job has " +
               std::to_string(chains_.size()));
  std::vector<std::shared_ptr<const key_group_table>> tables;
  for (std::uint32_t c = 0; c < count; ++c) {
    std::uint64_t table_version = 0;
    std::uint32_t parallelism = 0;
    std::uint32_t max_parallelism = 0;
    std::uint32_t runs = 0;
    if (!take64(table_version) || !take(parallelism) ||
        !take(max_parallelism) || !take(runs) ||
        max_parallelism > max_max_parallelism)
      return bad("cut short");
    std::vector<std::uint32_t> owners(max_parallelism, 0);
    std::uint32_t next = 0;
    for (std::uint32_t r = 0; r < runs; ++r) {
      std::uint32_t start = 0;
      std::uint32_t end = 0;
      std::uint32_t owner = 0;
      if (!take(start) || !take(end) || !take(owner)) return bad("cut short");
      if (start != next || end <= start || end > max_parallelism)
        return bad("the runs of chain " + std::to_string(c) +
                   " do not cover its key groups in order");
      for (key_group kg = start; kg < end; ++kg) owners[kg] = owner;
      next = end;
    }
    if (next != max_parallelism)
      return bad("the runs of chain " + std::to_string(c) +
                 " do not cover its key groups");
    auto table = key_group_table::from_owners(std::move(owners), parallelism,
                                              table_version);
    if (!table) return bad(table.error().message());
    tables.push_back(
        std::make_shared<const key_group_table>(std::move(*table)));
  }
  if (at != encoded.size()) return bad("bytes after the last table");
  return with_tables(tables, version);
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
