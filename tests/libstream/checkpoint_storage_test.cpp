#include <gtest/gtest.h>
#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "stream/checkpoint/storage.hpp"
#include "stream/key_groups.hpp"

namespace stream::checkpoint::detail {
// Defined in libstream/src/checkpoint/crc32c.cpp and not part of the public
// API: declared here so that both implementations can be compared on one
// machine.
std::uint32_t crc32c_software(const std::uint8_t* data, std::size_t size,
                              std::uint32_t crc) noexcept;
std::uint32_t crc32c_sse42(const std::uint8_t* data, std::size_t size,
                           std::uint32_t crc) noexcept;
bool crc32c_sse42_supported() noexcept;
}  // namespace stream::checkpoint::detail

namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;
using stream::errc;
using stream::key_group_range;
using stream::key_group_set;

using stream::checkpoint::crc32c;
using stream::checkpoint::entry_reader;
using stream::checkpoint::entry_writer;
using stream::checkpoint::key_group_section;
using stream::checkpoint::metadata;
using stream::checkpoint::operator_snapshot;
using stream::checkpoint::read_metadata;
using stream::checkpoint::snapshot_kind;
using stream::checkpoint::state_handle;
using stream::checkpoint::storage;
using stream::checkpoint::verify;

/// The key groups [start, end) as a set.
key_group_set kgs(std::uint32_t start, std::uint32_t end) {
  return key_group_set::of({start, end});
}

constexpr std::uint32_t max_parallelism = 128;
const std::string job = "wordcount";
const std::string fingerprint = "topology-1";

/// A fresh directory under /tmp, removed with everything in it when the
/// object is destroyed.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = "/tmp/checkpoint_storage_test.XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed";
    } else {
      path_ = pattern;
    }
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  ~temp_dir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }

  const std::string& path() const { return path_; }
  std::string sub(std::string_view name) const {
    return path_ + "/" + std::string{name};
  }

 private:
  std::string path_;
};

std::string read_text(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, {}};
}

