#pragma once

// The plan a job runs with when it restores a checkpoint: the checkpoint's
// key-group tables where the parallelism is unchanged, and planned ones
// where it changed.

#include <cstdint>
#include <string>
#include <vector>

#include "stream/checkpoint/storage.hpp"
#include "stream/job_graph.hpp"
#include "stream/status.hpp"

namespace stream {

/// How a restore at another parallelism lays out the key groups of a keyed
/// operator (`--rescale-plan`).
enum class rescale_plan {
  /// The fewest key groups move, every subtask gets floor or ceil of M/p
  /// (`plan_balanced_table`); the table is no longer contiguous ranges.
  minimal,
  /// Contiguous ranges, as Flink does: about half of all key groups move on
  /// every step.
  ranges,
};

/// Parses "minimal" or "ranges"; `errc::invalid_config` naming the value
/// otherwise.
result<rescale_plan> parse_rescale_plan(const std::string& text);

/// A keyed operator's table that a restore changed: for the job to say
/// what moved.
struct table_change {
  std::string chain;             ///< The chain's name.
  std::uint32_t from = 0;        ///< Parallelism in the checkpoint.
  std::uint32_t to = 0;          ///< Parallelism now.
  std::uint32_t moved = 0;       ///< Key groups whose owner changed.
  std::uint32_t key_groups = 0;  ///< Of this many (max parallelism).
  std::uint64_t version = 0;     ///< The new table's version.
};

/// The plan a restore runs with, and the tables it changed.
struct restored_plan {
  execution_plan plan;
  std::vector<table_change> changes;
};

/// Returns `plan` with the key-group tables of `meta`: each chain that owns
/// a table (a table root) and has an operator in the checkpoint keeps the
/// checkpoint's table, with its version, when its parallelism is the one
/// the checkpoint was taken with, and otherwise gets the table `policy`
/// plans from it, one version up (listed in `changes`). Chains without
/// state in the checkpoint keep theirs. The plan's version is the
/// checkpoint's, one up when a table changed. A format 1 checkpoint's table
/// is contiguous ranges, version 1. Fails with `errc::malformed_data` when
/// the checkpoint's key groups of an operator leave a key group without an
/// owner while its parallelism changes.
result<restored_plan> plan_for_restore(const execution_plan& plan,
                                       const checkpoint::metadata& meta,
                                       rescale_plan policy);

}  // namespace stream
