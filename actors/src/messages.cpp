#include "messages.hpp"

namespace stream::actors {

namespace {

/// Bump when a message changes shape: workers of another version are
/// refused at registration instead of exchanging garbage.
// 2: state handles carry their key groups as runs (a key_group_set), and a
// deployment the plan's key-group tables.
constexpr const char* protocol_version = "stream-protocol/2";

const char* const type_names[] = {
    "stream.u32s",          "stream.bytes",        "stream.key_group_range",
    "stream.key_group_set", "stream.state_handle", "stream.snapshot_ack",
};

}  // namespace

void register_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<std::vector<std::uint32_t>>(type_names[0]);
  cfg.add_message_type<std::vector<std::uint8_t>>(type_names[1]);
  cfg.add_message_type<key_group_range>(type_names[2]);
  cfg.add_message_type<key_group_set>(type_names[3]);
  cfg.add_message_type<checkpoint::state_handle>(type_names[4]);
  cfg.add_message_type<snapshot_ack>(type_names[5]);
}

std::string protocol_signature() {
  std::string out = protocol_version;
  out += " caf-" + std::to_string(CAF_VERSION);
  for (const char* name : type_names) {
    out += ' ';
    out += name;
  }
  return out;
}

}  // namespace stream::actors
