// The messages that cross processes: serialized by CAF's binary serializer
// and read back field for field, and the protocol signature a worker's
// registration is checked against.

#include "messages.hpp"

#include <gtest/gtest.h>

namespace stream::actors {
namespace {

struct system_fixture : ::testing::Test {
  system_fixture() : sys(init(cfg)) {}
  static caf::actor_system_config& init(caf::actor_system_config& cfg) {
    register_message_types(cfg);
    return cfg;
  }
  caf::actor_system_config cfg;
  caf::actor_system sys;
};

TEST_F(system_fixture, a_snapshot_ack_survives_serialization) {
  snapshot_ack ack;
  ack.attempt = 3;
  ack.id = 1234567890123;
  ack.chain = 2;
  ack.subtask = 5;
  ack.alignment = std::chrono::nanoseconds{11};
  ack.sync = std::chrono::nanoseconds{22};
  ack.async = std::chrono::nanoseconds{33};
  checkpoint::state_handle h;
  h.operator_id = 7;
  h.subtask = 5;
  h.file = "op-7-5.state";
  h.bytes = 4096;
  h.crc32c = 0xDEADBEEF;
  // Runs, as a planned table gives them.
  h.key_groups = key_group_set{{{16, 32}, {40, 41}, {100, 128}}};
  h.entries = 99;
  ack.handles = {h, h};
  ack.handles[1].file = "op-8-5.state";
  // As a message, the way it crosses the network.
  auto msg = caf::make_message(ack_atom::value, ack);
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  ASSERT_FALSE(sink(msg));
  caf::message back;
  caf::binary_deserializer source{sys, buf};
  ASSERT_FALSE(source(back));
  ASSERT_TRUE((back.match_elements<ack_atom, snapshot_ack>()));
  const auto& got = back.get_as<snapshot_ack>(1);
  EXPECT_EQ(got.attempt, 3U);
  EXPECT_EQ(got.id, 1234567890123);
  EXPECT_EQ(got.chain, 2U);
  EXPECT_EQ(got.subtask, 5U);
  EXPECT_EQ(got.alignment.count(), 11);
  EXPECT_EQ(got.sync.count(), 22);
  EXPECT_EQ(got.async.count(), 33);
  ASSERT_EQ(got.handles.size(), 2U);
  EXPECT_EQ(got.handles[0].file, "op-7-5.state");
  EXPECT_EQ(got.handles[1].file, "op-8-5.state");
  EXPECT_EQ(got.handles[0].crc32c, 0xDEADBEEFU);
  EXPECT_EQ(got.handles[0].key_groups, h.key_groups);
  EXPECT_EQ(got.handles[0].key_groups.to_string(), "16-31,40,100-127");
  EXPECT_EQ(got.handles[0].entries, 99U);
  EXPECT_EQ(got.handles[0].bytes, 4096U);
}

TEST_F(system_fixture, a_raw_batch_crosses_as_bytes) {
  std::vector<std::uint8_t> bytes{'S', 'T', 'R', 'B', 1, 0, 0, 0, 255};
  auto msg = caf::make_message(raw_batch_atom::value, std::uint32_t{4}, bytes);
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  ASSERT_FALSE(sink(msg));
  // A byte sequence is one block: length prefix plus the bytes, no
  // per-element framing.
  EXPECT_LT(buf.size(), bytes.size() + 64);
  caf::message back;
  caf::binary_deserializer source{sys, buf};
  ASSERT_FALSE(source(back));
  ASSERT_TRUE((back.match_elements<raw_batch_atom, std::uint32_t,
                                   std::vector<std::uint8_t>>()));
  EXPECT_EQ(back.get_as<std::uint32_t>(1), 4U);
  EXPECT_EQ(back.get_as<std::vector<std::uint8_t>>(2), bytes);
}

TEST(protocol, the_signature_names_the_version_and_every_type) {
  auto sig = protocol_signature();
  EXPECT_EQ(sig.rfind("stream-protocol/2 caf-", 0), 0U) << sig;
  for (const char* type : {"stream.u32s", "stream.bytes", "stream.snapshot_ack",
                           "stream.state_handle", "stream.key_group_range",
                           "stream.key_group_set"})
    EXPECT_NE(sig.find(type), std::string::npos) << type;
}

}  // namespace
}  // namespace stream::actors
