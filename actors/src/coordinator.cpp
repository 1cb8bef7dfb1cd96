#include "coordinator.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "worker.hpp"

namespace stream::actors {

namespace {

constexpr double ns_to_seconds = 1e-9;
/// Checkpoints kept in the REST API's history.
constexpr std::size_t history_size = 50;

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

coordinator::coordinator(caf::actor_config& cfg, coordinator_config config)
    : caf::event_based_actor(cfg),
      config_(std::move(config)),
      storage_(std::make_shared<checkpoint::storage>(
          config_.options.checkpoint_dir, config_.options.savepoint_dir,
          config_.options.job_name)),
      writer_(std::make_shared<checkpoint::background_writer>(1)),
      policy_(config_.options),
      fingerprint_(config_.graph->fingerprint()) {
  const auto& plan = *config_.plan;
  std::uint32_t offset = 0;
  for (const auto& c : plan.chains()) {
    chain_offset_.push_back(offset);
    offset += c.parallelism;
  }
  next_id_ = storage_->highest_id() + 1;
  if (config_.restore) {
    next_id_ = std::max(next_id_, config_.restore->meta.id + 1);
    completed_.push_back(*config_.restore);
  }
  metric_labels labels{{"job", config_.options.job_name}};
  auto& r = *config_.registry;
  completed_total_ =
      &r.get_counter("stream_checkpoints_completed_total",
                     "Checkpoints and savepoints completed.", labels);
  // Created per reason on first use; listed here so that every reason shows
  // up at zero.
  for (const char* reason : {"timeout", "declined", "failover", "storage"}) {
    auto l = labels;
    l.emplace_back("reason", reason);
    r.get_counter("stream_checkpoints_failed_total",
                  "Checkpoints aborted, by reason.", l);
  }
  restarts_total_ =
      &r.get_counter("stream_restarts_total",
                     "Times the job was restarted after a failure.", labels);
  recovery_ns_total_ = &r.get_counter(
      "stream_recovery_seconds_total",
      "Time from failures to every task running again with restored state.",
      labels, ns_to_seconds);
  in_progress_ =
      &r.get_gauge("stream_checkpoint_in_progress",
                   "1 while a checkpoint or savepoint is running.", labels);
  duration_ =
      &r.get_gauge("stream_checkpoint_duration_seconds",
                   "Trigger to completion of the last completed checkpoint.",
                   labels, ns_to_seconds);
  size_ = &r.get_gauge("stream_checkpoint_size_bytes",
                       "State bytes of the last completed checkpoint.", labels);
  alignment_ = &r.get_gauge(
      "stream_checkpoint_alignment_seconds",
      "Longest barrier alignment of any task in the last completed "
      "checkpoint.",
      labels, ns_to_seconds);
  sync_ = &r.get_gauge(
      "stream_checkpoint_sync_seconds",
      "Longest synchronous snapshot phase (processing paused) of any task "
      "in the last completed checkpoint.",
      labels, ns_to_seconds);
  async_ =
      &r.get_gauge("stream_checkpoint_async_seconds",
                   "Longest background write of any task in the last completed "
                   "checkpoint.",
                   labels, ns_to_seconds);
  last_id_ =
      &r.get_gauge("stream_checkpoint_last_completed_id",
                   "Id of the last completed checkpoint or savepoint.", labels);
  last_recovery_ =
      &r.get_gauge("stream_last_recovery_seconds",
                   "Failure to every task running again, for the last restart.",
                   labels, ns_to_seconds);
  first_record_ = &r.get_gauge(
      "stream_last_recovery_first_record_seconds",
      "Failure to the first record consumed again, for the last restart.",
      labels, ns_to_seconds);
  workers_gauge_ = &r.get_gauge(
      "stream_workers", "Worker processes registered and alive.", labels);
  slots_gauge_ = &r.get_gauge(
      "stream_task_slots", "Task slots offered by the live workers.", labels);
  workers_lost_ = &r.get_counter(
      "stream_workers_lost_total",
      "Workers that disappeared without saying goodbye (crash, kill, "
      "network).",
      labels);
}

caf::behavior coordinator::make_behavior() {
  set_down_handler([this](caf::down_msg& down) { on_down(down); });
  if (config_.local) {
    worker_config wc;
    wc.graph = config_.graph;
    wc.plan = config_.plan;
    wc.registry = config_.registry;
    wc.options = config_.options;
    wc.coordinator = this;
    worker_entry local;
    // Linked: neither outlives the other on a crash.
    local.handle = spawn<worker, caf::linked>(std::move(wc));
    local.id = "local";
    local.slots = UINT32_MAX;
    workers_.push_back(std::move(local));
  } else {
    std::fprintf(stderr, "stream: job '%s' needs %u task slots\n",
                 config_.options.job_name.c_str(), [&] {
                   std::uint32_t n = 0;
                   for (const auto& c : config_.plan->chains())
                     n = std::max(n, c.parallelism);
                   return n;
                 }());
  }
  deploy(config_.restore);
  if (config_.options.checkpoint_interval.count() > 0)
    delayed_send(this, config_.options.checkpoint_interval,
                 checkpoint_atom::value);
  return {
      [this](checkpoint_atom) {
        delayed_send(this, config_.options.checkpoint_interval,
                     checkpoint_atom::value);
        if (phase_ != phase::running || pending_ || !ready()) return;
        if (clock::now() - last_end_ < config_.options.checkpoint_min_pause)
          return;
        trigger(checkpoint::snapshot_kind::checkpoint, false, all_finished());
      },
      [this](savepoint_atom) {
        savepoint_requested_ = true;
        after_checkpoint();
      },
      [this](savepoint_atom, const std::string&) {
        auto rp = make_response_promise();
        if (phase_ == phase::stopping) {
          rp.deliver(std::string{R"({"error":"the job is stopping"})"});
          return;
        }
        savepoint_waiters_.push_back(rp);
        savepoint_requested_ = true;
        after_checkpoint();
      },
      [this](stop_atom) { on_stop(); },
      [this](stop_timeout_atom, std::uint32_t stage) {
        on_stop_timeout(stage);
      },
      [this](cancel_atom) { cancel(); },
      [this](status_atom) { return status_json(); },
      [this](history_atom) { return history_json(); },
      [this](register_atom, const std::string& id, const std::string& address,
             std::uint32_t slots, const std::string& protocol,
             const std::string& fingerprint) {
        return on_register(id, address, slots, protocol, fingerprint);
      },
      [this](goodbye_atom, const std::string&) {
        auto sender = current_sender();
        for (auto& w : workers_) {
          if (w.alive && w.handle &&
              w.handle.address() == caf::actor_cast<caf::actor_addr>(sender)) {
            w.leaving = true;
            std::fprintf(stderr, "stream: worker %s is leaving\n",
                         w.id.c_str());
          }
        }
      },
      [this](flowing_atom, std::uint32_t attempt) {
        if (attempt == 0 && !first_flow_seen_) {
          first_flow_seen_ = true;
          std::fprintf(stderr,
                       "stream: records flowing %.0f ms after the coordinator "
                       "started\n",
                       ms_between(started_at_, clock::now()));
        }
        if (attempt != attempt_ || !awaiting_flow_) return;
        awaiting_flow_ = false;
        auto took = clock::now() - failed_at_;
        first_record_->set(
            std::chrono::duration_cast<std::chrono::nanoseconds>(took).count());
        std::fprintf(stderr,
                     "stream: records flowing again %.0f ms after the failure "
                     "was detected\n",
                     ms_between(failed_at_, clock::now()));
      },
      [this](start_atom, std::uint32_t attempt) {
        if (attempt != attempt_) return;
        for (auto& t : tasks_) {
          if (t.handle.address() ==
              caf::actor_cast<caf::actor_addr>(current_sender()))
            t.started = true;
        }
        if (recovering_ &&
            std::all_of(tasks_.begin(), tasks_.end(),
                        [](const task_slot& t) { return t.started; })) {
          recovering_ = false;
          auto took = clock::now() - failed_at_;
          auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(took)
                        .count();
          last_recovery_->set(ns);
          recovery_ns_total_->add(static_cast<std::uint64_t>(ns));
        }
      },
      [this](ack_atom, snapshot_ack& ack) { on_ack(ack); },
      [this](decline_atom, std::uint32_t attempt, std::int64_t id,
             const std::string& why) {
        if (attempt != attempt_ || !pending_ || pending_->id != id) return;
        abort("declined: " + why, "declined");
      },
      [this](timeout_atom, std::uint32_t attempt, std::int64_t id) {
        if (attempt != attempt_ || !pending_ || pending_->id != id) return;
        abort("timed out after " + std::to_string(pending_->timeout.count()) +
                  " ms with " + std::to_string(pending_->acked_count) + " of " +
                  std::to_string(tasks_.size()) + " tasks acknowledged",
              "timeout");
      },
      [this](finished_atom, std::uint32_t attempt, std::uint32_t chain,
             std::uint32_t subtask) {
        if (attempt == attempt_) on_finished(chain, subtask);
      },
      [this](failed_atom, std::uint32_t attempt, const std::string& what) {
        if (attempt == attempt_) on_failure(what);
      },
      [this](restore_failed_atom, std::uint32_t attempt,
             const std::string& what) {
        if (attempt == attempt_) on_restore_failure(what);
      },
      [this](restart_atom, std::uint32_t attempt) {
        if (attempt != attempt_ || phase_ != phase::restarting) return;
        restart_due_ = true;
        if (alive_ == 0) redeploy();
      },
  };
}

std::size_t coordinator::index_of(std::uint32_t chain,
                                  std::uint32_t subtask) const {
  return chain_offset_.at(chain) + subtask;
}

bool coordinator::all_finished() const {
  return std::all_of(tasks_.begin(), tasks_.end(),
                     [](const task_slot& t) { return t.finished; });
}

void coordinator::trigger(checkpoint::snapshot_kind kind, bool stop,
                          bool final) {
  auto id = next_id_++;
  auto folder = storage_->create(id, kind);
  if (!folder) {
    std::fprintf(stderr, "stream: %s %lld not started: %s\n", kind_name(kind),
                 static_cast<long long>(id), folder.error().message().c_str());
    config_.registry
        ->get_counter(
            "stream_checkpoints_failed_total", "",
            {{"job", config_.options.job_name}, {"reason", "storage"}})
        .add(1);
    if (final) {
      failure_ = status{errc::io_error, "the final checkpoint failed: " +
                                            folder.error().message()};
      phase_ = phase::stopping;
      shutdown_all();
    }
    return;
  }
  pending_checkpoint p;
  p.id = id;
  p.kind = kind;
  p.folder = *folder;
  p.started = clock::now();
  p.acked.assign(tasks_.size(), false);
  p.stop = stop;
  p.final = final;
  p.timeout =
      config_.options.checkpoint_timeout * (final ? 1 << final_retries_ : 1);
  const auto timeout = p.timeout;
  pending_ = std::move(p);
  in_progress_->set(1);
  bool savepoint = kind == checkpoint::snapshot_kind::savepoint;
  for (auto& t : tasks_) {
    if ((t.source || t.finished) && t.live())
      send(t.handle, trigger_atom::value, id, savepoint);
  }
  delayed_send(this, timeout, timeout_atom::value, attempt_, id);
}

void coordinator::on_ack(snapshot_ack& ack) {
  if (ack.attempt != attempt_ || !pending_ || pending_->id != ack.id) {
    // A late acknowledgement of an aborted checkpoint: its folder is gone
    // or going; nothing refers to the files.
    return;
  }
  auto idx = index_of(ack.chain, ack.subtask);
  if (pending_->acked.at(idx)) return;
  pending_->acked[idx] = true;
  ++pending_->acked_count;
  pending_->acks.push_back(std::move(ack));
  if (pending_->acked_count == tasks_.size()) complete();
}

checkpoint::metadata coordinator::build_metadata(
    const pending_checkpoint& p) const {
  checkpoint::metadata meta;
  meta.job = config_.options.job_name;
  meta.fingerprint = fingerprint_;
  meta.id = p.id;
  meta.kind = p.kind;
  meta.created_ms = wall_ms();
  meta.max_parallelism = config_.options.max_parallelism;
  meta.final = p.final;
  meta.drained = p.final && drain_;
  meta.plan_version = config_.plan->version();
  std::map<std::uint32_t, checkpoint::metadata::operator_entry> ops;
  for (const auto& ack : p.acks) {
    for (const auto& h : ack.handles) {
      auto& op = ops[h.operator_id];
      op.id = h.operator_id;
      op.name = config_.plan->name_of(h.operator_id);
      const auto& chain = config_.plan->chains().at(ack.chain);
      op.parallelism = chain.parallelism;
      op.table_version = chain.key_groups->version();
      op.subtasks.push_back(h);
    }
  }
  for (auto& [id, op] : ops) {
    std::sort(
        op.subtasks.begin(), op.subtasks.end(),
        [](const auto& a, const auto& b) { return a.subtask < b.subtask; });
    meta.operators.push_back(std::move(op));
  }
  return meta;
}

void coordinator::complete() {
  auto p = std::move(*pending_);
  pending_.reset();
  in_progress_->set(0);
  auto meta = build_metadata(p);
  if (auto st = checkpoint::write_metadata(p.folder, meta); !st.ok()) {
    pending_ = std::move(p);
    abort("cannot write its metadata: " + st.message(), "storage");
    return;
  }
  auto now = clock::now();
  last_end_ = now;
  completed_total_->add(1);
  duration_->set(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now - p.started)
          .count());
  size_->set(static_cast<std::int64_t>(meta.state_bytes()));
  std::chrono::nanoseconds align{0}, sync{0}, async{0};
  for (const auto& a : p.acks) {
    align = std::max(align, a.alignment);
    sync = std::max(sync, a.sync);
    async = std::max(async, a.async);
  }
  alignment_->set(align.count());
  sync_->set(sync.count());
  async_->set(async.count());
  last_id_->set(p.id);
  completed_.push_back({p.folder, meta});
  remember(p, true, meta.state_bytes(), "");
  if (p.kind == checkpoint::snapshot_kind::savepoint) {
    savepoint_folder_ = p.folder;
    std::fprintf(stderr, "stream: savepoint %lld written to %s\n",
                 static_cast<long long>(p.id), p.folder.c_str());
    nlohmann::json j{{"id", p.id}, {"kind", "savepoint"}, {"folder", p.folder}};
    answer_savepoint_waiters(j.dump());
  }
  // Retention: drop restore points whose folders are gone.
  storage_->retain(config_.options.checkpoints_retained);
  std::erase_if(completed_, [](const checkpoint::restore_point& r) {
    std::error_code ec;
    return !std::filesystem::exists(r.folder + "/_metadata", ec);
  });
  for (auto& t : tasks_) {
    if (t.live()) send(t.handle, complete_atom::value, p.id);
  }
  if (p.stop || p.final) {
    // A drain stopped the job; a final checkpoint without one means the
    // input ended by itself, even if a stop came in meanwhile (with nothing
    // left to stop): the job finished, and a restart is refused as final.
    if (p.final && !drain_) {
      stopped_ = false;
    } else {
      stopped_ = stopped_ || p.stop;
    }
    final_id_ = p.id;
    phase_ = phase::stopping;
    shutdown_all();
    return;
  }
  after_checkpoint();
}

void coordinator::abort(const std::string& reason, const char* label) {
  auto p = std::move(*pending_);
  pending_.reset();
  in_progress_->set(0);
  last_end_ = clock::now();
  config_.registry
      ->get_counter("stream_checkpoints_failed_total", "",
                    {{"job", config_.options.job_name}, {"reason", label}})
      .add(1);
  std::fprintf(stderr, "stream: %s %lld aborted: %s\n", kind_name(p.kind),
               static_cast<long long>(p.id), reason.c_str());
  remember(p, false, 0, reason);
  if (p.kind == checkpoint::snapshot_kind::savepoint && !p.stop) {
    nlohmann::json j{
        {"error", "savepoint " + std::to_string(p.id) + " aborted: " + reason}};
    answer_savepoint_waiters(j.dump());
  }
  if (auto st = storage_->discard(p.folder); !st.ok())
    std::fprintf(stderr, "stream: %s\n", st.message().c_str());
  if (p.final && phase_ == phase::running &&
      final_retries_ < max_final_retries) {
    ++final_retries_;
    std::fprintf(stderr,
                 "stream: taking the final checkpoint again (retry %u of %u, "
                 "with %lld ms)\n",
                 final_retries_, max_final_retries,
                 static_cast<long long>((config_.options.checkpoint_timeout *
                                         (1 << final_retries_))
                                            .count()));
  } else if (p.final && phase_ == phase::running) {
    failure_ = status{errc::io_error, "the final checkpoint failed after " +
                                          std::to_string(max_final_retries) +
                                          " retries: " + reason};
    phase_ = phase::stopping;
    shutdown_all();
    return;
  }
  // A stop with savepoint tries again: the job must not end without one.
  if (p.stop) stop_requested_ = true;
  if (phase_ == phase::running) after_checkpoint();
}

void coordinator::after_checkpoint() {
  if (phase_ != phase::running || pending_ || !ready()) return;
  if (all_finished() && !tasks_.empty()) {
    if (config_.options.checkpoint_interval.count() > 0) {
      trigger(checkpoint::snapshot_kind::checkpoint, false, true);
    } else {
      phase_ = phase::stopping;
      shutdown_all();
    }
    return;
  }
  if (stop_requested_ && !config_.options.drain_on_stop) {
    stop_requested_ = false;
    savepoint_requested_ = false;
    trigger(checkpoint::snapshot_kind::savepoint, true, false);
  } else if (stop_requested_) {
    // Drain: the sources end their input; the job finishes as usual.
    stop_requested_ = false;
    drain_ = true;
    for (auto& t : tasks_) {
      if (t.source && t.live())
        send<caf::message_priority::high>(t.handle, stop_atom::value);
    }
  } else if (savepoint_requested_) {
    savepoint_requested_ = false;
    trigger(checkpoint::snapshot_kind::savepoint, false, false);
  }
}

void coordinator::on_finished(std::uint32_t chain, std::uint32_t subtask) {
  auto& t = tasks_.at(index_of(chain, subtask));
  if (t.finished) return;
  t.finished = true;
  // A task that finished before the barrier reached it takes the pending
  // snapshot as it is.
  if (pending_ && !pending_->acked.at(index_of(chain, subtask)))
    send(t.handle, trigger_atom::value, pending_->id,
         pending_->kind == checkpoint::snapshot_kind::savepoint);
  after_checkpoint();
}

void coordinator::on_failure(const std::string& what) {
  if (phase_ == phase::stopping && final_id_ >= 0 && failure_.ok()) {
    // A transactional sink could not commit the last checkpoint's output:
    // the job must not report success. Restoring that checkpoint commits
    // what it staged.
    failure_ = status{errc::operator_failed,
                      what + " (after the final checkpoint " +
                          std::to_string(final_id_) +
                          " completed: its output may not be committed; "
                          "restore from it to commit it)"};
    return;
  }
  if (phase_ != phase::running) return;
  auto delay = policy_.on_failure(clock::now());
  // Leave the running phase first: aborting the pending checkpoint must not
  // start another one among failing tasks.
  phase_ = delay ? phase::restarting : phase::stopping;
  // Deploy answers still outstanding belong to a failed attempt: their
  // tasks are killed on arrival.
  deploying_ = 0;
  if (pending_) abort("a task failed", "failover");
  if (!delay) {
    failure_ =
        status{errc::operator_failed, what + " (" + policy_.reason() + ")"};
    kill_all();
    if (alive_ == 0) finish_job();
    return;
  }
  restarts_total_->add(1);
  failed_at_ = clock::now();
  awaiting_flow_ = true;
  restart_due_ = false;
  std::fprintf(stderr, "stream: %s; restart %u (%s) in %lld ms\n", what.c_str(),
               policy_.restarts(), policy_.name().c_str(),
               static_cast<long long>(delay->count()));
  kill_all();
  delayed_send(this, *delay, restart_atom::value, attempt_);
}

void coordinator::on_restore_failure(const std::string& what) {
  if (phase_ != phase::running || !deployed_from_) {
    on_failure(what);
    return;
  }
  // Loading the same checkpoint again gives the same error: drop it as a
  // restore point (its folder stays, for inspection) and fall back at once
  // to the one before, without the restart strategy's backoff. Each
  // fallback shrinks `completed_`, so this ends.
  const auto bad = *deployed_from_;
  std::erase_if(completed_, [&](const checkpoint::restore_point& r) {
    return r.folder == bad.folder;
  });
  std::fprintf(stderr, "stream: %s %lld in %s cannot be restored: %s\n",
               kind_name(bad.meta.kind), static_cast<long long>(bad.meta.id),
               bad.folder.c_str(), what.c_str());
  if (pending_) abort("a task failed", "failover");
  if (completed_.empty()) {
    failure_ =
        status{errc::malformed_data,
               std::string{kind_name(bad.meta.kind)} + " " +
                   std::to_string(bad.meta.id) + " in '" + bad.folder +
                   "' cannot be restored (" + what +
                   ") and this run has no older checkpoint to fall back to: "
                   "restore an earlier checkpoint or savepoint with --restore"};
    phase_ = phase::stopping;
    kill_all();
    if (alive_ == 0) finish_job();
    return;
  }
  phase_ = phase::restarting;
  deploying_ = 0;
  restarts_total_->add(1);
  failed_at_ = clock::now();
  awaiting_flow_ = true;
  restart_due_ = true;
  kill_all();
  if (alive_ == 0) redeploy();
}

void coordinator::redeploy() {
  // The newest restore point that still verifies; older ones are the
  // fallback when a newer one was damaged meanwhile.
  std::shared_ptr<const checkpoint::restore_point> from;
  for (auto it = completed_.rbegin(); it != completed_.rend(); ++it) {
    if (auto st = checkpoint::verify(it->folder, it->meta); !st.ok()) {
      std::fprintf(stderr, "stream: skipped %s %lld for recovery: %s\n",
                   kind_name(it->meta.kind),
                   static_cast<long long>(it->meta.id), st.message().c_str());
      continue;
    }
    from = std::make_shared<checkpoint::restore_point>(*it);
    break;
  }
  ++attempt_;
  phase_ = phase::running;
  recovering_ = true;
  if (from)
    std::fprintf(stderr, "stream: restoring %s %lld from %s\n",
                 kind_name(from->meta.kind),
                 static_cast<long long>(from->meta.id), from->folder.c_str());
  else
    std::fprintf(stderr, "stream: no checkpoint to restore: starting over\n");
  deploy(from);
  // A drain requested before the failure applies to the new sources too.
  if (drain_) stop_requested_ = true;
  after_checkpoint();
}

void coordinator::shutdown_all() {
  for (auto& t : tasks_) {
    if (t.live()) send(t.handle, shutdown_atom::value);
  }
}

void coordinator::kill_all() {
  for (auto& t : tasks_) {
    if (t.live()) send_exit(t.handle, caf::exit_reason::kill);
  }
}

void coordinator::on_down(const caf::down_msg& down) {
  bool was_worker = false;
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    if (workers_[i].handle && workers_[i].handle.address() == down.source) {
      was_worker = true;
      // A worker that quit normally (told to, or stopped) did not crash.
      if (!down.reason || down.reason == caf::exit_reason::normal)
        workers_[i].leaving = true;
      if (workers_[i].alive) lose_worker(i, system().render(down.reason));
    }
  }
  if (was_worker) return;
  auto it = std::find_if(tasks_.begin(), tasks_.end(), [&](const task_slot& t) {
    return t.handle && t.handle.address() == down.source;
  });
  if (it == tasks_.end() || it->down) return;
  it->down = true;
  --alive_;
  if (phase_ == phase::running && down.reason &&
      down.reason != caf::exit_reason::normal) {
    // A task that threw reported why first; this is a crash without a word,
    // or its worker is leaving.
    const auto& w = workers_.at(it->worker);
    std::string what = "operator '" +
                       config_.plan->chains().at(it->chain).name +
                       "' subtask " + std::to_string(it->subtask);
    if (w.leaving)
      on_failure(what + " stopped: worker " + w.id + " left");
    else
      on_failure(what + " ended unexpectedly: " + caf::to_string(down.reason));
  }
  if (alive_ > 0) return;
  if (phase_ == phase::restarting && restart_due_) {
    redeploy();
  } else if (phase_ == phase::stopping) {
    finish_job();
  } else if (phase_ == phase::running) {
    // Every task quit normally without a shutdown: should not happen.
    failure_ = status{errc::internal, "every task ended without a shutdown"};
    finish_job();
  }
}