void write_text(const std::string& path, std::string_view text) {
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

/// Flips every bit of the first byte of `marker` in the file.
void flip_byte_at(const std::string& path, std::string_view marker) {
  std::string bytes = read_text(path);
  const std::size_t at = bytes.find(marker);
  ASSERT_NE(at, std::string::npos) << marker;
  bytes[at] = static_cast<char>(~bytes[at]);
  write_text(path, bytes);
}

std::string replace_once(std::string text, std::string_view from,
                         std::string_view to) {
  const std::size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

/// The entries of key group `group`: deterministic, so a read can be
/// compared with what was written.
key_group_section make_section(stream::key_group group, int entries = 3) {
  key_group_section section;
  section.group = group;
  entry_writer out{section.bytes};
  for (int i = 0; i < entries; ++i) {
    out.add(static_cast<std::uint32_t>(i % 2),
            "key-" + std::to_string(group) + "-" + std::to_string(i),
            "value-" + std::to_string(group * 1000 + i));
  }
  section.entries = out.count();
  return section;
}

/// The snapshot of subtask `subtask` of 2 with a section for every third
/// key group it owns.
operator_snapshot make_snapshot(std::uint32_t subtask,
                                std::uint32_t operator_id = 7) {
  operator_snapshot snapshot;
  snapshot.operator_id = operator_id;
  snapshot.subtask = subtask;
  snapshot.state_names = {"counts", "totals"};
  snapshot.operator_state = "OPSTATE-" + std::to_string(subtask);
  const key_group_range range =
      stream::range_for_subtask(max_parallelism, 2, subtask);
  for (stream::key_group kg = range.start; kg < range.end; kg += 3) {
    snapshot.key_groups.push_back(make_section(kg));
  }
  return snapshot;
}

/// Writes a complete checkpoint (operator 7 at parallelism 2) into `folder`.
metadata write_checkpoint(const std::string& folder, std::int64_t id,
                          snapshot_kind kind = snapshot_kind::checkpoint,
                          const std::string& of_job = job,
                          const std::string& of_fingerprint = fingerprint) {
  metadata meta;
  meta.job = of_job;
  meta.fingerprint = of_fingerprint;
  meta.id = id;
  meta.kind = kind;
  meta.created_ms = 1'700'000'000'000 + id;
  meta.max_parallelism = max_parallelism;
  meta.operators.push_back({7, "count", 2, {}});
  for (std::uint32_t subtask = 0; subtask < 2; ++subtask) {
    auto handle = write_state_file(
        folder, make_snapshot(subtask),
        stream::range_for_subtask(max_parallelism, 2, subtask));
    EXPECT_TRUE(handle.ok()) << handle.error().to_string();
    if (handle.ok()) meta.operators[0].subtasks.push_back(*handle);
  }
  const stream::status written = write_metadata(folder, meta);
  EXPECT_TRUE(written.ok()) << written.to_string();
  return meta;
}

/// Creates checkpoint `id` of `store` and writes it completely.
std::string add_checkpoint(const storage& store, std::int64_t id,
                           snapshot_kind kind = snapshot_kind::checkpoint) {
  auto folder = store.create(id, kind);
  EXPECT_TRUE(folder.ok()) << folder.error().to_string();
  if (!folder.ok()) return {};
  write_checkpoint(*folder, id, kind);
  return *folder;
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

// -- crc32c -------------------------------------------------------------------

TEST(crc32c, matches_the_standard_check_value) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(""), 0u);
}

TEST(crc32c, matches_the_rfc_3720_vectors) {
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xFF')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
}

TEST(crc32c, continues_from_a_previous_crc) {
  const std::string a = "The quick brown fox ";
  const std::string b = "jumps over the lazy dog, twice over and more.";
  EXPECT_EQ(crc32c(b, crc32c(a)), crc32c(a + b));
  for (std::size_t split = 0; split <= b.size(); ++split) {
    EXPECT_EQ(crc32c(b.substr(split), crc32c(b.substr(0, split))), crc32c(b));
  }
}

TEST(crc32c, software_and_sse42_paths_agree) {
  std::mt19937 random{42};
  std::vector<std::uint8_t> buffer(4096 + 16);
  for (auto& byte : buffer) byte = static_cast<std::uint8_t>(random());
  namespace detail = stream::checkpoint::detail;
  if (!detail::crc32c_sse42_supported()) {
    std::cout << "[ info ] no SSE4.2: only the software path is checked\n";
  }
  const std::string_view check = "123456789";
  EXPECT_EQ(
      detail::crc32c_software(
          reinterpret_cast<const std::uint8_t*>(check.data()), check.size(), 0),
      0xE3069283u);
  for (std::size_t offset = 0; offset < 9; ++offset) {
    for (std::size_t size : {0, 1, 3, 7, 8, 9, 15, 63, 255, 1001, 4095}) {
      const std::uint8_t* data = buffer.data() + offset;
      const std::uint32_t seed = static_cast<std::uint32_t>(random());
      const std::uint32_t software = detail::crc32c_software(data, size, seed);
      EXPECT_EQ(crc32c({data, size}, seed), software) << offset << "+" << size;
      if (detail::crc32c_sse42_supported()) {
        EXPECT_EQ(detail::crc32c_sse42(data, size, seed), software)
            << offset << "+" << size;
      }
    }
  }
}

// -- entries ------------------------------------------------------------------

TEST(checkpoint_entries, round_trip_including_empty_keys_and_values) {
  std::string blob;
  entry_writer out{blob};
  const std::string big(300, 'x');  // a length needing a 2-byte varint
  out.add(0, "", "");
  out.add(1, "key", "");
  out.add(70000, "", "value");
  out.add(2, "k\0y"s, big);
  EXPECT_EQ(out.count(), 4u);

  entry_reader in{blob};
  std::uint32_t state = 0;
  std::string_view key;
  std::string_view value;
  ASSERT_TRUE(in.next(state, key, value));
  EXPECT_EQ(state, 0u);
  EXPECT_EQ(key, "");
  EXPECT_EQ(value, "");
  ASSERT_TRUE(in.next(state, key, value));
  EXPECT_EQ(state, 1u);
  EXPECT_EQ(key, "key");
  EXPECT_EQ(value, "");
  ASSERT_TRUE(in.next(state, key, value));
  EXPECT_EQ(state, 70000u);
  EXPECT_EQ(key, "");
  EXPECT_EQ(value, "value");
  ASSERT_TRUE(in.next(state, key, value));
  EXPECT_EQ(key, "k\0y"s);
  EXPECT_EQ(value, big);
  EXPECT_FALSE(in.next(state, key, value));
  EXPECT_TRUE(in.error().ok()) << in.error().to_string();
}

TEST(checkpoint_entries, malformed_blob_ends_the_iteration_with_an_error) {
  std::string blob;
  entry_writer out{blob};
  out.add(1, "key", "value");
  out.add(1, "key2", "value2");
  const std::vector<std::string> broken = {
      blob.substr(0, blob.size() - 1),                  // value cut short
      blob + "\x01\x05"s + "ab",                        // key runs past the end
      "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"s,  // varint too long
      "\xFF\xFF\xFF\xFF\x1F\x00\x00"s,  // state index above 32 bits
  };
  for (const std::string& bytes : broken) {
    entry_reader in{bytes};
    std::uint32_t state = 0;
    std::string_view key;
    std::string_view value;
    while (in.next(state, key, value)) {
    }
    EXPECT_EQ(in.error().code(), errc::malformed_data) << bytes.size();
    EXPECT_FALSE(in.next(state, key, value));
  }
}

// -- state files --------------------------------------------------------------

TEST(checkpoint_state_file, round_trips_names_operator_state_and_sections) {
  temp_dir dir;
  const operator_snapshot written = make_snapshot(1);
  const key_group_range owned = stream::range_for_subtask(128, 2, 1);
  auto handle = write_state_file(dir.path(), written, owned);
  ASSERT_TRUE(handle.ok()) << handle.error().to_string();
  EXPECT_EQ(handle->file, "op-7-1.state");
  EXPECT_EQ(handle->operator_id, 7u);
  EXPECT_EQ(handle->subtask, 1u);
  EXPECT_EQ(handle->key_groups, owned);
  EXPECT_EQ(handle->bytes, fs::file_size(dir.sub("op-7-1.state")));
  EXPECT_EQ(handle->crc32c, crc32c(read_text(dir.sub("op-7-1.state"))));
  EXPECT_EQ(handle->entries, 3 * written.key_groups.size());

  auto read = read_state_file(dir.path(), *handle, owned);
  ASSERT_TRUE(read.ok()) << read.error().to_string();
  EXPECT_EQ(read->operator_id, 7u);
  EXPECT_EQ(read->subtask, 1u);
  EXPECT_EQ(read->state_names, written.state_names);
  EXPECT_EQ(read->operator_state, written.operator_state);
  ASSERT_EQ(read->key_groups.size(), written.key_groups.size());
  for (std::size_t i = 0; i < written.key_groups.size(); ++i) {
    EXPECT_EQ(read->key_groups[i].group, written.key_groups[i].group);
    EXPECT_EQ(read->key_groups[i].entries, written.key_groups[i].entries);
    EXPECT_EQ(read->key_groups[i].bytes, written.key_groups[i].bytes);
  }
}

TEST(checkpoint_state_file, round_trips_a_snapshot_without_keyed_state) {
  temp_dir dir;
  operator_snapshot written;
  written.operator_id = 3;
  written.operator_state = "offsets";
  auto handle = write_state_file(dir.path(), written, kgs(0, 128));
  ASSERT_TRUE(handle.ok()) << handle.error().to_string();
  EXPECT_EQ(handle->entries, 0u);
  auto read = read_state_file(dir.path(), *handle, kgs(0, 128));
  ASSERT_TRUE(read.ok()) << read.error().to_string();
  EXPECT_TRUE(read->state_names.empty());
  EXPECT_TRUE(read->key_groups.empty());
  EXPECT_EQ(read->operator_state, "offsets");
}

TEST(checkpoint_state_file, returns_only_the_wanted_key_groups) {
  temp_dir dir;
  auto handle = write_state_file(dir.path(), make_snapshot(0), kgs(0, 64));
  ASSERT_TRUE(handle.ok()) << handle.error().to_string();
  auto read = read_state_file(dir.path(), *handle, kgs(10, 20));
  ASSERT_TRUE(read.ok()) << read.error().to_string();
  std::vector<stream::key_group> groups;
  for (const auto& section : read->key_groups) groups.push_back(section.group);
  EXPECT_EQ(groups, (std::vector<stream::key_group>{12, 15, 18}));
  EXPECT_EQ(read->key_groups[0].bytes, make_section(12).bytes);
  EXPECT_EQ(read->operator_state, "OPSTATE-0");

  auto none = read_state_file(dir.path(), *handle, kgs(100, 128));
  ASSERT_TRUE(none.ok()) << none.error().to_string();
  EXPECT_TRUE(none->key_groups.empty());
}

TEST(checkpoint_state_file, rescale_reads_a_subrange_from_two_files) {
  temp_dir dir;
  std::vector<state_handle> handles;
  for (std::uint32_t subtask = 0; subtask < 2; ++subtask) {
    auto handle = write_state_file(
        dir.path(), make_snapshot(subtask),
        stream::range_for_subtask(max_parallelism, 2, subtask));
    ASSERT_TRUE(handle.ok()) << handle.error().to_string();
    handles.push_back(*handle);
  }
  // Subtask 1 of 4 after rescaling owns [32, 64); subtask 1 of 3 owns
  // [43, 86), which spans both old files.
  const key_group_range wanted =
      stream::range_for_subtask(max_parallelism, 3, 1);
  ASSERT_EQ(wanted, (key_group_range{43, 86}));
  std::vector<key_group_section> merged;
  for (const state_handle& handle : handles) {
    auto read = read_state_file(dir.path(), handle, wanted);
    ASSERT_TRUE(read.ok()) << read.error().to_string();
    for (auto& section : read->key_groups) merged.push_back(section);
  }
  std::vector<stream::key_group> expected;
  for (stream::key_group kg = 0; kg < 64; kg += 3) {
    if (wanted.contains(kg)) expected.push_back(kg);
  }
  for (stream::key_group kg = 64; kg < 128; kg += 3) {
    if (wanted.contains(kg)) expected.push_back(kg);
  }
  ASSERT_EQ(merged.size(), expected.size());
  for (std::size_t i = 0; i < merged.size(); ++i) {
    EXPECT_EQ(merged[i].group, expected[i]);
    EXPECT_EQ(merged[i].bytes, make_section(expected[i]).bytes);
  }
}

TEST(checkpoint_state_file, round_trips_the_runs_of_a_planned_table) {
  temp_dir dir;
  // Subtask 0 owns key groups 0-2, 40 and 90-99 after a planned rescale.
  const key_group_set owned{{{0, 3}, {40, 41}, {90, 100}}};
  operator_snapshot written;
  written.operator_id = 7;
  written.subtask = 0;
  written.state_names = {"counts"};
  for (stream::key_group kg : {0u, 2u, 40u, 95u}) {
    written.key_groups.push_back(make_section(kg));
  }
  auto handle = write_state_file(dir.path(), written, owned);
  ASSERT_TRUE(handle.ok()) << handle.error().to_string();
  EXPECT_EQ(handle->key_groups, owned);
  // A new owner of 1-40 reads 2 and 40 from it.
  auto read = read_state_file(dir.path(), *handle, kgs(1, 41));
  ASSERT_TRUE(read.ok()) << read.error().to_string();
  ASSERT_EQ(read->key_groups.size(), 2u);
  EXPECT_EQ(read->key_groups[0].group, 2u);
  EXPECT_EQ(read->key_groups[1].group, 40u);
  // Key group 3 lies between the runs: not this subtask's.
  written.key_groups.insert(written.key_groups.begin() + 2, make_section(3));
  auto outside = write_state_file(dir.path(), written, owned);
  ASSERT_FALSE(outside.ok());
  EXPECT_TRUE(contains(outside.error().message(),
                       "key group 3 is outside its key groups 0-2,40,90-99"))
      << outside.error().message();
}

TEST(checkpoint_state_file, refuses_key_groups_outside_the_owned_range) {
  temp_dir dir;
  auto outside = write_state_file(dir.path(), make_snapshot(1), kgs(0, 64));
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.error().code(), errc::invalid_argument);
  EXPECT_TRUE(contains(outside.error().message(), "key group 64"))
      << outside.error().message();

  operator_snapshot unordered = make_snapshot(0);
  std::swap(unordered.key_groups[0], unordered.key_groups[1]);
  auto swapped = write_state_file(dir.path(), unordered, kgs(0, 64));
  ASSERT_FALSE(swapped.ok());
  EXPECT_EQ(swapped.error().code(), errc::invalid_argument);
  EXPECT_FALSE(fs::exists(dir.sub("op-7-0.state")));
}

