#pragma once

// Key-group planning: from the table a keyed operator runs with and a new
// parallelism, the next table. Pure functions of their arguments, used by
// rescaling (by restore, and live) and by the autoscaler.
//
// Subtask indices are identities: subtask i of the new table is subtask i of
// the current one, and a scale-in removes the highest indices. "Moved" counts
// the key groups whose owner differs between two tables; each one is state
// that has to travel.
//
// Flink's contiguous ranges move about half of all key groups on every +1
// step (64 of 128 for 1 -> 2, 60..67 up to 8 -> 9); a planned table moves the
// minimum, M / (p + 1) for a balanced p -> p + 1.

#include <cstdint>
#include <span>

#include "stream/key_groups.hpp"
#include "stream/status.hpp"

namespace stream {

/// Returns the number of key groups whose owner differs between `from` and
/// `to`. Requires equal max parallelism (asserted).
std::uint32_t moved_key_groups(const key_group_table& from,
                               const key_group_table& to);

/// Returns the fewest key groups that any table for `parallelism` subtasks
/// in which every subtask owns floor(M/p) or ceil(M/p) key groups must move
/// away from `current` (subtask indices kept). Requires 1 <= parallelism <=
/// current.max_parallelism() (asserted).
std::uint32_t minimum_moved_key_groups(const key_group_table& current,
                                       std::uint32_t parallelism);

/// Plans the table for `parallelism` subtasks that moves exactly
/// `minimum_moved_key_groups(current, parallelism)` key groups and in which
/// every subtask owns floor(M/p) or ceil(M/p) of them.
///
/// A subtask that keeps key groups keeps the lowest of those it owned; the
/// key groups that move are handed out in ascending order, subtask by
/// subtask, so that runs stay long. Deterministic. Fails with
/// `errc::invalid_argument` unless 1 <= parallelism <= M.
result<key_group_table> plan_balanced_table(const key_group_table& current,
                                            std::uint32_t parallelism,
                                            std::uint64_t version);

/// The outcome of `plan_weighted_table`, with the figures it was judged by.
/// Weights are in the caller's unit (records/s, state bytes).
struct weighted_plan {
  key_group_table table;     ///< The planned table.
  double total_weight = 0;   ///< Sum of all weights.
  double heaviest_load = 0;  ///< Largest per-subtask sum under `table`.
  double lower_bound = 0;    ///< max(total / p, heaviest key group).
  double moved_weight = 0;   ///< Sum of the weights that change owner.
  std::uint32_t moved = 0;   ///< Number of key groups that change owner.
};

/// Plans a table for `parallelism` subtasks that balances `weights` (one per
/// key group, indexed by key group, finite and >= 0) and moves as little
/// weight as it can.
///
/// Aims for a heaviest subtask within `tolerance` (a fraction, e.g. 0.05) of
/// `lower_bound`, which no table can beat: subtasks over that cap shed the
/// key groups that bring them under it with the least weight, removed
/// subtasks shed all, and the shed key groups go heaviest first to the
/// lightest subtask; a bounded pass then moves single key groups off the
/// heaviest subtask while that lowers it. A subtask may end up owning no key
/// group. When every weight is 0 it returns `plan_balanced_table`.
/// Deterministic. Fails with `errc::invalid_argument` for a parallelism
/// outside 1..M, a weight count other than M, a negative or non-finite
/// weight, or a negative tolerance.
result<weighted_plan> plan_weighted_table(const key_group_table& current,
                                          std::span<const double> weights,
                                          std::uint32_t parallelism,
                                          std::uint64_t version,
                                          double tolerance = 0.05);

}  // namespace stream