void coordinator::on_exit() {
  // Workers and tasks hold handles to the coordinator: drop ours to them.
  tasks_.clear();
  workers_.clear();
  answer_savepoint_waiters(R"({"error":"the coordinator stopped"})");
  config_.runner = nullptr;
}

void coordinator::finish_job() {
  if (finishing_) return;
  finishing_ = true;
  answer_savepoint_waiters(R"({"error":"the job ended before the savepoint"})");
  // Workers of a job that ended go too (a failed job is restarted from its
  // checkpoints by a new coordinator, which they connect to again). Remote
  // ones are asked and answered (or timed out) before this process may end,
  // so that the request is not lost with the connection.
  auto waiting = std::make_shared<std::size_t>(0);
  auto report = [this] {
    auto code = static_cast<std::uint8_t>(failure_.code());
    send(config_.runner, result_atom::value, code, failure_.message(), stopped_,
         savepoint_folder_, policy_.restarts());
    quit();
  };
  for (auto& w : workers_) {
    if (!w.alive) continue;
    if (config_.local) {
      send_exit(w.handle, caf::exit_reason::user_shutdown);
    } else if (failure_.ok()) {
      ++*waiting;
      auto one_done = [waiting, report] {
        if (--*waiting == 0) report();
      };
      request(w.handle, std::chrono::seconds{2}, shutdown_atom::value)
          .then([one_done] { one_done(); },
                [one_done](caf::error&) { one_done(); });
    }
  }
  if (*waiting == 0) report();
}