TEST(checkpoint_state_file, truncated_file_is_detected) {
  temp_dir dir;
  auto handle = write_state_file(dir.path(), make_snapshot(0), kgs(0, 64));
  ASSERT_TRUE(handle.ok()) << handle.error().to_string();
  const std::string path = dir.sub(handle->file);
  fs::resize_file(path, handle->bytes - 10);
  auto read = read_state_file(dir.path(), *handle, kgs(0, 64));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code(), errc::malformed_data);
  EXPECT_EQ(read.error().message(),
            "checkpoint state file '" + path +
                "' is truncated: " + std::to_string(handle->bytes - 10) +
                " bytes, the metadata says " + std::to_string(handle->bytes));
}

TEST(checkpoint_state_file, flipped_byte_fails_the_whole_file_checksum) {
  temp_dir dir;
  auto handle = write_state_file(dir.path(), make_snapshot(0), kgs(0, 64));
  ASSERT_TRUE(handle.ok()) << handle.error().to_string();
  const std::string path = dir.sub(handle->file);
  flip_byte_at(path, "value-12001");
  auto read = read_state_file(dir.path(), *handle, kgs(0, 64));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code(), errc::malformed_data);
  EXPECT_TRUE(contains(read.error().message(), "'" + path + "'"));
  EXPECT_TRUE(contains(read.error().message(), "checksum mismatch"))
      << read.error().message();
}

TEST(checkpoint_state_file, flipped_byte_fails_the_section_checksum) {
  temp_dir dir;
  auto handle = write_state_file(dir.path(), make_snapshot(0), kgs(0, 64));
  ASSERT_TRUE(handle.ok()) << handle.error().to_string();
  const std::string path = dir.sub(handle->file);
  flip_byte_at(path, "value-12001");
  // A handle that matches the damaged file: only the section checksum is
  // left to notice.
  state_handle forged = *handle;
  forged.crc32c = crc32c(read_text(path));
  auto read = read_state_file(dir.path(), forged, kgs(0, 64));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code(), errc::malformed_data);
  EXPECT_EQ(read.error().message(),
            "checkpoint state file '" + path +
                "' is malformed: key group 12: checksum mismatch");
  // Sections outside the wanted range are not checked, nor returned.
  auto others = read_state_file(dir.path(), forged, kgs(13, 64));
  EXPECT_TRUE(others.ok()) << others.error().to_string();
}

