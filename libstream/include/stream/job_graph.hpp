#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <typeindex>
#include <vector>

#include "stream/options.hpp"
#include "stream/runtime/stage.hpp"
#include "stream/status.hpp"

namespace stream {

class key_group_table;

/// How records of an edge are distributed over the downstream subtasks.
enum class partitioning : std::uint8_t {
  automatic,  ///< forward when both sides have the same parallelism, else
              ///< rebalance; resolved by `execution_plan::build`.
  forward,    ///< subtask i sends only to subtask i (same parallelism).
  rebalance,  ///< whole batches round-robin over all downstream subtasks.
  hash,       ///< by key group of the record's key (keyed streams).
};

std::string_view to_string(partitioning p) noexcept;

/// Everything a router needs to address the output channels of one edge.
struct router_context {
  runtime::output_gate* gate = nullptr;
  std::uint32_t first_channel = 0;  ///< Gate channel of downstream target 0.
  std::uint32_t targets = 1;        ///< Number of downstream channels.
  std::uint32_t subtask = 0;        ///< Upstream subtask (rebalance offset).
  std::uint32_t batch_size = 1024;
  std::shared_ptr<const key_group_table> table;  ///< Only for hash edges.
};

using stage_factory = std::function<std::unique_ptr<runtime::stage_object>(
    const runtime::stage_context&, runtime::stage_object* next)>;
using router_factory = std::function<std::unique_ptr<runtime::stage_object>(
    const router_context&)>;

/// Type-specific glue the planner needs without knowing the record type.
struct type_ops {
  std::type_index type = typeid(void);
  /// Wraps a `consumer<T>` as the type-erased head of a chain.
  std::function<std::unique_ptr<runtime::chain_head>(runtime::stage_object*)>
      make_head;
  /// Copies every batch to several `consumer<T>`s.
  std::function<std::unique_ptr<runtime::stage_object>(
      std::vector<runtime::stage_object*>)>
      make_fanout;
  /// Drops records of a stream that nobody consumes.
  std::function<std::unique_ptr<runtime::stage_object>()> make_discard;
  /// Router factories per partitioning (hash routers come with the edge).
  router_factory make_forward;
  router_factory make_rebalance;
  /// Remote channels: appends the batch in the codec's batch format (a
  /// versioned header with the schema fingerprint, then the records). Null
  /// when the record type has no codec: such records cannot cross processes.
  std::function<void(const runtime::batch_base&, std::vector<std::uint8_t>&)>
      encode;
  /// Decodes one batch written by `encode`; errors are
  /// `errc::malformed_data` naming what does not fit.
  std::function<result<runtime::batch_ptr>(std::span<const std::uint8_t>)>
      decode;
};

/// The logical dataflow: operators (nodes) and the streams between them
/// (edges). Built by `environment`; ids are assigned in creation order, so
/// building the same program twice gives the same ids in every process.
class job_graph {
 public:
  enum class node_kind : std::uint8_t { source, operator_, sink };

  struct node {
    std::uint32_t id = 0;
    std::string name;
    bool user_named = false;  ///< The name came from the user, not a default.
    node_kind kind = node_kind::operator_;
    std::uint32_t parallelism = 0;      ///< 0: the job's default.
    std::uint32_t max_parallelism = 0;  ///< 0: unbounded (e.g. 1 for a file).
    bool keyed = false;                 ///< Has keyed state on a hash input.
    bool new_chain = false;             ///< Never chained to its input.
    std::shared_ptr<const type_ops> in_type;   ///< Null for sources.
    std::shared_ptr<const type_ops> out_type;  ///< Null for sinks.
    stage_factory make_stage;
    /// Optional start-up check, run once before any task is deployed (by
    /// the coordinator or the local role): a connector verifies its
    /// external system here, so that a misconfiguration is refused at start
    /// with a clear message instead of failing tasks over and over.
    std::function<status(const job_options&)> check;
    std::vector<std::uint32_t> in_edges;
    std::vector<std::uint32_t> out_edges;
  };

  struct edge {
    std::uint32_t id = 0;
    std::uint32_t from = 0;
    std::uint32_t to = 0;
    partitioning kind = partitioning::automatic;
    router_factory make_hash_router;  ///< Set for `partitioning::hash`.
    /// Non-empty for a side output of `from` (late data, say): the records
    /// the operator emits under this tag. Never chained.
    std::string side_tag;
  };