void coordinator::cancel() {
  if (phase_ == phase::stopping) return;
  std::fprintf(stderr, "stream: job cancelled\n");
  cancelled_ = true;
  stopped_ = true;
  end_now("job cancelled");
}

void coordinator::end_now(const std::string& why) {
  phase_ = phase::stopping;
  if (pending_) {
    auto p = std::move(*pending_);
    pending_.reset();
    in_progress_->set(0);
    remember(p, false, 0, why);
    (void)storage_->discard(p.folder);
  }
  kill_all();
  if (alive_ == 0) finish_job();
}

void coordinator::on_stop() {
  if (stop_seen_) return;
  stop_seen_ = true;
  stopped_ = true;
  delayed_send(this, config_.options.stop_timeout, stop_timeout_atom::value,
               std::uint32_t{1});
  if (phase_ == phase::stopping) return;
  const char* idle_state = phase_ == phase::restarting ? "recovering"
                           : waiting_       ? "waiting for task slots"
                           : tasks_.empty() ? "starting"
                                            : nullptr;
  if (idle_state != nullptr) {
    // Nothing runs that a savepoint could capture; the newest completed
    // checkpoint (or savepoint) already is the job's restore point.
    std::fprintf(stderr, "stream: stopped while %s: no savepoint taken; %s\n",
                 idle_state, last_restore_point().c_str());
    end_now("job stopped");
    return;
  }
  stop_requested_ = true;
  after_checkpoint();
}