TEST(checkpoint_state_file, flipped_header_byte_fails_the_header_checksum) {
  temp_dir dir;
  auto handle = write_state_file(dir.path(), make_snapshot(0), kgs(0, 64));
  ASSERT_TRUE(handle.ok()) << handle.error().to_string();
  const std::string path = dir.sub(handle->file);
  flip_byte_at(path, "OPSTATE");
  state_handle forged = *handle;
  forged.crc32c = crc32c(read_text(path));
  auto read = read_state_file(dir.path(), forged, kgs(0, 64));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code(), errc::malformed_data);
  EXPECT_TRUE(contains(read.error().message(), "header checksum mismatch"))
      << read.error().message();
}

TEST(checkpoint_state_file, handle_of_another_subtask_is_refused) {
  temp_dir dir;
  auto handle = write_state_file(dir.path(), make_snapshot(0), kgs(0, 64));
  ASSERT_TRUE(handle.ok()) << handle.error().to_string();
  state_handle other = *handle;
  other.subtask = 1;
  auto read = read_state_file(dir.path(), other, kgs(0, 128));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code(), errc::malformed_data);
  EXPECT_TRUE(contains(read.error().message(),
                       "the metadata says operator 7 "
                       "subtask 1"))
      << read.error().message();
}

TEST(checkpoint_state_file, missing_file_is_not_found) {
  temp_dir dir;
  state_handle handle;
  handle.file = "op-1-0.state";
  auto read = read_state_file(dir.path(), handle, kgs(0, 128));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code(), errc::not_found);
  EXPECT_TRUE(contains(read.error().message(), dir.sub("op-1-0.state")));
}

TEST(checkpoint_state_file, hundred_megabytes_write_and_read_back) {
  temp_dir dir;
  constexpr std::size_t total_bytes = std::size_t{100} << 20;
  constexpr std::size_t value_bytes = 1000;
  std::string pool(std::size_t{64} * 1024, '\0');
  std::mt19937_64 random{7};
  for (char& c : pool) c = static_cast<char>(random());
  operator_snapshot snapshot;
  snapshot.operator_id = 1;
  snapshot.state_names = {"big"};
  std::size_t written = 0;
  std::uint64_t n = 0;
  for (stream::key_group kg = 0; kg < max_parallelism; ++kg) {
    key_group_section section;
    section.group = kg;
    entry_writer out{section.bytes};
    while (section.bytes.size() < total_bytes / max_parallelism) {
      const std::size_t at = (n * 4099) % (pool.size() - value_bytes);
      out.add(0, "key-" + std::to_string(n++),
              std::string_view{pool}.substr(at, value_bytes));
    }
    section.entries = out.count();
    written += section.bytes.size();
    snapshot.key_groups.push_back(std::move(section));
  }
  const auto write_start = std::chrono::steady_clock::now();
  auto handle = write_state_file(dir.path(), snapshot, kgs(0, max_parallelism));
  const auto write_end = std::chrono::steady_clock::now();
  ASSERT_TRUE(handle.ok()) << handle.error().to_string();
  EXPECT_GE(handle->bytes, written);
  EXPECT_EQ(handle->entries, n);

  metadata meta;
  meta.operators.push_back({1, "big", 1, {*handle}});
  const auto read_start = std::chrono::steady_clock::now();
  const stream::status verified = verify(dir.path(), meta);
  const auto verify_end = std::chrono::steady_clock::now();
  auto read = read_state_file(dir.path(), *handle, kgs(0, max_parallelism));
  const auto read_end = std::chrono::steady_clock::now();
  ASSERT_TRUE(verified.ok()) << verified.to_string();
  ASSERT_TRUE(read.ok()) << read.error().to_string();
  ASSERT_EQ(read->key_groups.size(), snapshot.key_groups.size());
  for (std::size_t i = 0; i < snapshot.key_groups.size(); ++i) {
    ASSERT_EQ(read->key_groups[i].bytes, snapshot.key_groups[i].bytes);
  }
  using ms = std::chrono::duration<double, std::milli>;
  std::cout << "[ info ] " << handle->bytes << " byte state file: write+fsync "
            << ms(write_end - write_start).count() << " ms, verify "
            << ms(verify_end - read_start).count() << " ms, read+verify "
            << ms(read_end - verify_end).count() << " ms\n";
}

// -- metadata -----------------------------------------------------------------

TEST(checkpoint_metadata, round_trips_every_field) {
  temp_dir dir;
  metadata written = write_checkpoint(dir.path(), 42, snapshot_kind::savepoint);
  written.final = true;
  written.operators.push_back({9, "sink \"ü\"", 1, {}});
  ASSERT_TRUE(write_metadata(dir.path(), written).ok());
  EXPECT_FALSE(fs::exists(dir.sub("_metadata.tmp")));

  auto read = read_metadata(dir.path());
  ASSERT_TRUE(read.ok()) << read.error().to_string();
  EXPECT_EQ(read->format, metadata::current_format);
  EXPECT_EQ(read->job, job);
  EXPECT_EQ(read->fingerprint, fingerprint);
  EXPECT_EQ(read->id, 42);
  EXPECT_EQ(read->kind, snapshot_kind::savepoint);
  EXPECT_EQ(read->created_ms, written.created_ms);
  EXPECT_EQ(read->max_parallelism, max_parallelism);
  EXPECT_TRUE(read->final);
  ASSERT_EQ(read->operators.size(), 2u);
  EXPECT_EQ(read->operators[1].name, "sink \"ü\"");
  const auto* op = read->find(7);
  ASSERT_NE(op, nullptr);
  EXPECT_EQ(op->name, "count");
  EXPECT_EQ(op->parallelism, 2u);
  ASSERT_EQ(op->subtasks.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    const state_handle& a = op->subtasks[i];
    const state_handle& b = written.operators[0].subtasks[i];
    EXPECT_EQ(a.operator_id, b.operator_id);
    EXPECT_EQ(a.subtask, b.subtask);
    EXPECT_EQ(a.file, b.file);
    EXPECT_EQ(a.bytes, b.bytes);
    EXPECT_EQ(a.crc32c, b.crc32c);
    EXPECT_EQ(a.key_groups, b.key_groups);
    EXPECT_EQ(a.entries, b.entries);
  }
  EXPECT_EQ(read->find(8), nullptr);
  EXPECT_EQ(read->state_bytes(), op->subtasks[0].bytes + op->subtasks[1].bytes);
  EXPECT_TRUE(verify(dir.path(), *read).ok());
}

TEST(checkpoint_metadata, missing_metadata_is_not_found) {
  temp_dir dir;
  auto read = read_metadata(dir.path());
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code(), errc::not_found);
  EXPECT_EQ(read.error().message(),
            "no _metadata in '" + dir.path() + "': not a complete checkpoint");
}

