#include "stream/checkpoint/snapshot.hpp"

namespace stream::checkpoint {

result<std::shared_ptr<const restored_state>> load_operator_state(
    const restore_point& point, std::uint32_t operator_id,
    std::uint32_t subtask, std::uint32_t parallelism, key_group_range owned) {
  const auto* op = point.meta.find(operator_id);
  if (op == nullptr) return std::shared_ptr<const restored_state>{};
  auto out = std::make_shared<restored_state>();
  out->checkpoint_id = point.meta.id;
  out->operator_id = operator_id;
  for (const auto& h : op->subtasks) {
    bool own_index = h.subtask == subtask;
    bool overlaps = h.key_groups.start < owned.end &&
                    owned.start < h.key_groups.end && h.entries > 0;
    if (!own_index && !overlaps) continue;
    auto snap = read_state_file(point.folder, h, owned);
    if (!snap) return snap.error();
    if (own_index && op->parallelism == parallelism) {
      out->operator_state = std::move(snap->operator_state);
      out->has_operator_state = true;
    } else if (own_index && !snap->operator_state.empty()) {
      return status{errc::invalid_config,
                    "operator '" + op->name + "' ran with parallelism " +
                        std::to_string(op->parallelism) + " in checkpoint " +
                        std::to_string(point.meta.id) +
                        " and has non-keyed state; it must run with the "
                        "same parallelism (now " +
                        std::to_string(parallelism) + ")"};
    }
    out->parts.push_back(std::move(*snap));
  }
  return std::shared_ptr<const restored_state>{std::move(out)};
}

}  // namespace stream::checkpoint
