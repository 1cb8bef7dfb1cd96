#include "stream/checkpoint/snapshot.hpp"

namespace stream::checkpoint {

result<std::shared_ptr<const restored_state>> load_operator_state(
    const restore_point& point, std::uint32_t operator_id,
    std::uint32_t subtask, std::uint32_t parallelism,
    const key_group_set& owned) {
  const auto* op = point.meta.find(operator_id);
  if (op == nullptr) return std::shared_ptr<const restored_state>{};
  auto out = std::make_shared<restored_state>();
  out->checkpoint_id = point.meta.id;
  out->operator_id = operator_id;
  out->rescaled = op->parallelism != parallelism;
  for (const auto& h : op->subtasks) {
    const bool own_index = h.subtask == subtask;
    const bool overlaps = h.entries > 0 && h.key_groups.intersects(owned);
    // After a rescale every old file is read for its operator state.
    if (!own_index && !overlaps && !out->rescaled) continue;
    auto snap = read_state_file(point.folder, h, owned);
    if (!snap) return snap.error();
    if (out->rescaled) {
      out->rescaled_operator_states.push_back(std::move(snap->operator_state));
    } else if (own_index) {
      out->operator_state = std::move(snap->operator_state);
      out->has_operator_state = true;
    }
    out->parts.push_back(std::move(*snap));
  }
  return std::shared_ptr<const restored_state>{std::move(out)};
}

}  // namespace stream::checkpoint