TEST(checkpoint_metadata, edited_value_fails_the_checksum) {
  temp_dir dir;
  write_checkpoint(dir.path(), 1);
  const std::string path = dir.sub("_metadata");
  write_text(path, replace_once(read_text(path), "\"max_parallelism\": 128",
                                "\"max_parallelism\": 256"));
  auto read = read_metadata(dir.path());
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code(), errc::malformed_data);
  EXPECT_TRUE(contains(read.error().message(), "'" + path + "'"));
  EXPECT_TRUE(contains(read.error().message(), "checksum mismatch"))
      << read.error().message();
}

TEST(checkpoint_metadata, truncated_metadata_is_malformed) {
  temp_dir dir;
  write_checkpoint(dir.path(), 1);
  const std::string path = dir.sub("_metadata");
  const std::string text = read_text(path);
  write_text(path, text.substr(0, text.size() / 2));
  auto read = read_metadata(dir.path());
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code(), errc::malformed_data);
  EXPECT_TRUE(contains(read.error().message(), "is not valid JSON"))
      << read.error().message();
}

/// Rewrites the metadata of `folder` through `edit`, with a checksum that
/// matches, as a careless tool or a newer version would.
template <class Edit>
void rewrite_metadata(const std::string& folder, Edit edit) {
  const std::string path = folder + "/_metadata";
  auto object = nlohmann::json::parse(read_text(path));
  object.erase("checksum");
  edit(object);
  object["checksum"] = crc32c(object.dump());
  write_text(path, object.dump(2));
}

TEST(checkpoint_metadata, mistyped_field_is_named) {
  temp_dir dir;
  write_checkpoint(dir.path(), 1);
  rewrite_metadata(dir.path(), [](nlohmann::json& object) {
    object["operators"][0]["subtasks"][1]["bytes"] = "many";
  });
  auto read = read_metadata(dir.path());
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code(), errc::malformed_data);
  EXPECT_TRUE(contains(read.error().message(),
                       "field 'operators[0].subtasks[1].bytes' is not an "
                       "unsigned 64-bit integer"))
      << read.error().message();
}

TEST(checkpoint_metadata, missing_field_and_unsafe_file_name_are_refused) {
  temp_dir dir;
  write_checkpoint(dir.path(), 1);
  rewrite_metadata(dir.path(),
                   [](nlohmann::json& object) { object.erase("job"); });
  auto missing = read_metadata(dir.path());
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(contains(missing.error().message(), "field 'job' is missing"))
      << missing.error().message();

  write_checkpoint(dir.path(), 1);
  rewrite_metadata(dir.path(), [](nlohmann::json& object) {
    object["operators"][0]["subtasks"][0]["file"] = "../../etc/passwd";
  });
  auto unsafe = read_metadata(dir.path());
  ASSERT_FALSE(unsafe.ok());
  EXPECT_EQ(unsafe.error().code(), errc::malformed_data);
  EXPECT_TRUE(contains(unsafe.error().message(), "is not a file name"))
      << unsafe.error().message();
}

TEST(checkpoint_metadata, newer_format_is_refused) {
  temp_dir dir;
  write_checkpoint(dir.path(), 1);
  const std::string path = dir.sub("_metadata");
  write_text(path,
             replace_once(read_text(path), "\"format\": 2", "\"format\": 3"));
  auto read = read_metadata(dir.path());
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.error().code(), errc::malformed_data);
  EXPECT_TRUE(contains(read.error().message(), "written by a newer version"))
      << read.error().message();
}

TEST(checkpoint_metadata, format_1_key_group_ranges_are_still_read) {
  temp_dir dir;
  write_checkpoint(dir.path(), 1);
  rewrite_metadata(dir.path(), [](nlohmann::json& object) {
    object["format"] = 1;
    object["operators"][0]["subtasks"][0]["key_groups"] = {0, 64};
    object["operators"][0]["subtasks"][1]["key_groups"] = {64, 128};
  });
  auto read = read_metadata(dir.path());
  ASSERT_TRUE(read.ok()) << read.error().to_string();
  EXPECT_EQ(read->format, 1u);
  EXPECT_EQ(read->operators[0].subtasks[0].key_groups, kgs(0, 64));
  EXPECT_EQ(read->operators[0].subtasks[1].key_groups, kgs(64, 128));
  // Format 1 with runs, or format 2 with a bare range, is malformed.
  rewrite_metadata(dir.path(), [](nlohmann::json& object) {
    object["operators"][0]["subtasks"][0]["key_groups"] = {{0, 64}};
  });
  EXPECT_FALSE(read_metadata(dir.path()).ok());
  write_checkpoint(dir.path(), 1);
  rewrite_metadata(dir.path(), [](nlohmann::json& object) {
    object["operators"][0]["subtasks"][0]["key_groups"] = {0, 64};
  });
  EXPECT_FALSE(read_metadata(dir.path()).ok());
}

TEST(checkpoint_metadata, damaged_key_group_runs_are_refused_naming_them) {
  struct damage {
    nlohmann::json subtask0;
    nlohmann::json subtask1;
    std::string says;
  };
  const std::vector<damage> damages{
      {{{0, 64}}, {{60, 128}}, "subtasks 0 and 1 both own key group 60"},
      {{{0, 64}},
       {{64, 200}},
       "subtask 1 owns key group 199, beyond the max "
       "parallelism 128"},
      {{{10, 64}, {0, 5}},
       {{64, 128}},
       "field 'operators[0].subtasks[0].key_groups' is not a list of "
       "ascending, separate [start, end] runs"},
      {{{0, 32}, {32, 64}}, {{64, 128}}, "is not a list of ascending"},
      {{{5, 5}}, {{64, 128}}, "is not a list of ascending"}};
  for (const damage& d : damages) {
    SCOPED_TRACE(d.says);
    temp_dir dir;
    write_checkpoint(dir.path(), 1);
    rewrite_metadata(dir.path(), [&](nlohmann::json& object) {
      object["operators"][0]["subtasks"][0]["key_groups"] = d.subtask0;
      object["operators"][0]["subtasks"][1]["key_groups"] = d.subtask1;
    });
    auto read = read_metadata(dir.path());
    ASSERT_FALSE(read.ok());
    EXPECT_EQ(read.error().code(), errc::malformed_data);
    EXPECT_TRUE(contains(read.error().message(), d.says))
        << read.error().message();
  }
}

