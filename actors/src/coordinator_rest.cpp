// The coordinator's answers to the REST API: the job and its checkpoints as
// JSON.

#include <nlohmann/json.hpp>
#include <set>

#include "coordinator.hpp"
#include "stream/key_groups.hpp"

namespace stream::actors {

std::string coordinator::status_json() const {
  using nlohmann::json;
  const auto& graph = *config_.graph;
  const auto& plan = *config_.plan;
  const char* state = "running";
  if (phase_ == phase::restarting)
    state = "restarting";
  else if (phase_ == phase::stopping)
    state = cancelled_ ? "cancelling" : "stopping";
  else if (waiting_)
    state = "waiting-for-slots";
  else if (deploying_ > 0)
    state = "deploying";
  json j;
  j["job"] = config_.options.job_name;
  j["state"] = state;
  j["attempt"] = attempt_;
  j["restarts"] = policy_.restarts();
  j["uptime_seconds"] =
      std::chrono::duration<double>(clock::now() - started_at_).count();
  j["fingerprint"] = fingerprint_;
  j["max_parallelism"] = config_.options.max_parallelism;
  j["plan_version"] = config_.plan->version();
  json workers = json::array();
  // Slot s holds subtask s of every chain: a worker uses as many slots as
  // it hosts distinct subtask indices.
  std::vector<std::set<std::uint32_t>> slots_used(workers_.size());
  for (const auto& t : tasks_) {
    if (t.worker < slots_used.size()) slots_used[t.worker].insert(t.subtask);
  }
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    const auto& w = workers_[i];
    if (!w.alive) continue;
    workers.push_back({{"id", w.id},
                       {"address", w.address},
                       {"slots", w.slots},
                       {"used", slots_used[i].size()},
                       {"state", w.leaving ? "leaving" : "up"}});
  }
  j["workers"] = workers;
  json operators = json::array();
  json key_groups = json::array();
  for (const auto& n : graph.nodes()) {
    const auto& chain = plan.chains().at(plan.chain_of(n.id));
    const char* kind = n.kind == job_graph::node_kind::source ? "source"
                       : n.kind == job_graph::node_kind::sink ? "sink"
                                                              : "operator";
    operators.push_back({{"id", n.id},
                         {"name", plan.name_of(n.id)},
                         {"kind", kind},
                         {"chain", chain.name},
                         {"parallelism", chain.parallelism},
                         {"keyed", n.keyed}});
    if (!n.keyed) continue;
    const key_group_table& table = *chain.key_groups;
    json subtasks = json::array();
    for (std::uint32_t s = 0; s < chain.parallelism; ++s) {
      const key_group_set owned = table.owned_set(s);
      std::string where = "-";
      for (const auto& t : tasks_) {
        if (t.chain == chain.id && t.subtask == s && t.worker < workers_.size())
          where = workers_[t.worker].id;
      }
      json runs = json::array();
      for (const auto& r : owned.runs()) runs.push_back({r.start, r.end - 1});
      subtasks.push_back({{"subtask", s},
                          {"key_groups", owned.to_string()},
                          {"runs", std::move(runs)},
                          {"count", owned.size()},
                          {"worker", where}});
    }
    key_groups.push_back({{"operator", plan.name_of(n.id)},
                          {"parallelism", chain.parallelism},
                          {"table_version", table.version()},
                          {"subtasks", std::move(subtasks)}});
  }
  j["operators"] = operators;
  j["key_groups"] = key_groups;
  json tasks = json::array();
  for (const auto& t : tasks_) {
    const char* ts = t.down       ? "down"
                     : t.finished ? "finished"
                     : t.started  ? "running"
                     : t.handle   ? "deploying"
                                  : "scheduled";
    tasks.push_back(
        {{"chain", plan.chains().at(t.chain).name},
         {"subtask", t.subtask},
         {"worker",
          t.worker < workers_.size() ? workers_[t.worker].id : std::string{}},
         {"state", ts}});
  }
  j["tasks"] = tasks;
  return j.dump();
}

std::string coordinator::history_json() const {
  using nlohmann::json;
  json history = json::array();
  for (const auto& e : history_) {
    history.push_back({{"id", e.id},
                       {"kind", kind_name(e.kind)},
                       {"status", e.completed ? "completed" : "failed"},
                       {"folder", e.folder},
                       {"duration_ms", e.duration_ms},
                       {"size_bytes", e.size_bytes},
                       {"reason", e.reason}});
  }
  if (pending_) {
    history.push_back(
        {{"id", pending_->id},
         {"kind", kind_name(pending_->kind)},
         {"status", "in_progress"},
         {"folder", pending_->folder},
         {"duration_ms", ms_between(pending_->started, clock::now())},
         {"size_bytes", 0},
         {"reason", ""}});
  }
  json j;
  j["counts"] = {
      {"completed", static_cast<std::uint64_t>(completed_total_->value())},
      {"failed", failed_count_},
      {"in_progress", pending_ ? 1 : 0}};
  j["history"] = history;
  return j.dump();
}

}  // namespace stream::actors
