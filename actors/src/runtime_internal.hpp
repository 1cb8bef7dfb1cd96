#pragma once

// Pieces shared by the three roles' entry points (local_runtime.cpp,
// cluster_runtime.cpp). Not a public header.

#include <caf/all.hpp>
#include <memory>
#include <optional>
#include <string>

#include "stream/checkpoint/job_lock.hpp"
#include "stream/checkpoint/storage.hpp"
#include "stream/environment.hpp"
#include "stream/job_graph.hpp"
#include "stream/metrics_server.hpp"
#include "stream/run.hpp"

namespace stream::detail {

/// Scheduler settings and the message types of every role; with
/// `networked`, the middleman with heartbeats and, when configured, TLS.
void configure_system(caf::actor_system_config& cfg, const job_options& options,
                      bool networked);

/// Checks that the job can restore `point`: the same max parallelism (key
/// groups are never renumbered; the message names both values) and, for
/// sources and sinks, whose state is per subtask, the same parallelism.
/// `errc::invalid_config` otherwise.
status check_restorable(const environment& env, const execution_plan& plan,
                        const checkpoint::restore_point& point);

/// Gives `plan` the key-group tables of `point` (see `plan_for_restore`,
/// with `options.rescale_plan`) and prints one line per table that changed:
/// its chain, the parallelism before and after, how many key groups move.
status adopt_tables(execution_plan& plan,
                    const checkpoint::restore_point& point,
                    const job_options& options);

/// Resolves --restore and checks it with `check_restorable`. Null without
/// --restore.
result<std::shared_ptr<const checkpoint::restore_point>> resolve_restore(
    const environment& env, const execution_plan& plan);

/// Start-up check that the folders a job writes its checkpoints (when
/// periodic checkpoints are on) and savepoints (unless a stop drains) to
/// can be written, so that a wrong folder fails before any input is read.
status check_storage(const job_options& options);

/// With periodic checkpoints on, takes the exclusive lock of the job's
/// checkpoint folder for the life of the returned value (none without
/// them), so that a second run of the job on the same folder is refused
/// (`errc::invalid_config`, naming the holder) instead of interleaving its
/// checkpoints with this one's. `role` describes this process to the next.
result<std::optional<checkpoint::job_lock>> lock_job_folder(
    const job_options& options, const std::string& role);

/// Serves /metrics of `registry` as the options say (none for an empty
/// address) and tells `hooks` the port.
result<std::unique_ptr<metrics_server>> serve_metrics(
    std::shared_ptr<metrics_registry> registry, const job_options& options,
    const execution_hooks& hooks);

/// Waits for the coordinator's `result`, forwarding stop and savepoint
/// requests from `hooks` and printing status lines when `registry` holds
/// the tasks' metrics (local role).
result<job_report> supervise(caf::scoped_actor& self,
                             const caf::actor& coordinator,
                             const environment& env, const execution_plan& plan,
                             const execution_hooks& hooks,
                             const metrics_registry* registry);

result<job_report> execute_coordinator(environment& env,
                                       const execution_hooks& hooks);
result<job_report> execute_worker(environment& env,
                                  const execution_hooks& hooks);

}  // namespace stream::detail
