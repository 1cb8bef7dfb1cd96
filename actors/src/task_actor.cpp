#include "task_actor.hpp"

#include <exception>

namespace stream::actors {

namespace {

std::string describe_channel(std::uint32_t id) {
  return "edge " + std::to_string(execution_plan::edge_of(id)) + " subtask " +
         std::to_string(execution_plan::subtask_of(id));
}

using clock = std::chrono::steady_clock;

}  // namespace

task_actor::task_actor(caf::actor_config& cfg, task_actor_config config)
    : caf::event_based_actor(cfg), config_(std::move(config)) {
  auto created = runtime::task::create(
      *config_.graph, *config_.plan, config_.chain, config_.subtask,
      *config_.registry, config_.options, *this, config_.attempt);
  if (created)
    task_ = std::move(*created);
  else
    create_error_ = created.error();
  // An exception from user code fails this task; the runner hears why.
  set_exception_handler(
      [this](caf::scheduled_actor*, std::exception_ptr& eptr) -> caf::error {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(eptr);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        fail(what);
        return caf::make_error(caf::sec::runtime_error, what);
      });
}

std::string task_actor::describe() const {
  const auto& chain = config_.plan->chains().at(config_.chain);
  return "operator '" + chain.name + "' subtask " +
         std::to_string(config_.subtask);
}

void task_actor::fail(const std::string& what) {
  if (failed_) return;
  failed_ = true;
  reported_ = true;
  send<caf::message_priority::high>(config_.runner, failed_atom::value,
                                    config_.attempt,
                                    describe() + " failed: " + what);
}

template <class F>
void task_actor::work(F&& body) {
  if (!task_ || failed_) return;
  task_->begin_work(clock::now());
  body();
  task_->end_work(clock::now());
  if (started_ && !reported_ && task_->finished()) {
    // Stays up for the final checkpoint; the coordinator says when to go.
    reported_ = true;
    send(config_.runner, finished_atom::value, config_.attempt, config_.chain,
         config_.subtask);
  }
}

void task_actor::schedule_pull() {
  if (pull_scheduled_ || task_->blocked() || task_->finished()) return;
  pull_scheduled_ = true;
  send(this, pull_atom::value, pull_generation_);
}

void task_actor::on_start() {
  if (!task_) {
    fail(create_error_.message());
    quit(caf::make_error(caf::sec::runtime_error));
    return;
  }
  if (auto st = task_->open(); !st.ok()) {
    fail(st.message());
    quit(caf::make_error(caf::sec::runtime_error));
    return;
  }
  if (auto st = restore(); !st.ok()) {
    if (st.code() == errc::io_error) {
      fail(st.message());
    } else if (!failed_) {
      failed_ = true;
      reported_ = true;
      send<caf::message_priority::high>(
          config_.runner, restore_failed_atom::value, config_.attempt,
          describe() + " cannot restore its state: " + st.message());
    }
    quit(caf::make_error(caf::sec::runtime_error));
    return;
  }
  started_ = true;
  send(config_.runner, start_atom::value, config_.attempt);
  task_->start(clock::now());
  if (task_->is_source()) schedule_pull();
  delayed_send(this, config_.options.flush_timeout, tick_atom::value);
}

void task_actor::on_pull() {
  pull_scheduled_ = false;
  auto r = task_->pull();
  using state = runtime::pull_result::state;
  if (r.next == state::more) {
    schedule_pull();
  } else if (r.next == state::throttled && !pull_scheduled_) {
    pull_scheduled_ = true;
    auto wait = r.resume_at - clock::now();
    delayed_send(this, std::max(wait, clock::duration::zero()),
                 pull_atom::value, pull_generation_);
  }
}

caf::behavior task_actor::make_behavior() {
  // Until `start`, everything but the wiring stays in the mailbox: an event
  // or batch from a peer that started first must not reach stages that are
  // not open yet.
  set_default_handler(caf::skip);
  return {
      [this](wire_atom, std::vector<caf::actor>& outputs,
             std::vector<caf::actor>& inputs) {
        outputs_ = std::move(outputs);
        inputs_ = std::move(inputs);
        const auto& plan = *config_.plan;
        auto outs = plan.outputs(config_.chain, config_.subtask);
        auto ins = plan.inputs(config_.chain, config_.subtask);
        output_ids_.clear();
        for (const auto& ref : outs)
          output_ids_.push_back(
              execution_plan::channel_id(ref.edge, config_.subtask));
        input_ids_.clear();
        for (const auto& ref : ins)
          input_ids_.push_back(
              execution_plan::channel_id(ref.edge, config_.subtask));
        input_index_ = execution_plan::channel_index{ins};
        output_index_ = execution_plan::channel_index{outs};
        remote_out_.assign(outputs_.size(), nullptr);
        for (std::size_t i = 0; i < outputs_.size() && i < outs.size(); ++i) {
          if (outputs_[i] && outputs_[i].node() != node())
            remote_out_[i] = channel_type(outs[i]);
        }
        in_types_.clear();
        for (const auto& ref : plan.inputs(config_.chain, config_.subtask))
          in_types_.push_back(channel_type(ref));
      },
      [this](start_atom) {
        set_default_handler(caf::print_and_drop);
        become(running());
        on_start();
        if (started_) work([] {});
      },
  };
}

caf::behavior task_actor::running() {
  return {
      [this](batch_atom, std::uint32_t id, runtime::batch_ptr& records) {
        auto channel = input_of(id);
        if (!channel) return;
        if (!flowing_) {
          flowing_ = true;
          send(config_.runner, flowing_atom::value, config_.attempt);
        }
        work([&] { task_->on_batch(*channel, std::move(records)); });
      },
      [this](raw_batch_atom, std::uint32_t id,
             const std::vector<std::uint8_t>& bytes) {
        if (auto channel = input_of(id)) on_raw_batch(*channel, bytes);
      },
      [this](event_atom, std::uint32_t id, std::uint8_t kind,
             std::int64_t value) {
        auto channel = input_of(id);
        if (!channel) return;
        work([&] {
          task_->on_event(*channel,
                          runtime::control_event{
                              static_cast<runtime::event_kind>(kind), value});
        });
      },
      [this](credit_atom, std::uint32_t id, std::uint32_t credits) {
        const std::int64_t channel = output_index_.find(id);
        if (channel < 0) {
          fail("credit from " + describe_channel(id) +
               ", which is not an output of this task");
          return;
        }
        work([&] {
          task_->on_credit(static_cast<std::uint32_t>(channel), credits);
          if (task_->is_source() && started_) schedule_pull();
        });
      },
      [this](pull_atom, std::uint64_t generation) {
        if (generation == pull_generation_) work([&] { on_pull(); });
      },
      [this](tick_atom) {
        work([&] { task_->on_flush_timer(); });
        if (!reported_)
          delayed_send(this, config_.options.flush_timeout, tick_atom::value);
      },
      [this](trigger_atom, std::int64_t id, bool savepoint) {
        work([&] { task_->trigger_snapshot(id, savepoint); });
      },
      [this](complete_atom, std::int64_t id) {
        work([&] { task_->on_checkpoint_complete(id); });
      },
      [this](shutdown_atom) { quit(); },
      [this](stop_atom) {
        work([&] {
          task_->request_stop();
          if (!task_->is_source() || !started_) return;
          // Pull now even if a throttled pull is pending: that one may be
          // far away at a low rate.
          ++pull_generation_;
          pull_scheduled_ = false;
          schedule_pull();
        });
      },
  };
}

void task_actor::on_exit() {
  // Peers hold handles to each other (data one way, credit the other):
  // drop them, or the cycle keeps every task actor and its state alive.
  if (task_) task_->close();
  task_.reset();
  outputs_.clear();
  inputs_.clear();
  config_.runner = nullptr;
}

status task_actor::restore() {
  if (!config_.restore && !config_.restore_folder.empty()) {
    auto meta = checkpoint::read_metadata(config_.restore_folder);
    if (!meta) return meta.error();
    config_.restore = std::make_shared<checkpoint::restore_point>(
        checkpoint::restore_point{config_.restore_folder, std::move(*meta)});
  }
  if (!config_.restore) return {};
  const auto& chain = config_.plan->chains().at(config_.chain);
  const key_group_set owned = chain.key_groups->owned_set(config_.subtask);
  std::vector<std::shared_ptr<const checkpoint::restored_state>> loaded;
  status failure;
  auto st = task_->restore(
      [&](std::uint32_t op) -> const checkpoint::restored_state* {
        if (!failure.ok()) return nullptr;
        auto s = checkpoint::load_operator_state(
            *config_.restore, op, config_.subtask, chain.parallelism, owned);
        if (!s) {
          failure = s.error();
          return nullptr;
        }
        loaded.push_back(*s);
        return loaded.back().get();
      });
  if (!failure.ok()) return failure;
  return st;
}

void task_actor::snapshot_taken(std::int64_t id, bool savepoint,
                                std::vector<checkpoint::pending_snapshot> parts,
                                std::chrono::nanoseconds alignment,
                                std::chrono::nanoseconds sync) {
  snapshot_ack ack;
  ack.attempt = config_.attempt;
  ack.id = id;
  ack.chain = config_.chain;
  ack.subtask = config_.subtask;
  ack.alignment = alignment;
  ack.sync = sync;
  auto folder = config_.storage->folder(
      id, savepoint ? checkpoint::snapshot_kind::savepoint
                    : checkpoint::snapshot_kind::checkpoint);
  auto shared = std::make_shared<std::vector<checkpoint::pending_snapshot>>(
      std::move(parts));
  auto coordinator = config_.runner;
  auto what = describe();
  // The deferred phase and the file writes run on the background writer;
  // the task goes on with its records meanwhile.
  config_.writer->submit([shared, folder, coordinator, ack, what]() mutable {
    auto begin = clock::now();
    auto decline = [&](const std::string& why) {
      caf::anon_send(coordinator, decline_atom::value, ack.attempt, ack.id,
                     what + ": " + why);
    };
    try {
      for (auto& part : *shared) {
        if (part.deferred) part.deferred(*part.data);
        auto snap = part.data->finish(part.operator_id, ack.subtask);
        auto handle = checkpoint::write_state_file(folder, snap, part.owned);
        if (!handle) return decline(handle.error().message());
        ack.handles.push_back(std::move(*handle));
      }
    } catch (const std::exception& e) {
      return decline(e.what());
    }
    ack.async = clock::now() - begin;
    caf::anon_send(coordinator, ack_atom::value, std::move(ack));
  });
}

std::optional<std::uint32_t> task_actor::input_of(std::uint32_t id) {
  const std::int64_t channel = input_index_.find(id);
  if (channel < 0) {
    fail("records or events from " + describe_channel(id) +
         ", which is not an input of this task");
    return std::nullopt;
  }
  return static_cast<std::uint32_t>(channel);
}

const type_ops* task_actor::channel_type(
    const execution_plan::channel_ref& ref) const {
  const auto& edge = config_.graph->edges().at(ref.edge);
  return config_.graph->at(edge.to).in_type.get();
}

void task_actor::on_raw_batch(std::uint32_t channel,
                              const std::vector<std::uint8_t>& bytes) {
  const type_ops* type =
      channel < in_types_.size() ? in_types_[channel] : nullptr;
  if (type == nullptr || !type->decode) {
    fail("a batch arrived as bytes on input channel " +
         std::to_string(channel) + ", which has no codec");
    return;
  }
  auto decoded = type->decode(bytes);
  if (!decoded) {
    fail("malformed batch on input channel " + std::to_string(channel) + ": " +
         decoded.error().message());
    return;
  }
  if (!flowing_) {
    flowing_ = true;
    send(config_.runner, flowing_atom::value, config_.attempt);
  }
  work([&] { task_->on_batch(channel, std::move(*decoded)); });
}

void task_actor::send_batch(std::uint32_t output_channel,
                            runtime::batch_ptr records) {
  const type_ops* remote = remote_out_[output_channel];
  if (remote == nullptr) {
    send(outputs_[output_channel], batch_atom::value,
         output_ids_[output_channel], std::move(records));
    return;
  }
  if (!remote->encode) {
    // The coordinator refuses such jobs outside the local role; this is
    // the last line of defence.
    fail("records on output channel " + std::to_string(output_channel) +
         " have no codec and cannot cross processes");
    return;
  }
  // One allocation per batch: sized like the last one, so the encoder
  // does not grow the buffer step by step.
  std::vector<std::uint8_t> bytes;
  bytes.reserve(remote_bytes_hint_);
  remote->encode(*records, bytes);
  remote_bytes_hint_ = bytes.size();
  send(outputs_[output_channel], raw_batch_atom::value,
       output_ids_[output_channel], std::move(bytes));
}

void task_actor::send_event(std::uint32_t output_channel,
                            const runtime::control_event& event) {
  send(outputs_[output_channel], event_atom::value, output_ids_[output_channel],
       static_cast<std::uint8_t>(event.kind), event.value);
}

void task_actor::grant_credit(std::uint32_t input_channel,
                              std::uint32_t credits) {
  send(inputs_[input_channel], credit_atom::value, input_ids_[input_channel],
       credits);
}

}  // namespace stream::actors
