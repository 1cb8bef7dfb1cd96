#pragma once

// Every message type of the runtime, in one place used by every process
// (CAF drops unregistered types silently across processes).

#include <caf/all.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "stream/checkpoint/snapshot.hpp"
#include "stream/checkpoint/storage.hpp"
#include "stream/runtime/batch.hpp"

namespace stream::actors {

using wire_atom = caf::atom_constant<caf::atom("st_wire")>;
using start_atom = caf::atom_constant<caf::atom("st_start")>;
using batch_atom = caf::atom_constant<caf::atom("st_batch")>;
using event_atom = caf::atom_constant<caf::atom("st_event")>;
using credit_atom = caf::atom_constant<caf::atom("st_credit")>;
using pull_atom = caf::atom_constant<caf::atom("st_pull")>;
using tick_atom = caf::atom_constant<caf::atom("st_tick")>;
using stop_atom = caf::atom_constant<caf::atom("st_stop")>;
using done_atom = caf::atom_constant<caf::atom("st_done")>;
using failed_atom = caf::atom_constant<caf::atom("st_failed")>;
// Task -> coordinator: its state cannot be restored from the checkpoint it
// was deployed with, and trying again cannot help (damaged or foreign
// content, as opposed to an I/O error).
using restore_failed_atom = caf::atom_constant<caf::atom("st_rfail")>;
// Checkpoints: coordinator -> task.
using trigger_atom = caf::atom_constant<caf::atom("st_trig")>;
using complete_atom = caf::atom_constant<caf::atom("st_compl")>;
using shutdown_atom = caf::atom_constant<caf::atom("st_shut")>;
// Task (or its background write) -> coordinator.
using ack_atom = caf::atom_constant<caf::atom("st_ack")>;
using decline_atom = caf::atom_constant<caf::atom("st_decl")>;
using finished_atom = caf::atom_constant<caf::atom("st_fin")>;
// Coordinator timers and requests.
using checkpoint_atom = caf::atom_constant<caf::atom("st_ckpt")>;
using timeout_atom = caf::atom_constant<caf::atom("st_tmout")>;
using restart_atom = caf::atom_constant<caf::atom("st_restrt")>;
using stop_timeout_atom = caf::atom_constant<caf::atom("st_stopto")>;
using savepoint_atom = caf::atom_constant<caf::atom("st_savept")>;
using result_atom = caf::atom_constant<caf::atom("st_result")>;

// Remote channels: a batch as one encoded byte buffer (codec batch format).
using raw_batch_atom = caf::atom_constant<caf::atom("st_rbatch")>;
// Task -> coordinator: the first record consumed in this attempt.
using flowing_atom = caf::atom_constant<caf::atom("st_flow")>;
// Worker <-> coordinator.
using register_atom = caf::atom_constant<caf::atom("st_reg")>;
using deploy_atom = caf::atom_constant<caf::atom("st_deploy")>;
using goodbye_atom = caf::atom_constant<caf::atom("st_bye")>;
using connect_atom = caf::atom_constant<caf::atom("st_conn")>;
// REST queries to the coordinator.
using status_atom = caf::atom_constant<caf::atom("st_status")>;
using history_atom = caf::atom_constant<caf::atom("st_hist")>;
using cancel_atom = caf::atom_constant<caf::atom("st_cancel")>;

/// A task's acknowledgement of a snapshot: where its state went.
struct snapshot_ack {
  std::uint32_t attempt = 0;
  std::int64_t id = 0;
  std::uint32_t chain = 0;
  std::uint32_t subtask = 0;
  std::vector<checkpoint::state_handle> handles;
  std::chrono::nanoseconds alignment{0};
  std::chrono::nanoseconds sync{0};
  std::chrono::nanoseconds async{0};
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, snapshot_ack& x) {
  auto alignment = x.alignment.count();
  auto sync = x.sync.count();
  auto async = x.async.count();
  auto apply = [&] {
    return f(caf::meta::type_name("stream.snapshot_ack"), x.attempt, x.id,
             x.chain, x.subtask, x.handles, alignment, sync, async);
  };
  auto store = [&] {
    x.alignment = std::chrono::nanoseconds{alignment};
    x.sync = std::chrono::nanoseconds{sync};
    x.async = std::chrono::nanoseconds{async};
  };
  // Durations travel as nanosecond counts.
  if constexpr (std::is_void_v<typename Inspector::result_type>) {
    apply();
    store();
  } else {
    auto result = apply();
    store();
    return result;
  }
}

/// Registers every message type that crosses processes with `cfg`, in one
/// place for every role.
void register_message_types(caf::actor_system_config& cfg);

/// Names the protocol and every registered type: a worker whose binary
/// differs is refused at its registration with both strings in the error.
std::string protocol_signature();

/// The state a task restores: per operator of its chain.
using restore_set =
    std::shared_ptr<const std::vector<checkpoint::restored_state>>;

}  // namespace stream::actors

namespace stream {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, key_group_range& x) {
  return f(caf::meta::type_name("stream.key_group_range"), x.start, x.end);
}

/// As its runs; loading rebuilds the set from them.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, key_group_set& x) {
  std::vector<key_group_range> runs = x.runs();
  auto load = [&]() -> caf::error {
    x = key_group_set{std::move(runs)};
    return caf::none;
  };
  return f(caf::meta::type_name("stream.key_group_set"), runs,
           caf::meta::load_callback(load));
}

namespace checkpoint {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, state_handle& x) {
  return f(caf::meta::type_name("stream.state_handle"), x.operator_id,
           x.subtask, x.file, x.bytes, x.crc32c, x.key_groups, x.entries);
}

}  // namespace checkpoint
}  // namespace stream

// Batches cross actors of one process by pointer; to another process they
// go as `raw_batch` with the encoded bytes (task_actor decides per channel).
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(::stream::runtime::batch_ptr)
