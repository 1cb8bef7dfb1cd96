// The coordinator's workers: registration, loss, placement of the tasks on
// their slots, deployment and wiring.

#include <algorithm>
#include <cstdio>
#include <map>

#include "coordinator.hpp"
#include "stream/environment.hpp"

namespace stream::actors {

namespace {

/// A worker that has not answered a deploy request after this long is
/// taken for failed.
constexpr std::chrono::seconds deploy_timeout{30};

}  // namespace

void coordinator::deploy(
    std::shared_ptr<const checkpoint::restore_point> restore) {
  const auto& graph = *config_.graph;
  const auto& plan = *config_.plan;
  deployed_from_ = restore;
  final_retries_ = 0;
  tasks_.clear();
  // No task refers to a worker any more: lost workers leave the list, so
  // that it does not grow with every worker that comes and goes.
  std::erase_if(workers_, [](const worker_entry& w) { return !w.alive; });
  alive_ = 0;
  // One slot holds one subtask of every chain (slot sharing): subtask s of
  // every chain goes to slot s, so forward edges stay in one process.
  std::uint32_t needed = 0;
  for (const auto& c : plan.chains()) needed = std::max(needed, c.parallelism);
  std::vector<std::size_t> live;
  std::uint64_t offered = 0;
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    if (workers_[i].alive && !workers_[i].leaving) {
      live.push_back(i);
      offered += workers_[i].slots;
    }
  }
  if (offered < needed) {
    if (!waiting_)
      std::fprintf(stderr,
                   "stream: waiting for %u task slots (%llu offered by %zu "
                   "workers)\n",
                   needed, static_cast<unsigned long long>(offered),
                   live.size());
    waiting_ = true;
    waiting_restore_ = std::move(restore);
    return;
  }
  waiting_ = false;
  waiting_restore_ = nullptr;
  // Spread the slots round-robin over the live workers.
  std::vector<std::uint32_t> left;
  for (auto i : live) left.push_back(workers_[i].slots);
  std::vector<std::size_t> slot_worker(needed);
  std::size_t next = 0;
  for (std::uint32_t slot = 0; slot < needed; ++slot) {
    while (left[next] == 0) next = (next + 1) % live.size();
    slot_worker[slot] = live[next];
    --left[next];
    next = (next + 1) % live.size();
  }
  // Per worker: the tasks it hosts.
  std::map<std::size_t, std::vector<std::size_t>> per_worker;
  for (const auto& c : plan.chains()) {
    for (std::uint32_t s = 0; s < c.parallelism; ++s) {
      task_slot slot;
      slot.chain = c.id;
      slot.subtask = s;
      slot.worker = slot_worker[s];
      slot.source =
          graph.at(c.nodes.front()).kind == job_graph::node_kind::source;
      per_worker[slot.worker].push_back(tasks_.size());
      tasks_.push_back(std::move(slot));
    }
  }
  std::vector<std::string> peers;
  for (const auto& [w, _] : per_worker) {
    if (!workers_[w].address.empty()) peers.push_back(workers_[w].address);
  }
  std::string folder = restore ? restore->folder : std::string{};
  deploying_ = per_worker.size();
  for (auto& [w, indices] : per_worker) {
    std::vector<std::uint32_t> chains;
    std::vector<std::uint32_t> subtasks;
    for (auto i : indices) {
      chains.push_back(tasks_[i].chain);
      subtasks.push_back(tasks_[i].subtask);
    }
    auto attempt = attempt_;
    auto id = workers_[w].id;
    // The plan travels with every deployment: workers never route by
    // tables of their own making.
    request(workers_[w].handle, deploy_timeout, deploy_atom::value, attempt,
            folder, std::move(chains), std::move(subtasks), peers,
            config_.plan->encode_tables())
        .then(
            [this, attempt, indices](std::vector<caf::actor>& handles) {
              on_deployed(attempt, indices, handles);
            },
            [this, attempt, id](caf::error& err) {
              if (attempt != attempt_ || phase_ != phase::running) return;
              on_failure("worker " + id + " could not deploy its tasks: " +
                         system().render(err));
            });
  }
}

void coordinator::on_deployed(std::uint32_t attempt,
                              const std::vector<std::size_t>& slots,
                              std::vector<caf::actor>& handles) {
  if (attempt != attempt_ || phase_ != phase::running ||
      handles.size() != slots.size()) {
    // Deployed for an attempt that failed meanwhile: never wired, never
    // started; nothing to wait for.
    for (auto& h : handles) send_exit(h, caf::exit_reason::kill);
    if (attempt == attempt_ && phase_ == phase::running)
      on_failure("a worker answered a deploy of " +
                 std::to_string(slots.size()) + " tasks with " +
                 std::to_string(handles.size()));
    return;
  }
  for (std::size_t i = 0; i < slots.size(); ++i) {
    auto& t = tasks_[slots[i]];
    t.handle = std::move(handles[i]);
    monitor(t.handle);
    ++alive_;
  }
  if (--deploying_ == 0) wire_and_start();
}