TEST(checkpoint_storage, latest_falls_back_past_damaged_key_group_runs) {
  temp_dir dir;
  const storage store{dir.path(), "", job};
  add_checkpoint(store, 1);
  const std::string damaged = add_checkpoint(store, 2);
  rewrite_metadata(damaged, [](nlohmann::json& object) {
    object["operators"][0]["subtasks"][1]["key_groups"] = {{0, 128}};
  });
  std::vector<std::string> skipped;
  auto latest = store.latest(fingerprint, skipped);
  ASSERT_TRUE(latest.ok()) << latest.error().to_string();
  EXPECT_EQ(latest->meta.id, 1);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_TRUE(contains(skipped[0], "skipped checkpoint 2 (" + damaged + ")"))
      << skipped[0];
  EXPECT_TRUE(contains(skipped[0], "subtasks 0 and 1 both own key group 0"))
      << skipped[0];
}

TEST(checkpoint_metadata, verify_detects_a_missing_or_damaged_state_file) {
  temp_dir dir;
  const metadata meta = write_checkpoint(dir.path(), 1);
  ASSERT_TRUE(verify(dir.path(), meta).ok());
  flip_byte_at(dir.sub("op-7-1.state"), "value-");
  const stream::status damaged = verify(dir.path(), meta);
  EXPECT_EQ(damaged.code(), errc::malformed_data);
  EXPECT_TRUE(contains(damaged.message(), "op-7-1.state"));
  fs::remove(dir.sub("op-7-0.state"));
  EXPECT_EQ(verify(dir.path(), meta).code(), errc::not_found);
}

TEST(checkpoint_metadata, other_job_is_refused_naming_both_jobs) {
  metadata meta;
  meta.id = 5;
  meta.job = "clicks";
  meta.fingerprint = fingerprint;
  const stream::status checked = check_compatible(meta, job, fingerprint);
  EXPECT_EQ(checked.code(), errc::invalid_config);
  EXPECT_EQ(checked.message(),
            "checkpoint 5 belongs to job 'clicks', not to job 'wordcount'");
  EXPECT_TRUE(check_compatible(meta, "clicks", fingerprint).ok());
}

TEST(checkpoint_metadata, other_topology_is_refused_naming_both_fingerprints) {
  metadata meta;
  meta.id = 5;
  meta.job = job;
  meta.fingerprint = "topology-0";
  const stream::status checked = check_compatible(meta, job, fingerprint);
  EXPECT_EQ(checked.code(), errc::invalid_config);
  EXPECT_TRUE(contains(checked.message(), "different topology"));
  EXPECT_TRUE(contains(checked.message(), "topology-0"));
  EXPECT_TRUE(contains(checked.message(), "topology-1"));
}

// -- storage ------------------------------------------------------------------

TEST(checkpoint_storage, names_folders_by_kind_and_id) {
  const storage separate{"/ckpt", "/save", job};
  EXPECT_EQ(separate.root(), "/ckpt/wordcount");
  EXPECT_EQ(separate.folder(3, snapshot_kind::checkpoint),
            "/ckpt/wordcount/chk-3");
  EXPECT_EQ(separate.folder(4, snapshot_kind::savepoint),
            "/save/wordcount/sp-4");
  const storage shared{"/ckpt", "", job};
  EXPECT_EQ(shared.folder(4, snapshot_kind::savepoint), "/ckpt/wordcount/sp-4");
}

TEST(checkpoint_storage, create_replaces_a_leftover_and_discard_removes) {
  temp_dir dir;
  const storage store{dir.path(), "", job};
  auto first = store.create(1, snapshot_kind::checkpoint);
  ASSERT_TRUE(first.ok()) << first.error().to_string();
  write_text(*first + "/op-1-0.state", "half");
  auto again = store.create(1, snapshot_kind::checkpoint);
  ASSERT_TRUE(again.ok()) << again.error().to_string();
  EXPECT_EQ(*again, *first);
  EXPECT_TRUE(fs::is_empty(*again));
  EXPECT_TRUE(store.discard(*again).ok());
  EXPECT_FALSE(fs::exists(*again));
}

TEST(checkpoint_storage, highest_id_counts_checkpoints_and_savepoints) {
  temp_dir dir;
  const storage store{dir.sub("ckpt"), dir.sub("save"), job};
  EXPECT_EQ(store.highest_id(), 0);
  add_checkpoint(store, 3);
  ASSERT_TRUE(store.create(5, snapshot_kind::checkpoint).ok());  // incomplete
  EXPECT_EQ(store.highest_id(), 5);
  add_checkpoint(store, 9, snapshot_kind::savepoint);
  fs::create_directories(store.root() + "/chk-x12");
  fs::create_directories(store.root() + "/other-40");
  EXPECT_EQ(store.highest_id(), 9);
}

TEST(checkpoint_storage, latest_falls_back_past_a_corrupted_checkpoint) {
  temp_dir dir;
  const storage store{dir.path(), "", job};
  add_checkpoint(store, 1);
  add_checkpoint(store, 2);
  const std::string broken = add_checkpoint(store, 3);
  flip_byte_at(broken + "/op-7-0.state", "value-");
  ASSERT_TRUE(store.create(4, snapshot_kind::checkpoint).ok());

  std::vector<std::string> skipped;
  auto latest = store.latest(fingerprint, skipped);
  ASSERT_TRUE(latest.ok()) << latest.error().to_string();
  EXPECT_EQ(latest->meta.id, 2);
  EXPECT_EQ(latest->folder, store.folder(2, snapshot_kind::checkpoint));
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_TRUE(contains(skipped[0], "skipped checkpoint 4 (" + store.root() +
                                       "/chk-4): no _metadata"))
      << skipped[0];
  EXPECT_TRUE(contains(skipped[1], "skipped checkpoint 3 (" + broken + ")"))
      << skipped[1];
  EXPECT_TRUE(contains(skipped[1],
                       "op-7-0.state' is corrupt: checksum "
                       "mismatch"))
      << skipped[1];
}

TEST(checkpoint_storage, latest_skips_a_checkpoint_of_another_topology) {
  temp_dir dir;
  const storage store{dir.path(), "", job};
  add_checkpoint(store, 1);
  auto other = store.create(2, snapshot_kind::checkpoint);
  ASSERT_TRUE(other.ok());
  write_checkpoint(*other, 2, snapshot_kind::checkpoint, job, "topology-0");
  std::vector<std::string> skipped;
  auto latest = store.latest(fingerprint, skipped);
  ASSERT_TRUE(latest.ok()) << latest.error().to_string();
  EXPECT_EQ(latest->meta.id, 1);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_TRUE(contains(skipped[0], "different topology")) << skipped[0];
}

