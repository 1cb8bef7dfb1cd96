// The coordinator and worker roles: the same job, spread over processes.

#include <unistd.h>

#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <cstdio>

#include "coordinator.hpp"
#include "messages.hpp"
#include "runtime_internal.hpp"
#include "stream/http_server.hpp"
#include "stream/metrics.hpp"
#include "stream/metrics_server.hpp"
#include "worker.hpp"

namespace stream::detail {

namespace {

std::string host_name() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "localhost";
  return buf;
}

/// Outside the local role every edge between chains may cross processes:
/// its records need a codec.
status check_codecs(const job_graph& graph, const execution_plan& plan) {
  for (const auto& e : graph.edges()) {
    if (plan.edge(e.id).chained) continue;
    const auto& to = graph.at(e.to);
    if (to.in_type && to.in_type->encode) continue;
    return status{errc::invalid_config,
                  "the records from '" + plan.name_of(e.from) + "' to '" +
                      plan.name_of(e.to) +
                      "' have no codec, so they cannot cross processes: "
                      "declare STREAM_FIELDS for the record type, or run in "
                      "the local role"};
  }
  return {};
}

/// The plan of a job whose chains may sit in different processes.
result<execution_plan> cluster_plan(const environment& env) {
  auto plan = execution_plan::build(env.graph(), env.options(), env.chaining());
  if (!plan) return plan.error();
  if (auto st = check_codecs(env.graph(), *plan); !st.ok()) return st;
  return plan;
}

caf::expected<std::uint16_t> publish(caf::actor_system& sys,
                                     const caf::actor& whom, std::uint16_t port,
                                     const job_options& options) {
  // reuse_addr: a restarted process must not fail on TIME_WAIT.
  if (!options.tls_cert.empty())
    return caf::openssl::publish(whom, port, nullptr, true);
  return sys.middleman().publish(whom, port, nullptr, true);
}

/// The restore point of a (re)started coordinator: --restore if given, else
/// the newest usable checkpoint of this job in the checkpoint directory (a
/// coordinator that crashed resumes its job), else none.
result<std::shared_ptr<const checkpoint::restore_point>> recovery_point(
    const environment& env, const execution_plan& plan) {
  const auto& options = env.options();
  if (!options.restore.empty()) return resolve_restore(env, plan);
  checkpoint::storage store{options.checkpoint_dir, options.savepoint_dir,
                            options.job_name};
  std::vector<std::string> skipped;
  auto latest = store.latest(env.graph().fingerprint(), skipped);
  for (const auto& s : skipped) std::fprintf(stderr, "stream: %s\n", s.c_str());
  if (!latest) {
    if (latest.error().code() == errc::not_found && skipped.empty())
      return std::shared_ptr<const checkpoint::restore_point>{};
    return status{latest.error().code(), "cannot recover job '" +
                                             options.job_name + "' from '" +
                                             options.checkpoint_dir +
                                             "': " + latest.error().message()};
  }
  std::string warning;
  if (auto st =
          checkpoint::check_resumable(*latest, options.restore_final, warning);
      !st.ok())
    return status{st.code(), "cannot recover job '" + options.job_name +
                                 "': " + st.message()};
  if (!warning.empty()) std::fprintf(stderr, "stream: %s\n", warning.c_str());
  if (auto st = check_restorable(env, plan, *latest); !st.ok())
    return status{st.code(), "cannot recover job '" + options.job_name +
                                 "': " + st.message()};
  std::fprintf(stderr,
               "stream: recovering job '%s' from %s %lld in %s (a "
               "coordinator resumes its job; use another --job-name or "
               "--checkpoint-dir to start over)\n",
               options.job_name.c_str(),
               latest->meta.kind == checkpoint::snapshot_kind::savepoint
                   ? "savepoint"
                   : "checkpoint",
               static_cast<long long>(latest->meta.id), latest->folder.c_str());
  return std::shared_ptr<const checkpoint::restore_point>{
      std::make_shared<checkpoint::restore_point>(std::move(*latest))};
}

/// The REST API: handlers run on the HTTP server's threads and only talk to
/// the coordinator by message, each wait bounded.
std::vector<http_server::route> rest_routes(caf::actor_system& sys,
                                            const caf::actor& coordinator,
                                            const job_options& options) {
  auto ask = [&sys, coordinator](auto atom, std::chrono::milliseconds timeout,
                                 int ok_status) {
    return [&sys, coordinator, atom, timeout,
            ok_status](const http_request&) -> http_response {
      caf::scoped_actor self{sys};
      http_response out;
      self->request(coordinator, timeout, atom)
          .receive(
              [&](const std::string& json) {
                out.status =
                    json.rfind(R"({"error")", 0) == 0 ? 500 : ok_status;
                out.body = json;
              },
              [&](const caf::error& err) {
                out = json_error(
                    503, "the coordinator did not answer: " + sys.render(err));
              });
      return out;
    };
  };
  std::vector<http_server::route> routes;
  routes.push_back(
      {"GET", "/api/v1/job",
       ask(actors::status_atom::value, std::chrono::seconds{5}, 200)});
  routes.push_back(
      {"GET", "/api/v1/checkpoints",
       ask(actors::history_atom::value, std::chrono::seconds{5}, 200)});
  // A savepoint takes as long as a checkpoint may, plus the wait for a
  // running one.
  auto savepoint_wait =
      2 * options.checkpoint_timeout + std::chrono::milliseconds{5000};
  routes.push_back(
      {"POST", "/api/v1/savepoints",
       [&sys, coordinator, savepoint_wait](const http_request&) {
         caf::scoped_actor self{sys};
         http_response out;
         self->request(coordinator, savepoint_wait,
                       actors::savepoint_atom::value, std::string{"rest"})
             .receive(
                 [&](const std::string& json) {
                   out.status = json.rfind(R"({"error")", 0) == 0 ? 500 : 200;
                   out.body = json;
                 },
                 [&](const caf::error& err) {
                   out = json_error(503, "no savepoint: " + sys.render(err));
                 });
         return out;
       }});
  routes.push_back(
      {"POST", "/api/v1/cancel", [&sys, coordinator](const http_request&) {
         caf::anon_send(coordinator, actors::cancel_atom::value);
         http_response out;
         out.status = 202;
         out.body = R"({"state":"cancelling"})";
         return out;
       }});
  return routes;
}

}  // namespace

