#pragma once

// Every message type of the runtime, in one place used by every process
// (CAF drops unregistered types silently across processes).

#include <caf/all.hpp>

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

}  // namespace stream::actors

// Batches cross actors of one process by pointer. Remote channels (a later
// step) will send them as one raw byte buffer per batch with a format tag.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(::stream::runtime::batch_ptr)