  /// Adds a node and returns its id. `n.id` and the edge lists are ignored.
  std::uint32_t add_node(node n);

  /// Adds an edge between existing nodes and returns its id; a non-empty
  /// `side_tag` makes it carry that side output of `from`.
  std::uint32_t add_edge(std::uint32_t from, std::uint32_t to,
                         partitioning kind, router_factory hash_router = {},
                         std::string side_tag = {});

  /// Number of edges out of `id` that carry its main output.
  std::size_t main_outputs(std::uint32_t id) const;

  node& at(std::uint32_t id) { return nodes_.at(id); }
  const node& at(std::uint32_t id) const { return nodes_.at(id); }

  /// Runs every node's start-up `check`; the first failure is returned
  /// with the operator's name in front.
  status run_checks(const job_options& options) const;

  /// Identifies the topology (operator ids, names, kinds and edges, not
  /// parallelism): a checkpoint of a job with another
  /// fingerprint is refused on restore. 16 hex digits.
  std::string fingerprint() const;
  const std::vector<node>& nodes() const noexcept { return nodes_; }
  const std::vector<edge>& edges() const noexcept { return edges_; }

 private:
  std::vector<node> nodes_;
  std::vector<edge> edges_;
};

/// The physical plan: parallelism resolved, edges resolved, operators grouped
/// into chains (one actor per chain subtask) and channels numbered. Channel
/// numbers depend only on the plan, never on the process, so remote peers
/// agree on them.
class execution_plan {
 public:
  struct chain {
    std::uint32_t id = 0;
    std::vector<std::uint32_t> nodes;  ///< Head first.
    std::uint32_t parallelism = 1;
    std::string name;                     ///< "a -> b -> c".
    std::vector<std::uint32_t> in_edges;  ///< Graph edges into the head.
    /// Graph edges leaving the chain: the side outputs of its nodes, in node
    /// order, then the main outputs of the tail.
    std::vector<std::uint32_t> out_edges;
    /// Which key groups each subtask owns: the table every hash edge into
    /// the chain routes by, shared with the chain upstream when only
    /// forward edges lead in. Contiguous ranges until a rescale plans
    /// another. Never null in a built plan.
    std::shared_ptr<const key_group_table> key_groups;
    /// The chain whose table this one uses: its own id, or that of the
    /// chain upstream when only forward edges lead in.
    std::uint32_t table_root = 0;
  };

  struct resolved_edge {
    partitioning kind = partitioning::forward;
    bool chained = false;
    /// Channel offset of this edge within the receiver's inputs and within
    /// the sender's outputs (the same for every subtask).
    std::uint32_t input_base = 0;
    std::uint32_t output_base = 0;
    std::shared_ptr<const key_group_table> table;  ///< Hash edges only.
    std::uint32_t from_chain = 0;
    std::uint32_t to_chain = 0;
  };

  /// One channel seen from one end: the edge and the subtask at the other
  /// end.
  struct channel_ref {
    std::uint32_t edge = 0;
    std::uint32_t peer_subtask = 0;
  };

  /// The stable identity of a channel on the wire, as one end names itself
  /// to the other: its edge and its own subtask index. Unlike the channel
  /// numbers of `inputs` and `outputs` (positions that depend on the
  /// parallelism of every edge into or out of a chain), it does not change
  /// when another operator changes parallelism. Requires edge < 65536 and
  /// subtask < 65536 (parallelism is at most 32768).
  static constexpr std::uint32_t channel_id(std::uint32_t edge,
                                            std::uint32_t subtask) noexcept {
    return (edge << 16) | (subtask & 0xffffu);
  }
  static constexpr std::uint32_t edge_of(std::uint32_t id) noexcept {
    return id >> 16;
  }
  static constexpr std::uint32_t subtask_of(std::uint32_t id) noexcept {
    return id & 0xffffu;
  }