bool coordinator::ready() const {
  return !waiting_ && deploying_ == 0 && !tasks_.empty();
}

void coordinator::wire_and_start() {
  const auto& plan = *config_.plan;
  std::vector<std::vector<caf::actor>> by_chain(plan.chains().size());
  for (const auto& t : tasks_) by_chain[t.chain].push_back(t.handle);
  // Wiring tells each task its peer actors, in its channel order; a
  // channel names itself on the wire by (edge, sender's or receiver's
  // subtask), so neither end depends on the other's numbering.
  for (const auto& c : plan.chains()) {
    for (std::uint32_t s = 0; s < c.parallelism; ++s) {
      std::vector<caf::actor> outs;
      for (const auto& ref : plan.outputs(c.id, s)) {
        outs.push_back(
            by_chain[plan.edge(ref.edge).to_chain][ref.peer_subtask]);
      }
      std::vector<caf::actor> ins;
      for (const auto& ref : plan.inputs(c.id, s)) {
        ins.push_back(
            by_chain[plan.edge(ref.edge).from_chain][ref.peer_subtask]);
      }
      send(by_chain[c.id][s], wire_atom::value, std::move(outs),
           std::move(ins));
    }
  }
  for (auto& t : tasks_) send(t.handle, start_atom::value);
  // A drain or savepoint requested while deploying applies now.
  after_checkpoint();
}

std::string coordinator::on_register(const std::string& id,
                                     const std::string& address,
                                     std::uint32_t slots,
                                     const std::string& protocol,
                                     const std::string& definition) {
  auto refuse = [&](std::string why) {
    std::fprintf(stderr, "stream: refused worker %s: %s\n", id.c_str(),
                 why.c_str());
    return why;
  };
  if (protocol != protocol_signature())
    return refuse("this worker speaks '" + protocol + "', the coordinator '" +
                  protocol_signature() +
                  "': run the same build of the binary in every process");
  auto differences = definition_differences(config_.definition, definition);
  for (const auto& d : differences) {
    if (d.option == "topology")
      return refuse("the worker built a different job (topology " + d.theirs +
                    ", the coordinator's is " + d.mine +
                    "): run the same binary with the same options "
                    "everywhere");
  }
  if (!differences.empty()) {
    std::string list;
    for (const auto& d : differences) {
      list += list.empty() ? "" : ", ";
      list +=
          d.option + " (coordinator: " + d.mine + ", worker: " + d.theirs + ")";
    }
    return refuse(
        "the worker's job options differ from the coordinator's: " + list +
        ": start every process of a job with the same job "
        "options");
  }
  if (config_.local) return refuse("this coordinator runs in the local role");
  auto handle = caf::actor_cast<caf::actor>(current_sender());
  if (!handle) return "the registration came without a sender";
  // The same worker again (its first answer came too late for it): keep
  // the entry, which is monitored already.
  for (const auto& w : workers_) {
    if (w.alive && w.handle == handle) return {};
  }
  // A restarted worker registers under its old name before its old
  // connection may have been noticed as gone.
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    if (workers_[i].alive && workers_[i].id == id)
      lose_worker(i, "replaced by a new registration");
  }
  worker_entry w;
  w.handle = handle;
  w.id = id;
  w.address = address;
  w.slots = slots;
  monitor(handle);
  workers_.push_back(std::move(w));
  std::uint64_t offered = 0;
  std::size_t alive = 0;
  for (const auto& x : workers_) {
    if (x.alive && !x.leaving) {
      offered += x.slots;
      ++alive;
    }
  }
  workers_gauge_->set(static_cast<std::int64_t>(alive));
  slots_gauge_->set(static_cast<std::int64_t>(offered));
  std::fprintf(stderr,
               "stream: worker %s registered from %s with %u slots (%llu "
               "slots offered)\n",
               id.c_str(), address.c_str(), slots,
               static_cast<unsigned long long>(offered));
  if (waiting_ && phase_ == phase::running) {
    deploy(waiting_restore_);
    if (!waiting_ && drain_) stop_requested_ = true;
  }
  return {};
}

void coordinator::lose_worker(std::size_t index, const std::string& why) {
  auto& w = workers_[index];
  if (!w.alive) return;
  w.alive = false;
  std::int64_t alive = 0;
  std::int64_t offered = 0;
  for (const auto& x : workers_) {
    if (x.alive && !x.leaving) {
      ++alive;
      offered += x.slots;
    }
  }
  workers_gauge_->set(alive);
  slots_gauge_->set(offered);
  if (w.leaving) {
    std::fprintf(stderr, "stream: worker %s left\n", w.id.c_str());
  } else {
    workers_lost_->add(1);
    std::fprintf(stderr, "stream: worker %s lost: %s\n", w.id.c_str(),
                 why.c_str());
  }
  bool hosted = std::any_of(tasks_.begin(), tasks_.end(), [&](const auto& t) {
    return t.worker == index && !t.down;
  });
  if (hosted && phase_ == phase::running)
    on_failure("tasks of worker " + w.id +
               (w.leaving ? " stopped: it left" : " are gone with it"));
}

}  // namespace stream::actors