TEST(checkpoint_storage, latest_without_a_usable_checkpoint_is_not_found) {
  temp_dir dir;
  const storage store{dir.path(), "", job};
  std::vector<std::string> skipped;
  auto nothing = store.latest(fingerprint, skipped);
  ASSERT_FALSE(nothing.ok());
  EXPECT_EQ(nothing.error().code(), errc::not_found);
  EXPECT_EQ(nothing.error().message(), "no usable checkpoint in '" +
                                           store.root() +
                                           "': the folder does not exist");

  const std::string broken = add_checkpoint(store, 1);
  fs::resize_file(broken + "/op-7-1.state", 10);
  auto none = store.latest(fingerprint, skipped);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), errc::not_found);
  EXPECT_TRUE(contains(none.error().message(),
                       "no usable checkpoint in '" + store.root() + "'"));
  EXPECT_TRUE(contains(none.error().message(), "is truncated: 10 bytes"))
      << none.error().message();
  EXPECT_EQ(skipped.size(), 1u);
}

TEST(checkpoint_storage, retain_keeps_the_newest_and_never_savepoints) {
  temp_dir dir;
  const storage store{dir.path(), "", job};
  for (std::int64_t id : {1, 3, 4, 5}) add_checkpoint(store, id);
  ASSERT_TRUE(store.create(2, snapshot_kind::checkpoint).ok());  // abandoned
  ASSERT_TRUE(store.create(6, snapshot_kind::checkpoint).ok());  // in flight
  add_checkpoint(store, 7, snapshot_kind::savepoint);

  const std::vector<std::string> removed = store.retain(2);
  const auto chk = [&](std::int64_t id) {
    return store.folder(id, snapshot_kind::checkpoint);
  };
  EXPECT_EQ(removed, (std::vector<std::string>{chk(1), chk(2), chk(3)}));
  for (std::int64_t id : {1, 2, 3}) EXPECT_FALSE(fs::exists(chk(id))) << id;
  for (std::int64_t id : {4, 5, 6}) EXPECT_TRUE(fs::exists(chk(id))) << id;
  EXPECT_TRUE(fs::exists(store.folder(7, snapshot_kind::savepoint)));

  // Keeping none would leave nothing to restore from: one stays.
  EXPECT_EQ(store.retain(0), (std::vector<std::string>{chk(4)}));
  EXPECT_TRUE(fs::exists(chk(5)));
  EXPECT_TRUE(store.retain(1).empty());
}

// -- resolve ------------------------------------------------------------------

TEST(checkpoint_resolve, accepts_a_checkpoint_folder_or_its_metadata_file) {
  temp_dir dir;
  const storage store{dir.path(), "", job};
  add_checkpoint(store, 1);
  const std::string folder = add_checkpoint(store, 2);
  add_checkpoint(store, 3);
  for (const std::string& path :
       {folder, folder + "/", folder + "/_metadata"}) {
    std::vector<std::string> skipped;
    auto point = stream::checkpoint::resolve(path, job, fingerprint, skipped);
    ASSERT_TRUE(point.ok()) << path << ": " << point.error().to_string();
    EXPECT_EQ(point->meta.id, 2) << path;
    EXPECT_EQ(point->folder, folder);
    EXPECT_TRUE(skipped.empty());
  }
}

TEST(checkpoint_resolve, accepts_a_savepoint_folder) {
  temp_dir dir;
  const storage store{dir.sub("ckpt"), dir.sub("save"), job};
  const std::string folder = add_checkpoint(store, 4, snapshot_kind::savepoint);
  std::vector<std::string> skipped;
  auto point = stream::checkpoint::resolve(folder, job, fingerprint, skipped);
  ASSERT_TRUE(point.ok()) << point.error().to_string();
  EXPECT_EQ(point->meta.kind, snapshot_kind::savepoint);
}

TEST(checkpoint_resolve, returns_the_error_of_a_broken_checkpoint_folder) {
  temp_dir dir;
  const storage store{dir.path(), "", job};
  add_checkpoint(store, 1);
  const std::string broken = add_checkpoint(store, 2);
  flip_byte_at(broken + "/op-7-0.state", "value-");
  std::vector<std::string> skipped;
  auto point = stream::checkpoint::resolve(broken, job, fingerprint, skipped);
  ASSERT_FALSE(point.ok());
  EXPECT_EQ(point.error().code(), errc::malformed_data);

  auto other_job =
      stream::checkpoint::resolve(store.folder(1, snapshot_kind::checkpoint),
                                  "clicks", fingerprint, skipped);
  ASSERT_FALSE(other_job.ok());
  EXPECT_EQ(other_job.error().code(), errc::invalid_config);
  EXPECT_TRUE(contains(other_job.error().message(), "'wordcount'"));
  EXPECT_TRUE(contains(other_job.error().message(), "'clicks'"));
  EXPECT_TRUE(contains(other_job.error().message(),
                       store.folder(1, snapshot_kind::checkpoint)));
}

TEST(checkpoint_resolve, picks_the_newest_usable_in_a_job_root) {
  temp_dir dir;
  const storage store{dir.path(), "", job};
  add_checkpoint(store, 1);
  add_checkpoint(store, 2);
  const std::string broken = add_checkpoint(store, 3);
  fs::remove(broken + "/op-7-1.state");
  std::vector<std::string> skipped;
  auto point =
      stream::checkpoint::resolve(store.root(), job, fingerprint, skipped);
  ASSERT_TRUE(point.ok()) << point.error().to_string();
  EXPECT_EQ(point->meta.id, 2);
  ASSERT_EQ(skipped.size(), 1u);
  EXPECT_TRUE(contains(skipped[0], "does not exist")) << skipped[0];
}

TEST(checkpoint_resolve, finds_the_job_folder_in_a_checkpoint_directory) {
  temp_dir dir;
  const storage store{dir.path(), "", job};
  add_checkpoint(store, 1);
  add_checkpoint(store, 2);
  const storage other{dir.path(), "", "clicks"};
  add_checkpoint(other, 8);
  std::vector<std::string> skipped;
  auto point =
      stream::checkpoint::resolve(dir.path(), job, fingerprint, skipped);
  ASSERT_TRUE(point.ok()) << point.error().to_string();
  EXPECT_EQ(point->meta.id, 2);
  EXPECT_EQ(point->folder, store.folder(2, snapshot_kind::checkpoint));
}