  /// Finds a task's channel number from the `channel_id` its peer sent.
  /// Built once per task from `inputs` or `outputs`; one look-up per batch,
  /// event or credit, never per record.
  class channel_index {
   public:
    channel_index() = default;
    /// Numbers the channels of `refs` 0, 1, ... in order.
    explicit channel_index(const std::vector<channel_ref>& refs);
    /// The channel number of the peer that sent `id`, or -1 when this task
    /// has no such channel (a peer of another plan).
    std::int64_t find(std::uint32_t id) const noexcept;

   private:
    std::vector<std::vector<std::int64_t>> slots_;  ///< [edge][peer subtask]
  };

  /// Validates `graph` against `options` and builds the plan. Errors name the
  /// operator at fault (parallelism beyond max parallelism, a forward edge
  /// between different parallelisms, no source, no sink, duplicate names).
  static result<execution_plan> build(const job_graph& graph,
                                      const job_options& options,
                                      bool chaining = true);

  /// The same plan with other key-group tables, as version `version` (an
  /// epoch: a job's plans are numbered 1, 2, ... as tables change).
  /// `tables[c]` replaces chain c's table when c is a table root and it is
  /// not null; chains that share a root's table follow it. Chains, edges,
  /// parallelism and channels are unchanged. Fails with
  /// `errc::invalid_argument` for a table whose parallelism or max
  /// parallelism is not the chain's, or a count other than one per chain.
  result<execution_plan> with_tables(
      const std::vector<std::shared_ptr<const key_group_table>>& tables,
      std::uint64_t version) const;

  /// The plan's version and every chain's key-group table as numbers, for
  /// the coordinator to ship with each deployment; `with_encoded_tables`
  /// reads them back. Per chain: table version (two halves), parallelism,
  /// max parallelism, run count, then start, end and owner of each run.
  std::vector<std::uint32_t> encode_tables() const;

  /// This plan with the version and tables of `encoded` (from
  /// `encode_tables` of a plan of the same job): what a worker runs,
  /// never tables of its own making. Fails with `errc::invalid_argument`
  /// when `encoded` is cut short, names other chains, or holds a table that
  /// does not fit a chain.
  result<execution_plan> with_encoded_tables(
      const std::vector<std::uint32_t>& encoded) const;

  /// The plan's version: 1 when built, then the caller's.
  std::uint64_t version() const noexcept { return version_; }

  const std::vector<chain>& chains() const noexcept { return chains_; }
  const resolved_edge& edge(std::uint32_t id) const { return edges_.at(id); }
  std::uint32_t chain_of(std::uint32_t node) const {
    return chain_of_.at(node);
  }
  std::uint32_t parallelism_of(std::uint32_t node) const {
    return chains_.at(chain_of_.at(node)).parallelism;
  }
  const std::string& name_of(std::uint32_t node) const {
    return names_.at(node);
  }

  /// Input channels of one subtask of `chain`, in channel-number order.
  std::vector<channel_ref> inputs(std::uint32_t chain,
                                  std::uint32_t subtask) const;
  /// Output channels of one subtask of `chain`, in channel-number order.
  std::vector<channel_ref> outputs(std::uint32_t chain,
                                   std::uint32_t subtask) const;
  /// Number of channels an edge contributes to each receiver / sender.
  std::uint32_t channels_per_receiver(std::uint32_t edge) const;
  std::uint32_t channels_per_sender(std::uint32_t edge) const;
  /// Channel number, at the receiver `to_subtask`, of the channel from
  /// `from_subtask` over `edge`.
  std::uint32_t input_channel(std::uint32_t edge,
                              std::uint32_t from_subtask) const;
  /// Channel number, at the sender, of the channel to `to_subtask` over
  /// `edge`.
  std::uint32_t output_channel(std::uint32_t edge,
                               std::uint32_t to_subtask) const;

 private:
  /// Gives every chain its key-group table (see `chain::key_groups`) and
  /// every hash edge the table of the chain it leads to.
  status assign_key_groups(std::uint32_t max_parallelism);
  /// Points every chain that shares its root's table, and every hash edge,
  /// at the table of its chain's root.
  void link_tables();

  std::uint64_t version_ = 1;

  std::vector<chain> chains_;
  std::vector<resolved_edge> edges_;
  std::vector<std::uint32_t> chain_of_;
  std::vector<std::string> names_;
};

}  // namespace stream
