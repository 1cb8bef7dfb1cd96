#include "stream/rescale.hpp"

#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "stream/key_group_planner.hpp"

namespace stream {

namespace {

constexpr std::uint32_t no_owner = std::numeric_limits<std::uint32_t>::max();

/// The checkpoint's entry of the first operator of chain `root`, or of a
/// chain that shares its table, that has state files.
const checkpoint::metadata::operator_entry* stored_operator(
    const execution_plan& plan, std::uint32_t root,
    const checkpoint::metadata& meta) {
  for (const auto& c : plan.chains()) {
    if (c.table_root != root) continue;
    for (auto node : c.nodes) {
      const auto* op = meta.find(node);
      if (op != nullptr && !op->subtasks.empty()) return op;
    }
  }
  return nullptr;
}

/// The table the subtasks of `op` owned their key groups by; nothing when
/// their key groups leave one without an owner (a subtask without a file).
std::optional<key_group_table> stored_table(
    const checkpoint::metadata::operator_entry& op,
    std::uint32_t max_parallelism) {
  std::vector<std::uint32_t> owners(max_parallelism, no_owner);
  for (const auto& handle : op.subtasks) {
    for (const auto& run : handle.key_groups.runs()) {
      for (key_group kg = run.start; kg < run.end && kg < max_parallelism;
           ++kg) {
        owners[kg] = handle.subtask;
      }
    }
  }
  for (std::uint32_t owner : owners) {
    if (owner == no_owner) return std::nullopt;
  }
  auto table = key_group_table::from_owners(std::move(owners), op.parallelism,
                                            op.table_version);
  if (!table) return std::nullopt;
  return std::move(*table);
}

}  // namespace

result<rescale_plan> parse_rescale_plan(const std::string& text) {
  if (text == "minimal") return rescale_plan::minimal;
  if (text == "ranges") return rescale_plan::ranges;
  return status{errc::invalid_config,
                "--rescale-plan must be minimal or "
                "ranges, got '" +
                    text + "'"};
}

result<restored_plan> plan_for_restore(const execution_plan& plan,
                                       const checkpoint::metadata& meta,
                                       rescale_plan policy) {
  std::vector<std::shared_ptr<const key_group_table>> tables(
      plan.chains().size());
  std::vector<table_change> changes;
  for (const auto& c : plan.chains()) {
    if (c.table_root != c.id) continue;
    const auto* op = stored_operator(plan, c.id, meta);
    if (op == nullptr) continue;
    std::optional<key_group_table> old =
        stored_table(*op, meta.max_parallelism);
    if (old && old->parallelism() == c.parallelism) {
      tables[c.id] = std::make_shared<const key_group_table>(std::move(*old));
      continue;
    }
    if (!old) {
      return status{errc::malformed_data,
                    "the checkpoint's key groups of operator '" + op->name +
                        "' leave some without an owner, so its parallelism "
                        "cannot change (" +
                        std::to_string(op->parallelism) + " -> " +
                        std::to_string(c.parallelism) + ")"};
    }
    const std::uint64_t version = old->version() + 1;
    result<key_group_table> next =
        policy == rescale_plan::ranges
            ? key_group_table::contiguous(meta.max_parallelism, c.parallelism,
                                          version)
            : plan_balanced_table(*old, c.parallelism, version);
    if (!next) return next.error();
    changes.push_back({c.name, old->parallelism(), c.parallelism,
                       moved_key_groups(*old, *next), meta.max_parallelism,
                       version});
    tables[c.id] = std::make_shared<const key_group_table>(std::move(*next));
  }
  auto next =
      plan.with_tables(tables, meta.plan_version + (changes.empty() ? 0 : 1));
  if (!next) return next.error();
  return restored_plan{std::move(*next), std::move(changes)};
}

}  // namespace stream