void coordinator::on_stop_timeout(std::uint32_t stage) {
  if (finishing_) return;
  if (stage >= 2) {
    // Tasks did not report their end after being killed (a worker that
    // is unreachable and not yet detected): end without them.
    std::fprintf(stderr,
                 "stream: %zu tasks did not end after being killed; ending "
                 "without them\n",
                 alive_);
    finish_job();
    return;
  }
  const auto ms = config_.options.stop_timeout.count();
  std::string why =
      final_id_ >= 0
          ? "the tasks did not end within --stop-timeout (" +
                std::to_string(ms) + " ms) after savepoint " +
                std::to_string(final_id_) +
                ": its output may not be committed; restore from it"
          : "no savepoint within --stop-timeout (" + std::to_string(ms) +
                " ms) of the stop request: the job was cancelled; " +
                last_restore_point();
  std::fprintf(stderr, "stream: %s\n", why.c_str());
  if (failure_.ok()) failure_ = status{errc::cancelled, why};
  end_now("the stop timed out");
  if (!finishing_)
    delayed_send(this, std::chrono::seconds{3}, stop_timeout_atom::value,
                 std::uint32_t{2});
}

std::string coordinator::last_restore_point() const {
  if (completed_.empty())
    return "there is no completed checkpoint to restore from";
  const auto& last = completed_.back();
  return "restore from " + std::string{kind_name(last.meta.kind)} + " " +
         std::to_string(last.meta.id) + " (" + last.folder + ")";
}

void coordinator::remember(const pending_checkpoint& p, bool completed,
                           std::uint64_t size, const std::string& reason) {
  if (!completed) ++failed_count_;
  history_entry e;
  e.id = p.id;
  e.kind = p.kind;
  e.completed = completed;
  e.folder = completed ? p.folder : std::string{};
  e.duration_ms = ms_between(p.started, clock::now());
  e.size_bytes = size;
  e.reason = reason;
  history_.push_back(std::move(e));
  if (history_.size() > history_size) history_.erase(history_.begin());
}

void coordinator::answer_savepoint_waiters(const std::string& json) {
  for (auto& rp : savepoint_waiters_) rp.deliver(json);
  savepoint_waiters_.clear();
}

}  // namespace stream::actors
