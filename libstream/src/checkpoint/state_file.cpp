// Checkpoint state files: the encoding of keyed entries and the file that
// holds one operator instance's state. The byte layout is specified in
// FORMAT.md beside this file; keep the two in step.

#include <bit>
#include <cstring>
#include <limits>
#include <optional>

#include "io.hpp"
#include "stream/checkpoint/storage.hpp"

namespace stream::checkpoint {
namespace {

using detail::checked_writer;
using detail::load_checked;

static_assert(std::endian::native == std::endian::little,
              "state files are little-endian and copied with memcpy");

constexpr std::string_view state_magic = "STRMST01";
constexpr std::string_view state_end_magic = "STRMEND1";
// Version 2 holds the owned key groups as runs; version 1 as one range.
constexpr std::uint32_t state_version = 2;
// u64 index offset, u32 header crc, u32 index crc, end magic.
constexpr std::size_t footer_bytes = 8 + 4 + 4 + 8;
// u32 key group, u64 offset, u64 length, u64 entries, u32 crc.
constexpr std::size_t index_entry_bytes = 4 + 8 + 8 + 8 + 4;

status malformed_state(const std::string& path, std::string_view what) {
  return {errc::malformed_data, "checkpoint state file '" + path +
                                    "' is malformed: " + std::string{what}};
}

void put_u32(std::string& out, std::uint32_t value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

void put_u64(std::string& out, std::uint64_t value) {
  out.append(reinterpret_cast<const char*>(&value), sizeof(value));
}

void put_varint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

// A LEB128 varint of at most 10 bytes; false if it runs past the end or
// does not fit in 64 bits.
bool get_varint(std::string_view& in, std::uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty()) return false;
    const auto byte = static_cast<std::uint8_t>(in.front());
    in.remove_prefix(1);
    if (shift == 63 && byte > 1) return false;
    value |= std::uint64_t{byte & 0x7Fu} << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// Bounds-checked little-endian reads from untrusted bytes; after the first
// failure every read fails.
class byte_reader {
 public:
  explicit byte_reader(std::string_view bytes) : bytes_(bytes) {}

  template <class T>
  bool get(T& value) {
    if (!ok_ || bytes_.size() - pos_ < sizeof(T)) return ok_ = false;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool get(std::string_view& out, std::uint64_t size) {
    if (!ok_ || bytes_.size() - pos_ < size) return ok_ = false;
    out = bytes_.substr(pos_, size);
    pos_ += size;
    return true;
  }
  std::size_t position() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return bytes_.size() - pos_; }

 private:
  std::string_view bytes_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

void entry_writer::add(std::uint32_t state, std::string_view key,
                       std::string_view value) {
  put_varint(*out_, state);
  put_varint(*out_, key.size());
  out_->append(key);
  put_varint(*out_, value.size());
  out_->append(value);
  ++count_;
}

bool entry_reader::next(std::uint32_t& state, std::string_view& key,
                        std::string_view& value) {
  if (rest_.empty() || !error_.ok()) return false;
  const auto fail = [this](std::string_view what) {
    error_ = {errc::malformed_data,
              "malformed keyed state entry: " + std::string{what}};
    rest_ = {};
    return false;
  };
  std::uint64_t index = 0;
  std::uint64_t size = 0;
  if (!get_varint(rest_, index) ||
      index > std::numeric_limits<std::uint32_t>::max()) {
    return fail("bad state index");
  }
  if (!get_varint(rest_, size) || size > rest_.size()) {
    return fail("the key runs past the end of the section");
  }
  key = rest_.substr(0, size);
  rest_.remove_prefix(size);
  if (!get_varint(rest_, size) || size > rest_.size()) {
    return fail("the value runs past the end of the section");
  }
  value = rest_.substr(0, size);
  rest_.remove_prefix(size);
  state = static_cast<std::uint32_t>(index);
  return true;
}

// ---------------------------------------------------------------------------
// State files

namespace {

std::string state_file_name(std::uint32_t operator_id, std::uint32_t subtask) {
  return "op-" + std::to_string(operator_id) + "-" + std::to_string(subtask) +
         ".state";
}

status check_sections(const operator_snapshot& snapshot,
                      const key_group_set& owned) {
  const std::string who = "operator " + std::to_string(snapshot.operator_id) +
                          " subtask " + std::to_string(snapshot.subtask);
  std::optional<key_group> previous;
  for (const key_group_section& section : snapshot.key_groups) {
    if (!owned.contains(section.group)) {
      return {errc::invalid_argument,
              who + ": key group " + std::to_string(section.group) +
                  " is outside its key groups " + owned.to_string()};
    }
    if (previous && section.group <= *previous) {
      return {errc::invalid_argument,
              who + ": key groups must be ascending and unique, " +
                  std::to_string(section.group) + " follows " +
                  std::to_string(*previous)};
    }
    previous = section.group;
  }
  return {};
}

std::string encode_header(const operator_snapshot& snapshot,
                          const key_group_set& owned) {
  std::string header{state_magic};
  put_u32(header, state_version);
  put_u32(header, snapshot.operator_id);
  put_u32(header, snapshot.subtask);
  put_u32(header, static_cast<std::uint32_t>(owned.runs().size()));
  for (const key_group_range& run : owned.runs()) {
    put_u32(header, run.start);
    put_u32(header, run.end);
  }
  put_u32(header, static_cast<std::uint32_t>(snapshot.state_names.size()));
  for (const std::string& name : snapshot.state_names) {
    put_u32(header, static_cast<std::uint32_t>(name.size()));
    header += name;
  }
  put_u64(header, snapshot.operator_state.size());
  header += snapshot.operator_state;
  return header;
}

}  // namespace

result<state_handle> write_state_file(const std::string& folder,
                                      const operator_snapshot& snapshot,
                                      const key_group_set& owned) {
  if (status checked = check_sections(snapshot, owned); !checked.ok()) {
    return checked;
  }
  state_handle handle;
  handle.operator_id = snapshot.operator_id;
  handle.subtask = snapshot.subtask;
  handle.file = state_file_name(snapshot.operator_id, snapshot.subtask);
  handle.key_groups = owned;

  const std::string header = encode_header(snapshot, owned);
  std::string index;
  put_u32(index, static_cast<std::uint32_t>(snapshot.key_groups.size()));
  std::uint64_t offset = header.size();
  for (const key_group_section& section : snapshot.key_groups) {
    put_u32(index, section.group);
    put_u64(index, offset);
    put_u64(index, section.bytes.size());
    put_u64(index, section.entries);
    put_u32(index, crc32c(section.bytes));
    offset += section.bytes.size();
    handle.entries += section.entries;
  }
  std::string footer;
  put_u64(footer, offset);
  put_u32(footer, crc32c(header));
  put_u32(footer, crc32c(index));
  footer += state_end_magic;

  checked_writer out{folder + "/" + handle.file};
  out.append(header);
  for (const key_group_section& section : snapshot.key_groups) {
    out.append(section.bytes);
  }
  out.append(index);
  out.append(footer);
  if (status finished = out.finish(); !finished.ok()) return finished;
  handle.bytes = out.bytes();
  handle.crc32c = out.crc();
  return handle;
}

namespace detail {

status load_checked(const std::string& path, const state_handle& handle,
                    std::string* contents) {
  file_descriptor fd{open_file(path, O_RDONLY)};
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT) {
      return {errc::not_found,
              "checkpoint state file '" + path + "' does not exist"};
    }
    return io_failure("open", path, err);
  }
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return io_failure("stat", path, errno);
  const auto size = static_cast<std::uint64_t>(info.st_size);
  const auto size_error = [&](std::uint64_t actual) -> status {
    return {
        errc::malformed_data,
        "checkpoint state file '" + path + "' " +
            (actual < handle.bytes ? "is truncated" : "has the wrong size") +
            ": " + std::to_string(actual) + " bytes, the metadata says " +
            std::to_string(handle.bytes)};
  };
  if (size != handle.bytes) return size_error(size);

  std::string buffer;
  if (contents != nullptr) {
    contents->resize(size);
  } else {
    buffer.resize(std::min<std::uint64_t>(size, read_chunk_bytes));
  }
  std::uint32_t crc = 0;
  for (std::uint64_t done = 0; done < size;) {
    const std::size_t want =
        std::min<std::uint64_t>(size - done, read_chunk_bytes);
    char* at = contents != nullptr ? contents->data() + done : buffer.data();
    std::size_t got = 0;
    if (const int err = read_all(fd.get(), at, want, got)) {
      return io_failure("read", path, err);
    }
    // Shrunk since fstat: someone is truncating it under us.
    if (got < want) return size_error(done + got);
    crc = crc32c(std::string_view{at, want}, crc);
    done += want;
  }
  if (crc != handle.crc32c) {
    return {errc::malformed_data,
            "checkpoint state file '" + path +
                "' is corrupt: checksum mismatch (crc32c " + hex32(crc) +
                ", the metadata says " + hex32(handle.crc32c) + ")"};
  }
  return {};
}

}  // namespace detail

namespace {

// The header: magic, version, identity, state names and operator state.
status parse_header(const std::string& path, byte_reader& in,
                    const state_handle& handle, operator_snapshot& out) {
  std::string_view magic;
  std::uint32_t version = 0;
  std::uint32_t names = 0;
  if (!in.get(magic, state_magic.size()) || magic != state_magic) {
    return malformed_state(
        path, "it does not start with " + std::string{state_magic});
  }
  if (!in.get(version) || version < 1 || version > state_version) {
    return malformed_state(path, "unknown version " + std::to_string(version));
  }
  if (!in.get(out.operator_id) || !in.get(out.subtask)) {
    return malformed_state(path, "the header is cut short");
  }
  // Version 1: one range. Version 2: a count, then the runs.
  std::uint32_t run_count = 1;
  if (version >= 2 && !in.get(run_count)) {
    return malformed_state(path, "the header is cut short");
  }
  // No reserve(run_count): the count is untrusted until the runs are read.
  std::vector<key_group_range> runs;
  for (std::uint32_t i = 0; i < run_count; ++i) {
    key_group_range run;
    if (!in.get(run.start) || !in.get(run.end)) {
      return malformed_state(path, "the header is cut short");
    }
    runs.push_back(run);
  }
  if (!in.get(names)) return malformed_state(path, "the header is cut short");
  const key_group_set owned{std::move(runs)};
  if (out.operator_id != handle.operator_id || out.subtask != handle.subtask ||
      owned != handle.key_groups) {
    return malformed_state(
        path, "it holds operator " + std::to_string(out.operator_id) +
                  " subtask " + std::to_string(out.subtask) + " key groups " +
                  owned.to_string() + ", the metadata says operator " +
                  std::to_string(handle.operator_id) + " subtask " +
                  std::to_string(handle.subtask) + " key groups " +
                  handle.key_groups.to_string());
  }
  // No reserve(names): the count is untrusted until the loop has read them.
  for (std::uint32_t i = 0; i < names; ++i) {
    std::uint32_t size = 0;
    std::string_view name;
    if (!in.get(size) || !in.get(name, size)) {
      return malformed_state(path, "the state names are cut short");
    }
    out.state_names.emplace_back(name);
  }
  std::uint64_t size = 0;
  std::string_view operator_state;
  if (!in.get(size) || !in.get(operator_state, size)) {
    return malformed_state(path, "the operator state is cut short");
  }
  out.operator_state = operator_state;
  return {};
}

// Parses a file whose size and whole-file checksum are already checked:
// a failure here means a writer bug or a handle that does not belong to the
// file, and is reported as malformed data all the same.
result<operator_snapshot> parse_state_file(const std::string& path,
                                           std::string_view bytes,
                                           const state_handle& handle,
                                           const key_group_set& wanted) {
  if (bytes.size() < state_magic.size() + footer_bytes) {
    return malformed_state(path, "it is too short to be a state file");
  }
  const std::string_view body = bytes.substr(0, bytes.size() - footer_bytes);
  byte_reader footer{bytes.substr(body.size())};
  std::uint64_t index_offset = 0;
  std::uint32_t header_crc = 0;
  std::uint32_t index_crc = 0;
  std::string_view end_magic;
  footer.get(index_offset);
  footer.get(header_crc);
  footer.get(index_crc);
  if (!footer.get(end_magic, state_end_magic.size()) ||
      end_magic != state_end_magic) {
    return malformed_state(
        path, "it does not end with " + std::string{state_end_magic});
  }

  operator_snapshot out;
  byte_reader header{body};
  if (status s = parse_header(path, header, handle, out); !s.ok()) return s;
  const std::size_t header_end = header.position();
  if (crc32c(body.substr(0, header_end)) != header_crc) {
    return malformed_state(path, "header checksum mismatch");
  }
  if (index_offset < header_end || index_offset > body.size()) {
    return malformed_state(path, "index offset " +
                                     std::to_string(index_offset) +
                                     " lies outside the file");
  }
  const std::string_view index_bytes = body.substr(index_offset);
  if (crc32c(index_bytes) != index_crc) {
    return malformed_state(path, "index checksum mismatch");
  }
  byte_reader index{index_bytes};
  std::uint32_t count = 0;
  if (!index.get(count) || index.remaining() != count * index_entry_bytes) {
    return malformed_state(path, "the index size does not match its count");
  }
  // Sections are contiguous and ascending, from the end of the header to
  // the index: anything else is a structure this version never writes.
  std::uint64_t expected_offset = header_end;
  std::optional<key_group> previous;
  for (std::uint32_t i = 0; i < count; ++i) {
    key_group_section section;
    std::uint64_t offset = 0;
    std::uint64_t length = 0;
    std::uint32_t crc = 0;
    index.get(section.group);
    index.get(offset);
    index.get(length);
    index.get(section.entries);
    index.get(crc);
    const std::string group = "key group " + std::to_string(section.group);
    if (offset != expected_offset || length > index_offset - offset) {
      return malformed_state(path, group + " lies outside its place");
    }
    if (!handle.key_groups.contains(section.group) ||
        (previous && section.group <= *previous)) {
      return malformed_state(path, group + " is out of order or range");
    }
    previous = section.group;
    expected_offset = offset + length;
    if (!wanted.contains(section.group)) continue;
    const std::string_view section_bytes = body.substr(offset, length);
    if (crc32c(section_bytes) != crc) {
      return malformed_state(path, group + ": checksum mismatch");
    }
    section.bytes = section_bytes;
    out.key_groups.push_back(std::move(section));
  }
  if (expected_offset != index_offset) {
    return malformed_state(path, "bytes between the sections and the index");
  }
  return out;
}

}  // namespace

result<operator_snapshot> read_state_file(const std::string& folder,
                                          const state_handle& handle,
                                          const key_group_set& wanted) {
  const std::string path = folder + "/" + handle.file;
  std::string bytes;
  if (status loaded = load_checked(path, handle, &bytes); !loaded.ok()) {
    return loaded;
  }
  return parse_state_file(path, bytes, handle, wanted);
}

}  // namespace stream::checkpoint
