#include <algorithm>
#include <cstdio>
#include <thread>

#include "messages.hpp"
#include "stream/metrics.hpp"
#include "stream/metrics_server.hpp"
#include "stream/run.hpp"
#include "task_actor.hpp"

namespace stream {

namespace {

using clock = std::chrono::steady_clock;

struct deployed_task {
  caf::actor handle;
  std::uint32_t chain = 0;
  bool is_source = false;
};

caf::actor_system_config make_config(const job_options& options) {
  caf::actor_system_config cfg;
  auto threads = options.threads != 0
                     ? options.threads
                     : std::max(1U, std::thread::hardware_concurrency());
  cfg.set("scheduler.max-threads", static_cast<size_t>(threads));
  // A busy actor gives its thread up after this many messages, so timers
  // and the runner are never starved (CAF-NOTES: unlimited starved a timer
  // for a second; 100-1000 cost nothing measurable).
  cfg.set("scheduler.max-throughput", static_cast<size_t>(100));
  return cfg;
}

std::vector<deployed_task> deploy(caf::actor_system& sys,
                                  const caf::actor& runner,
                                  const job_graph& graph,
                                  const execution_plan& plan,
                                  metrics_registry& registry,
                                  const job_options& options) {
  std::vector<deployed_task> tasks;
  std::vector<std::vector<caf::actor>> by_chain(plan.chains().size());
  for (const auto& c : plan.chains()) {
    for (std::uint32_t s = 0; s < c.parallelism; ++s) {
      actors::task_actor_config cfg{&graph, &plan, &registry, options,
                                    c.id,   s,     runner};
      auto a = sys.spawn<actors::task_actor>(std::move(cfg));
      by_chain[c.id].push_back(a);
      bool source =
          graph.at(c.nodes.front()).kind == job_graph::node_kind::source;
      tasks.push_back({a, c.id, source});
    }
  }
  // Every channel is numbered by the plan at both ends; wiring tells each
  // task the peer actor and the peer's channel number.
  for (const auto& c : plan.chains()) {
    for (std::uint32_t s = 0; s < c.parallelism; ++s) {
      std::vector<caf::actor> outs;
      std::vector<std::uint32_t> out_peer;
      for (const auto& ref : plan.outputs(c.id, s)) {
        outs.push_back(
            by_chain[plan.edge(ref.edge).to_chain][ref.peer_subtask]);
        out_peer.push_back(plan.input_channel(ref.edge, s));
      }
      std::vector<caf::actor> ins;
      std::vector<std::uint32_t> in_peer;
      for (const auto& ref : plan.inputs(c.id, s)) {
        ins.push_back(
            by_chain[plan.edge(ref.edge).from_chain][ref.peer_subtask]);
        in_peer.push_back(plan.output_channel(ref.edge, s));
      }
      caf::anon_send(by_chain[c.id][s], actors::wire_atom::value,
                     std::move(outs), std::move(out_peer), std::move(ins),
                     std::move(in_peer));
    }
  }
  return tasks;
}

std::uint64_t source_records(const metrics_registry& registry,
                             const job_graph& graph,
                             const execution_plan& plan) {
  std::vector<std::string> names;
  for (const auto& n : graph.nodes()) {
    if (n.kind == job_graph::node_kind::source)
      names.push_back(plan.name_of(n.id));
  }
  double total = 0;
  for (const auto& f : registry.snapshot()) {
    if (f.name != "stream_records_out_total") continue;
    for (const auto& s : f.samples) {
      for (const auto& [k, v] : s.labels) {
        if (k == "operator" &&
            std::find(names.begin(), names.end(), v) != names.end())
          total += s.value;
      }
    }
  }
  return static_cast<std::uint64_t>(total);
}

}  // namespace

result<job_report> execute(environment& env, const execution_hooks& hooks) {
  const auto& options = env.options();
  auto plan = execution_plan::build(env.graph(), options, env.chaining());
  if (!plan) return plan.error();
  auto registry =
      hooks.registry ? hooks.registry : std::make_shared<metrics_registry>();
  std::unique_ptr<metrics_server> server;
  if (!options.metrics_address.empty()) {
    auto started = metrics_server::start(registry, options.metrics_address,
                                         options.metrics_port);
    if (!started) return started.error();
    server = std::move(*started);
    if (hooks.on_metrics_ready) hooks.on_metrics_ready(server->port());
  }

  caf::actor_system_config cfg = make_config(options);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  const auto start = clock::now();
  auto tasks = deploy(sys, self, env.graph(), *plan, *registry, options);
  for (auto& t : tasks) {
    self->monitor(t.handle);
    self->send(t.handle, actors::start_atom::value);
  }

  std::size_t running = tasks.size();
  status failure;
  std::string unexpected;
  bool stop_sent = false;
  auto next_status = start + options.status_interval;
  auto stop_all = [&](bool kill) {
    for (auto& t : tasks) {
      if (kill)
        self->send_exit(t.handle, caf::exit_reason::kill);
      else if (t.is_source)
        self->send<caf::message_priority::high>(t.handle,
                                                actors::stop_atom::value);
    }
  };
  // Bounded wait: every iteration ends within 100 ms, so a stop request or
  // a status line is never late by more than that.
  while (running > 0) {
    self->receive([&](actors::done_atom, std::uint32_t, std::uint32_t) {},
                  [&](actors::failed_atom, const std::string& what) {
                    if (failure.ok()) {
                      failure = status{errc::operator_failed, what};
                      stop_all(true);
                    }
                  },
                  [&](caf::down_msg& down) {
                    --running;
                    if (down.reason &&
                        down.reason != caf::exit_reason::normal &&
                        unexpected.empty()) {
                      unexpected = caf::to_string(down.reason);
                      stop_all(true);
                    }
                  },
                  caf::after(std::chrono::milliseconds(100)) >> [] {});
    bool expired = options.stop_after.count() > 0 &&
                   clock::now() - start >= options.stop_after;
    if (!stop_sent &&
        (expired || (hooks.stop != nullptr && hooks.stop->load()))) {
      stop_sent = true;
      stop_all(false);
    }
    if (options.status_interval.count() > 0 && clock::now() >= next_status) {
      next_status += options.status_interval;
      auto secs = std::chrono::duration<double>(clock::now() - start).count();
      auto n = source_records(*registry, env.graph(), *plan);
      std::fprintf(stderr,
                   "stream: %.0fs, %llu records from sources (%.0f/s)\n", secs,
                   static_cast<unsigned long long>(n),
                   secs > 0 ? static_cast<double>(n) / secs : 0.0);
    }
  }
  // A failing task reports why before it quits; collect a report that is
  // still in the mailbox before settling for the bare exit reason.
  if (failure.ok() && !unexpected.empty()) {
    self->receive(
        [&](actors::failed_atom, const std::string& what) {
          failure = status{errc::operator_failed, what};
        },
        caf::after(std::chrono::milliseconds(0)) >> [] {});
    if (failure.ok())
      failure = status{errc::operator_failed,
                       "a task ended unexpectedly: " + unexpected};
  }
  if (!failure.ok()) return failure;
  job_report report;
  report.elapsed = clock::now() - start;
  report.source_records = source_records(*registry, env.graph(), *plan);
  report.stopped = stop_sent;
  return report;
}

}  // namespace stream