TEST(checkpoint_resolve, nonexistent_or_empty_path_is_not_found) {
  temp_dir dir;
  std::vector<std::string> skipped;
  const std::string missing = dir.sub("nope");
  auto point = stream::checkpoint::resolve(missing, job, fingerprint, skipped);
  ASSERT_FALSE(point.ok());
  EXPECT_EQ(point.error().code(), errc::not_found);
  EXPECT_EQ(point.error().message(),
            "restore path '" + missing + "' does not exist");

  auto empty =
      stream::checkpoint::resolve(dir.path(), job, fingerprint, skipped);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code(), errc::not_found);
  EXPECT_TRUE(contains(empty.error().message(), "holds no checkpoint"))
      << empty.error().message();
}

TEST(checkpoint_storage, latest_takes_a_newer_savepoint_in_either_folder) {
  // A stop takes a savepoint: a restarted coordinator must resume from it,
  // not from the older checkpoint before it.
  temp_dir dir;
  const storage store{dir.sub("ckpt"), dir.sub("save"), job};
  add_checkpoint(store, 1);
  add_checkpoint(store, 2, snapshot_kind::savepoint);
  std::vector<std::string> skipped;
  auto latest = store.latest(fingerprint, skipped);
  ASSERT_TRUE(latest.ok()) << latest.error().to_string();
  EXPECT_EQ(latest->meta.id, 2);
  EXPECT_EQ(latest->meta.kind, snapshot_kind::savepoint);
  EXPECT_EQ(latest->folder, dir.sub("save") + "/" + job + "/sp-2");
  add_checkpoint(store, 3);
  latest = store.latest(fingerprint, skipped);
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->meta.id, 3);
  EXPECT_TRUE(skipped.empty());
}

TEST(checkpoint_storage, only_another_jobs_checkpoints_are_a_config_error) {
  temp_dir dir;
  const storage theirs{dir.path(), "", "other"};
  add_checkpoint(theirs, 1);  // written as job `wordcount` into other/
  std::vector<std::string> skipped;
  const storage mine{dir.path(), "", "other"};
  auto latest = mine.latest(fingerprint, skipped);
  ASSERT_FALSE(latest.ok());
  EXPECT_EQ(latest.error().code(), errc::invalid_config)
      << latest.error().to_string();
  EXPECT_TRUE(contains(latest.error().message(), "belongs to job"))
      << latest.error().message();
  auto resolved =
      stream::checkpoint::resolve(theirs.root(), "other", fingerprint, skipped);
  ASSERT_FALSE(resolved.ok());
  EXPECT_EQ(resolved.error().code(), errc::invalid_config);
}

TEST(checkpoint_metadata, an_id_below_one_is_refused) {
  for (std::int64_t id : {0, -5}) {
    temp_dir dir;
    write_checkpoint(dir.path(), 1);
    auto meta = read_metadata(dir.path());
    ASSERT_TRUE(meta.ok());
    meta->id = id;
    ASSERT_TRUE(stream::checkpoint::write_metadata(dir.path(), *meta).ok());
    auto forged = read_metadata(dir.path());
    ASSERT_FALSE(forged.ok()) << id;
    EXPECT_EQ(forged.error().code(), errc::malformed_data);
    EXPECT_TRUE(contains(forged.error().message(), "field 'id' is below 1"))
        << forged.error().message();
  }
}

TEST(checkpoint_resolve, metadata_that_disagrees_with_its_folder_is_refused) {
  temp_dir dir;
  const storage store{dir.path(), "", job};
  const std::string folder = add_checkpoint(store, 4);
  auto meta = read_metadata(folder);
  ASSERT_TRUE(meta.ok());
  for (auto [id, kind] :
       {std::pair{std::int64_t{7}, snapshot_kind::checkpoint},
        std::pair{std::int64_t{4}, snapshot_kind::savepoint}}) {
    meta->id = id;
    meta->kind = kind;
    ASSERT_TRUE(stream::checkpoint::write_metadata(folder, *meta).ok());
    std::vector<std::string> skipped;
    auto point = stream::checkpoint::resolve(folder, job, fingerprint, skipped);
    ASSERT_FALSE(point.ok());
    EXPECT_EQ(point.error().code(), errc::malformed_data);
    EXPECT_TRUE(contains(point.error().message(), "not what the folder's name"))
        << point.error().message();
    // Restoring the job's folder passes over it.
    auto latest = store.latest(fingerprint, skipped);
    EXPECT_FALSE(latest.ok());
  }
}

TEST(checkpoint_resume, a_final_or_drained_checkpoint_is_refused_unless_asked) {
  stream::checkpoint::restore_point point;
  point.folder = "/ckpt/job/chk-9";
  point.meta.id = 9;
  std::string warning = "stale";
  EXPECT_TRUE(stream::checkpoint::check_resumable(point, false, warning).ok());
  EXPECT_TRUE(warning.empty());

  point.meta.final = true;
  auto ended = stream::checkpoint::check_resumable(point, false, warning);
  ASSERT_FALSE(ended.ok());
  EXPECT_EQ(ended.code(), errc::invalid_config);
  EXPECT_TRUE(contains(ended.message(),
                       "checkpoint 9 in '/ckpt/job/chk-9' "
                       "is final: the job's input ended"))
      << ended.message();
  EXPECT_TRUE(contains(ended.message(), "--restore-final")) << ended.message();

  point.meta.drained = true;
  auto drained = stream::checkpoint::check_resumable(point, false, warning);
  ASSERT_FALSE(drained.ok());
  EXPECT_TRUE(contains(drained.message(), "was taken after a drain"))
      << drained.message();
  EXPECT_TRUE(contains(drained.message(), "dropped as late"))
      << drained.message();

  ASSERT_TRUE(stream::checkpoint::check_resumable(point, true, warning).ok());
  EXPECT_TRUE(contains(warning, "warning: --restore-final: checkpoint 9"))
      << warning;
}

TEST(checkpoint_metadata, drained_round_trips_and_requires_final) {
  temp_dir dir;
  auto meta = write_checkpoint(dir.path(), 1);
  meta.final = true;
  meta.drained = true;
  ASSERT_TRUE(stream::checkpoint::write_metadata(dir.path(), meta).ok());
  auto back = read_metadata(dir.path());
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_TRUE(back->final);
  EXPECT_TRUE(back->drained);
  meta.final = false;
  ASSERT_TRUE(stream::checkpoint::write_metadata(dir.path(), meta).ok());
  auto odd = read_metadata(dir.path());
  ASSERT_FALSE(odd.ok());
  EXPECT_TRUE(contains(odd.error().message(), "'drained' is true"))
      << odd.error().message();
}

}  // namespace
