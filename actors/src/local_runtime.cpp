#include <algorithm>
#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "coordinator.hpp"
#include "messages.hpp"
#include "runtime_internal.hpp"
#include "stream/detail/text_io.hpp"
#include "stream/metrics.hpp"
#include "stream/metrics_server.hpp"
#include "stream/rescale.hpp"
#include "stream/run.hpp"

namespace stream {

namespace {

using clock = std::chrono::steady_clock;

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

namespace detail {

void configure_system(caf::actor_system_config& cfg, const job_options& options,
                      bool networked) {
  auto threads = options.threads != 0
                     ? options.threads
                     : std::max(1U, std::thread::hardware_concurrency());
  cfg.set("scheduler.max-threads", static_cast<size_t>(threads));
  // A busy actor gives its thread up after this many messages, so timers
  // and the coordinator are never starved (CAF-NOTES: unlimited starved a
  // timer for a second; 100-1000 cost nothing measurable).
  cfg.set("scheduler.max-throughput", static_cast<size_t>(100));
  actors::register_message_types(cfg);
  if (!networked) return;
  cfg.load<caf::io::middleman>();
  // Off by default in CAF 0.17: without them a hung peer is never noticed.
  cfg.set("middleman.heartbeat-interval",
          caf::timespan{options.heartbeat_interval});
  cfg.set("middleman.connection-timeout", caf::timespan{options.peer_timeout});
  if (!options.tls_cert.empty()) {
    cfg.load<caf::openssl::manager>();
    cfg.openssl_certificate = options.tls_cert;
    cfg.openssl_key = options.tls_key;
    cfg.openssl_cafile = options.tls_ca;
  }
}

status check_restorable(const environment& env, const execution_plan& plan,
                        const checkpoint::restore_point& point) {
  const auto& options = env.options();
  if (point.meta.max_parallelism != options.max_parallelism)
    return status{errc::invalid_config,
                  "checkpoint '" + point.folder + "' was taken with " +
                      std::to_string(point.meta.max_parallelism) +
                      " key groups (--max-parallelism), this job has " +
                      std::to_string(options.max_parallelism) +
                      ": key groups cannot be renumbered, run it with "
                      "--max-parallelism " +
                      std::to_string(point.meta.max_parallelism)};
  for (const auto& c : plan.chains()) {
    for (auto id : c.nodes) {
      const auto* op = point.meta.find(id);
      if (op == nullptr || op->parallelism == c.parallelism) continue;
      if (env.graph().at(id).kind == job_graph::node_kind::operator_) continue;
      return status{errc::invalid_config,
                    "'" + op->name + "' ran with parallelism " +
                        std::to_string(op->parallelism) + " in '" +
                        point.folder + "', now " +
                        std::to_string(c.parallelism) +
                        ": sources and sinks must keep their parallelism"};
    }
  }
  return status::success();
}

status adopt_tables(execution_plan& plan,
                    const checkpoint::restore_point& point,
                    const job_options& options) {
  auto policy = parse_rescale_plan(options.rescale_plan);
  if (!policy) return policy.error();
  auto next = plan_for_restore(plan, point.meta, *policy);
  if (!next) return next.error();
  for (const auto& c : next->changes) {
    std::fprintf(stderr,
                 "stream: '%s' rescaled from %u to %u subtasks: %u of %u key "
                 "groups change owner (--rescale-plan %s, table v%llu)\n",
                 c.chain.c_str(), c.from, c.to, c.moved, c.key_groups,
                 options.rescale_plan.c_str(),
                 static_cast<unsigned long long>(c.version));
  }
  plan = std::move(next->plan);
  return status::success();
}

result<std::shared_ptr<const checkpoint::restore_point>> resolve_restore(
    const environment& env, const execution_plan& plan) {
  const auto& options = env.options();
  if (options.restore.empty())
    return std::shared_ptr<const checkpoint::restore_point>{};
  std::vector<std::string> skipped;
  auto point = checkpoint::resolve(options.restore, options.job_name,
                                   env.graph().fingerprint(), skipped);
  for (const auto& s : skipped) std::fprintf(stderr, "stream: %s\n", s.c_str());
  if (!point) return point.error();
  std::string warning;
  if (auto st =
          checkpoint::check_resumable(*point, options.restore_final, warning);
      !st.ok())
    return st;
  if (!warning.empty()) std::fprintf(stderr, "stream: %s\n", warning.c_str());
  if (auto st = check_restorable(env, plan, *point); !st.ok()) return st;
  std::fprintf(stderr, "stream: restoring %s %lld from %s\n",
               point->meta.kind == checkpoint::snapshot_kind::savepoint
                   ? "savepoint"
                   : "checkpoint",
               static_cast<long long>(point->meta.id), point->folder.c_str());
  return std::shared_ptr<const checkpoint::restore_point>{
      std::make_shared<checkpoint::restore_point>(std::move(*point))};
}

status check_storage(const job_options& options) {
  checkpoint::storage store{options.checkpoint_dir, options.savepoint_dir,
                            options.job_name};
  if (options.checkpoint_interval.count() > 0) {
    if (auto st = check_writable_directory(store.root(), "--checkpoint-dir");
        !st.ok())
      return st;
  }
  if (!options.drain_on_stop) {
    // A stop takes a savepoint: its folder must be writable too.
    auto root =
        std::filesystem::path{
            store.folder(1, checkpoint::snapshot_kind::savepoint)}
            .parent_path()
            .string();
    if (auto st = check_writable_directory(
            root, options.savepoint_dir.empty()
                      ? "--checkpoint-dir (savepoints on stop)"
                      : "--savepoint-dir");
        !st.ok())
      return st;
  }
  return {};
}

result<std::optional<checkpoint::job_lock>> lock_job_folder(
    const job_options& options, const std::string& role) {
  if (options.checkpoint_interval.count() <= 0) {
    return std::optional<checkpoint::job_lock>{};
  }
  checkpoint::storage store{options.checkpoint_dir, options.savepoint_dir,
                            options.job_name};
  auto lock = checkpoint::job_lock::acquire(store.root(), role);
  if (!lock) return lock.error();
  return std::optional<checkpoint::job_lock>{std::move(*lock)};
}

result<std::unique_ptr<metrics_server>> serve_metrics(
    std::shared_ptr<metrics_registry> registry, const job_options& options,
    const execution_hooks& hooks) {
  if (options.metrics_address.empty()) return std::unique_ptr<metrics_server>{};
  auto started = metrics_server::start(
      std::move(registry), options.metrics_address, options.metrics_port);
  if (!started) return started.error();
  if (hooks.on_metrics_ready) hooks.on_metrics_ready((*started)->port());
  return started;
}

result<job_report> supervise(caf::scoped_actor& self,
                             const caf::actor& coordinator,
                             const environment& env, const execution_plan& plan,
                             const execution_hooks& hooks,
                             const metrics_registry* registry) {
  const auto& options = env.options();
  const auto start = clock::now();
  self->monitor(coordinator);
  bool stop_sent = false;
  bool done = false;
  std::uint32_t savepoints_seen =
      hooks.savepoints != nullptr ? hooks.savepoints->load() : 0;
  status failure;
  job_report report;
  auto next_status = start + options.status_interval;
  // Bounded wait: every iteration ends within 100 ms, so a stop request or
  // a status line is never late by more than that.
  while (!done) {
    self->receive(
        [&](actors::result_atom, std::uint8_t code, const std::string& message,
            bool stopped, const std::string& savepoint,
            std::uint32_t restarts) {
          if (code != 0) failure = status{static_cast<errc>(code), message};
          report.stopped = stopped;
          report.savepoint = savepoint;
          report.restarts = restarts;
        },
        [&](caf::down_msg& down) {
          done = true;
          if (failure.ok() && down.reason &&
              down.reason != caf::exit_reason::normal)
            failure = status{errc::internal, "the coordinator failed: " +
                                                 caf::to_string(down.reason)};
        },
        caf::after(std::chrono::milliseconds(100)) >> [] {});
    bool expired = options.stop_after.count() > 0 &&
                   clock::now() - start >= options.stop_after;
    if (!stop_sent &&
        (expired || (hooks.stop != nullptr && hooks.stop->load()))) {
      stop_sent = true;
      self->send(coordinator, actors::stop_atom::value);
    }
    if (hooks.savepoints != nullptr) {
      auto n = hooks.savepoints->load();
      if (n != savepoints_seen) {
        savepoints_seen = n;
        self->send(coordinator, actors::savepoint_atom::value);
      }
    }
    if (registry != nullptr && options.status_interval.count() > 0 &&
        clock::now() >= next_status) {
      next_status += options.status_interval;
      auto secs = std::chrono::duration<double>(clock::now() - start).count();
      auto n = source_records(*registry, env.graph(), plan);
      std::fprintf(stderr,
                   "stream: %.0fs, %llu records from sources (%.0f/s)\n", secs,
                   static_cast<unsigned long long>(n),
                   secs > 0 ? static_cast<double>(n) / secs : 0.0);
    }
  }
  if (!failure.ok()) return failure;
  report.elapsed = clock::now() - start;
  if (registry != nullptr)
    report.source_records = source_records(*registry, env.graph(), plan);
  return report;
}

}  // namespace detail

result<job_report> execute(environment& env, const execution_hooks& hooks) {
  const auto& options = env.options();
  if (options.role == "coordinator")
    return detail::execute_coordinator(env, hooks);
  if (options.role == "worker") return detail::execute_worker(env, hooks);
  auto plan = execution_plan::build(env.graph(), options, env.chaining());
  if (!plan) return plan.error();
  if (auto st = detail::check_storage(options); !st.ok()) return st;
  auto lock = detail::lock_job_folder(options, "local role");
  if (!lock) return lock.error();
  if (auto st = env.graph().run_checks(options); !st.ok()) return st;
  auto restore = detail::resolve_restore(env, *plan);
  if (!restore) return restore.error();
  if (*restore) {
    if (auto st = detail::adopt_tables(*plan, **restore, options); !st.ok())
      return st;
  }
  auto registry =
      hooks.registry ? hooks.registry : std::make_shared<metrics_registry>();
  auto server = detail::serve_metrics(registry, options, hooks);
  if (!server) return server.error();

  caf::actor_system_config cfg;
  detail::configure_system(cfg, options, false);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  actors::coordinator_config cc;
  cc.graph = &env.graph();
  cc.plan = &*plan;
  cc.registry = registry.get();
  cc.options = options;
  cc.restore = *restore;
  cc.runner = self;
  // Detached: its own thread, so checkpoints and failover never wait behind
  // busy tasks (a busy actor that yields is resumed first by the
  // work-stealing scheduler, which starved the coordinator on one thread).
  auto coordinator =
      sys.spawn<actors::coordinator, caf::detached>(std::move(cc));
  return detail::supervise(self, coordinator, env, *plan, hooks,
                           registry.get());
}

}  // namespace stream