result<job_report> execute_coordinator(environment& env,
                                       const execution_hooks& hooks) {
  const auto& options = env.options();
  auto plan = cluster_plan(env);
  if (!plan) return plan.error();
  if (auto st = check_storage(options); !st.ok()) return st;
  auto lock = lock_job_folder(options, "coordinator");
  if (!lock) return lock.error();
  if (auto st = env.graph().run_checks(options); !st.ok()) return st;
  auto restore = recovery_point(env, *plan);
  if (!restore) return restore.error();
  if (*restore) {
    if (auto st = adopt_tables(*plan, **restore, options); !st.ok()) return st;
  }
  auto registry =
      hooks.registry ? hooks.registry : std::make_shared<metrics_registry>();

  caf::actor_system_config cfg;
  configure_system(cfg, options, true);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  actors::coordinator_config cc;
  cc.graph = &env.graph();
  cc.plan = &*plan;
  cc.registry = registry.get();
  cc.options = options;
  cc.restore = *restore;
  cc.runner = self;
  cc.local = false;
  cc.definition = env.definition();
  auto coordinator =
      sys.spawn<actors::coordinator, caf::detached>(std::move(cc));
  auto port = publish(sys, coordinator, options.cluster_port, options);
  if (!port) {
    self->send_exit(coordinator, caf::exit_reason::kill);
    return status{errc::io_error, "cannot listen for workers on port " +
                                      std::to_string(options.cluster_port) +
                                      ": " + sys.render(port.error())};
  }
  std::fprintf(stderr,
               "stream: coordinator of job '%s' listening for workers on port "
               "%u%s\n",
               options.job_name.c_str(), static_cast<unsigned>(*port),
               options.tls_cert.empty() ? "" : " (TLS)");
  if (hooks.on_cluster_ready) hooks.on_cluster_ready(*port);
  std::unique_ptr<http_server> rest;
  if (!options.rest_address.empty()) {
    http_server::config hc;
    hc.address = options.rest_address;
    hc.port = options.rest_port;
    hc.bearer_token = options.rest_token;
    hc.registry = registry;
    auto started =
        http_server::start(hc, rest_routes(sys, coordinator, options));
    if (!started) {
      self->send_exit(coordinator, caf::exit_reason::kill);
      return started.error();
    }
    rest = std::move(*started);
    std::fprintf(stderr,
                 "stream: REST API at http://%s:%u/api/v1/job%s, metrics at "
                 "/metrics\n",
                 options.rest_address.c_str(),
                 static_cast<unsigned>(rest->port()),
                 options.rest_token.empty() ? "" : " (bearer token required)");
    if (hooks.on_rest_ready) hooks.on_rest_ready(rest->port());
  }
  auto report = supervise(self, coordinator, env, *plan, hooks, nullptr);
  rest.reset();  // before the actor system its handlers talk to
  return report;
}

result<job_report> execute_worker(environment& env,
                                  const execution_hooks& hooks) {
  auto options = env.options();
  auto plan = cluster_plan(env);
  if (!plan) return plan.error();
  if (options.worker_id.empty())
    options.worker_id = host_name() + "-" + std::to_string(::getpid());
  auto registry =
      hooks.registry ? hooks.registry : std::make_shared<metrics_registry>();
  auto server = serve_metrics(registry, options, hooks);
  if (!server) return server.error();

  caf::actor_system_config cfg;
  configure_system(cfg, options, true);
  caf::actor_system sys{cfg};
  caf::scoped_actor self{sys};
  actors::worker_config wc;
  wc.graph = &env.graph();
  wc.plan = &*plan;
  wc.registry = registry.get();
  wc.options = options;
  wc.runner = self;
  wc.definition = env.definition();
  auto worker = sys.spawn<actors::worker, caf::detached>(std::move(wc));
  self->monitor(worker);
  // Other workers send data here.
  auto port = publish(sys, worker, options.data_port, options);
  if (!port) {
    self->send_exit(worker, caf::exit_reason::kill);
    return status{errc::io_error, "cannot listen for data on port " +
                                      std::to_string(options.data_port) + ": " +
                                      sys.render(port.error())};
  }
  auto host =
      options.advertise_host.empty() ? host_name() : options.advertise_host;
  self->send(worker, actors::connect_atom::value,
             host + ":" + std::to_string(*port));

  status failure;
  bool done = false;
  bool stop_sent = false;
  job_report report;
  const auto start = std::chrono::steady_clock::now();
  while (!done) {
    self->receive(
        [&](actors::failed_atom, std::uint32_t, const std::string& why) {
          failure = status{errc::invalid_config,
                           "the coordinator refused this worker: " + why};
        },
        [&](actors::result_atom) {}, [&](caf::down_msg&) { done = true; },
        caf::after(std::chrono::milliseconds(100)) >> [] {});
    if (!stop_sent && hooks.stop != nullptr && hooks.stop->load()) {
      stop_sent = true;
      report.stopped = true;
      self->send(worker, actors::stop_atom::value);
    }
  }
  if (!failure.ok()) return failure;
  report.elapsed = std::chrono::steady_clock::now() - start;
  return report;
}

}  // namespace stream::detail
