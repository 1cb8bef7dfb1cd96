#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "messages.hpp"
#include "stream/checkpoint/storage.hpp"
#include "stream/checkpoint/writer.hpp"
#include "stream/job_graph.hpp"
#include "stream/metrics.hpp"

namespace stream::actors {

/// What a worker needs. The pointed-to objects outlive it.
struct worker_config {
  const job_graph* graph = nullptr;
  const execution_plan* plan = nullptr;
  metrics_registry* registry = nullptr;
  job_options options;
  /// Local role: the coordinator in this process; the worker neither
  /// connects nor registers. Worker role: null, the worker connects to
  /// `options.coordinator` itself.
  caf::actor coordinator;
  /// Worker role: "host:port" where other workers reach this one.
  std::string address;
  /// Worker role: `environment::definition()` of the job it built, sent
  /// at registration.
  std::string definition;
  /// Worker role: hears `failed_atom(0, why)` when the coordinator refused
  /// this worker (nothing to retry), and `result_atom` once it quit.
  caf::actor runner;
};

/// Hosts task actors for the coordinator: the task slots of a process.
///
/// Worker role protocol: connect to the coordinator (retried with backoff
/// until it is up), `register(id, address, slots, protocol, definition)`;
/// the coordinator answers with an empty string or why it refuses. Then
/// `deploy(attempt, restore folder, chains, subtasks, peers, tables)` spawns
/// task actors with the plan the coordinator shipped (`tables`, see
/// `execution_plan::encode_tables`) and answers with their handles, after
/// connecting to the peers (other workers of the deployment) so that data flows
/// directly between workers. When the coordinator goes away the worker kills
/// its tasks and connects again; `stop` from the process says goodbye to the
/// coordinator first, so that the departure is not taken for a crash.
///
/// Runs detached: connecting blocks its thread, never a scheduler thread.
class worker final : public caf::event_based_actor {
 public:
  worker(caf::actor_config& cfg, worker_config config);

  caf::behavior make_behavior() override;
  void on_exit() override;
  const char* name() const override { return "stream.worker"; }

 private:
  using clock = std::chrono::steady_clock;

  void try_connect();
  void on_coordinator_lost(const std::string& why);
  std::vector<caf::actor> deploy(std::uint32_t attempt,
                                 const std::string& restore_folder,
                                 const std::vector<std::uint32_t>& chains,
                                 const std::vector<std::uint32_t>& subtasks,
                                 const std::vector<std::string>& peers,
                                 const execution_plan* plan);
  /// The plan the coordinator shipped: this worker's plan with its tables;
  /// kept as long as the worker lives, since tasks refer to it.
  caf::expected<const execution_plan*> shipped_plan(
      const std::vector<std::uint32_t>& tables);
  void connect_peers(const std::vector<std::string>& peers);
  void kill_tasks();
  caf::expected<caf::actor> connect_to(const std::string& host,
                                       std::uint16_t port);
  std::shared_ptr<const checkpoint::restore_point> restore_point_of(
      const std::string& folder);

  worker_config config_;
  std::shared_ptr<checkpoint::storage> storage_;
  std::shared_ptr<checkpoint::background_writer> writer_;
  caf::actor coordinator_;
  bool registered_ = false;
  bool stopping_ = false;
  std::uint32_t connect_failures_ = 0;
  std::chrono::milliseconds backoff_{100};
  std::vector<caf::actor> tasks_;
  std::map<std::string, caf::actor> peers_;
  std::shared_ptr<const checkpoint::restore_point> restore_;
  /// Every plan shipped so far (one per change of tables, a few per run),
  /// and the encoding of the newest.
  std::vector<std::unique_ptr<const execution_plan>> plans_;
  std::vector<std::uint32_t> plan_tables_;
  struct pending_deploy {
    caf::typed_response_promise<std::vector<caf::actor>> promise;
    std::uint32_t attempt = 0;
    std::string restore_folder;
    std::vector<std::uint32_t> chains;
    std::vector<std::uint32_t> subtasks;
    std::vector<std::string> peers;
    const execution_plan* plan = nullptr;
  };
  /// Deploy requests waiting for the tasks of an earlier attempt to end.
  std::vector<pending_deploy> pending_;
};

/// Splits "host:port"; false when it is not of that form.
bool split_host_port(const std::string& text, std::string& host,
                     std::uint16_t& port);

}  // namespace stream::actors
