#pragma once

// Every message type of the runtime, in one place used by every process
// (CAF drops unregistered types silently across processes).

#include <caf/all.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
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
using savepoint_atom = caf::atom_constant<caf::atom("st_savept")>;
using result_atom = caf::atom_constant<caf::atom("st_result")>;

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

/// The state a task restores: per operator of its chain.
using restore_set =
    std::shared_ptr<const std::vector<checkpoint::restored_state>>;

}  // namespace stream::actors

// Batches cross actors of one process by pointer. Remote channels (a later
// step) will send them as one raw byte buffer per batch with a format tag.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(::stream::runtime::batch_ptr)
// Local for now; remote roles will serialize acknowledgements.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(::stream::actors::snapshot_ack)
