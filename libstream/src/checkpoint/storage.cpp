// Checkpoint storage: state files, `_metadata` and the folders of one job.
// The byte layout is specified in FORMAT.md beside this file; keep the two
// in step.

#include "stream/checkpoint/storage.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <system_error>
#include <utility>

namespace stream::checkpoint {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

static_assert(std::endian::native == std::endian::little,
              "state files are little-endian and copied with memcpy");

constexpr std::string_view state_magic = "STRMST01";
constexpr std::string_view state_end_magic = "STRMEND1";
constexpr std::uint32_t state_version = 1;
// u64 index offset, u32 header crc, u32 index crc, end magic.
constexpr std::size_t footer_bytes = 8 + 4 + 4 + 8;
// u32 key group, u64 offset, u64 length, u64 entries, u32 crc.
constexpr std::size_t index_entry_bytes = 4 + 8 + 8 + 8 + 4;
// Bytes per read(): large enough that system calls cost nothing next to
// the checksum, small enough that `verify` needs only a modest buffer.
constexpr std::size_t read_chunk_bytes = std::size_t{8} << 20;

std::string hex32(std::uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08x", value);
  return text;
}

status io_failure(std::string_view what, const std::string& path, int err) {
  return {errc::io_error, "cannot " + std::string{what} + " '" + path +
                              "': " + std::generic_category().message(err)};
}

status malformed_state(const std::string& path, std::string_view what) {
  return {errc::malformed_data, "checkpoint state file '" + path +
                                    "' is malformed: " + std::string{what}};
}

// Owns a POSIX file descriptor. Close errors matter only after writes,
// where `close_checked` reports them.
class file_descriptor {
 public:
  explicit file_descriptor(int fd) : fd_(fd) {}
  file_descriptor(const file_descriptor&) = delete;
  file_descriptor& operator=(const file_descriptor&) = delete;
  ~file_descriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  // 0 or the errno of close().
  int close_checked() noexcept {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

int open_file(const std::string& path, int flags, mode_t mode = 0) {
  int fd = -1;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// 0 or the errno of the failed write.
int write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, std::min(size, read_chunk_bytes));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return 0;
}

// Reads up to `size` bytes; fewer only at the end of the file. 0 or errno.
int read_all(int fd, char* data, std::size_t size, std::size_t& got) {
  got = 0;
  while (got < size) {
    const ssize_t n = ::read(fd, data + got, size - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return 0;
}

status fsync_directory(const std::string& path) {
  file_descriptor dir{open_file(path, O_RDONLY | O_DIRECTORY)};
  if (!dir.valid()) return io_failure("open folder", path, errno);
  if (::fsync(dir.get()) != 0) return io_failure("fsync folder", path, errno);
  return {};
}

// Writes a new file front to back, keeping its size and CRC32C. A file
// that is not finished is removed, so a failed write leaves nothing behind
// that could be mistaken for a complete file.
class checked_writer {
 public:
  explicit checked_writer(std::string path)
      : path_(std::move(path)),
        fd_(open_file(path_, O_WRONLY | O_CREAT | O_TRUNC, 0644)) {
    if (!fd_.valid()) error_ = io_failure("create", path_, errno);
  }
  checked_writer(const checked_writer&) = delete;
  checked_writer& operator=(const checked_writer&) = delete;
  ~checked_writer() {
    if (!finished_ && fd_.valid()) ::unlink(path_.c_str());
  }

  void append(std::string_view bytes) {
    if (!error_.ok()) return;
    if (const int err = write_all(fd_.get(), bytes.data(), bytes.size())) {
      error_ = io_failure("write", path_, err);
      return;
    }
    crc_ = crc32c(bytes, crc_);
    bytes_ += bytes.size();
  }

  // Makes the content durable; the file's name becomes durable with the
  // fsync of its folder after `_metadata` is renamed into place.
  status finish() {
    if (!error_.ok()) return error_;
    if (::fsync(fd_.get()) != 0) return io_failure("fsync", path_, errno);
    if (const int err = fd_.close_checked()) {
      return io_failure("close", path_, err);
    }
    finished_ = true;
    return {};
  }

  std::uint64_t bytes() const noexcept { return bytes_; }
  std::uint32_t crc() const noexcept { return crc_; }

 private:
  std::string path_;
  file_descriptor fd_;
  status error_;
  std::uint64_t bytes_ = 0;
  std::uint32_t crc_ = 0;
  bool finished_ = false;
};

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

std::string range_text(key_group_range range) {
  return "[" + std::to_string(range.start) + ", " + std::to_string(range.end) +
         ")";
}

status check_sections(const operator_snapshot& snapshot,
                      key_group_range owned) {
  const std::string who = "operator " + std::to_string(snapshot.operator_id) +
                          " subtask " + std::to_string(snapshot.subtask);
  std::optional<key_group> previous;
  for (const key_group_section& section : snapshot.key_groups) {
    if (!owned.contains(section.group)) {
      return {errc::invalid_argument,
              who + ": key group " + std::to_string(section.group) +
                  " is outside its key groups " + range_text(owned)};
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
                          key_group_range owned) {
  std::string header{state_magic};
  put_u32(header, state_version);
  put_u32(header, snapshot.operator_id);
  put_u32(header, snapshot.subtask);
  put_u32(header, owned.start);
  put_u32(header, owned.end);
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
                                      key_group_range owned) {
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

namespace {

// Checks the size and whole-file CRC32C of `path` against `handle`, reading
// every byte once; keeps the bytes in `contents` when it is not null.
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

// The header: magic, version, identity, state names and operator state.
status parse_header(const std::string& path, byte_reader& in,
                    const state_handle& handle, operator_snapshot& out) {
  std::string_view magic;
  std::uint32_t version = 0;
  key_group_range range;
  std::uint32_t names = 0;
  if (!in.get(magic, state_magic.size()) || magic != state_magic) {
    return malformed_state(
        path, "it does not start with " + std::string{state_magic});
  }
  if (!in.get(version) || version != state_version) {
    return malformed_state(path, "unknown version " + std::to_string(version));
  }
  if (!in.get(out.operator_id) || !in.get(out.subtask) ||
      !in.get(range.start) || !in.get(range.end) || !in.get(names)) {
    return malformed_state(path, "the header is cut short");
  }
  if (out.operator_id != handle.operator_id || out.subtask != handle.subtask ||
      range != handle.key_groups) {
    return malformed_state(
        path, "it holds operator " + std::to_string(out.operator_id) +
                  " subtask " + std::to_string(out.subtask) + " key groups " +
                  range_text(range) + ", the metadata says operator " +
                  std::to_string(handle.operator_id) + " subtask " +
                  std::to_string(handle.subtask) + " key groups " +
                  range_text(handle.key_groups));
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
                                           key_group_range wanted) {
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
                                          key_group_range wanted) {
  const std::string path = folder + "/" + handle.file;
  std::string bytes;
  if (status loaded = load_checked(path, handle, &bytes); !loaded.ok()) {
    return loaded;
  }
  return parse_state_file(path, bytes, handle, wanted);
}

// ---------------------------------------------------------------------------
// Metadata

std::uint64_t metadata::state_bytes() const noexcept {
  std::uint64_t total = 0;
  for (const operator_entry& op : operators) {
    for (const state_handle& handle : op.subtasks) total += handle.bytes;
  }
  return total;
}

const metadata::operator_entry* metadata::find(
    std::uint32_t operator_id) const noexcept {
  for (const operator_entry& op : operators) {
    if (op.id == operator_id) return &op;
  }
  return nullptr;
}

namespace {

constexpr std::string_view metadata_name = "_metadata";

// Invalid UTF-8 in a name is replaced rather than thrown on; the
// replacement dumps identically after a parse, so checksums still match.
std::string dump(const json& value, int indent = -1) {
  return value.dump(indent, ' ', false, json::error_handler_t::replace);
}

json to_json(const metadata& meta) {
  json operators = json::array();
  for (const metadata::operator_entry& op : meta.operators) {
    json subtasks = json::array();
    for (const state_handle& handle : op.subtasks) {
      subtasks.push_back({{"subtask", handle.subtask},
                          {"file", handle.file},
                          {"bytes", handle.bytes},
                          {"crc32c", handle.crc32c},
                          {"key_groups", json::array({handle.key_groups.start,
                                                      handle.key_groups.end})},
                          {"entries", handle.entries}});
    }
    operators.push_back({{"id", op.id},
                         {"name", op.name},
                         {"parallelism", op.parallelism},
                         {"subtasks", std::move(subtasks)}});
  }
  return {{"format", meta.format},
          {"job", meta.job},
          {"fingerprint", meta.fingerprint},
          {"id", meta.id},
          {"kind",
           meta.kind == snapshot_kind::savepoint ? "savepoint" : "checkpoint"},
          {"created_ms", meta.created_ms},
          {"max_parallelism", meta.max_parallelism},
          {"final", meta.final},
          {"operators", std::move(operators)}};
}

// Reads typed fields of parsed metadata and keeps the first field that is
// missing or mistyped, so that the message can name it.
class field_reader {
 public:
  template <class T>
  T get(const json& object, const std::string& where, const char* key) {
    const std::string name = where.empty() ? key : where + "." + key;
    const auto it = object.find(key);
    if (it == object.end()) return fail<T>(name, "is missing");
    const json& value = *it;
    if constexpr (std::is_same_v<T, std::string>) {
      if (value.is_string()) return value.get<std::string>();
      return fail<T>(name, "is not a string");
    } else if constexpr (std::is_same_v<T, bool>) {
      if (value.is_boolean()) return value.get<bool>();
      return fail<T>(name, "is not true or false");
    } else if constexpr (std::is_same_v<T, json>) {
      if (value.is_array()) return value;
      return fail<T>(name, "is not an array");
    } else if constexpr (std::is_signed_v<T>) {
      if (value.is_number_integer() &&
          (!value.is_number_unsigned() ||
           value.get<std::uint64_t>() <=
               static_cast<std::uint64_t>(std::numeric_limits<T>::max()))) {
        return value.get<T>();
      }
      return fail<T>(name, "is not a 64-bit integer");
    } else {
      if (value.is_number_unsigned() &&
          value.get<std::uint64_t>() <= std::numeric_limits<T>::max()) {
        return value.get<T>();
      }
      return fail<T>(name, "is not an unsigned " +
                               std::to_string(sizeof(T) * 8) + "-bit integer");
    }
  }

  // Records a problem found by the caller, if it is the first.
  void problem(std::string text) {
    if (problem_.empty()) problem_ = std::move(text);
  }
  const std::string& problem() const noexcept { return problem_; }

 private:
  template <class T>
  T fail(const std::string& name, std::string_view why) {
    problem("field '" + name + "' " + std::string{why});
    return T{};
  }

  std::string problem_;
};

// A file name from metadata is joined to the folder: refuse anything that
// would reach outside it.
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find('/') == std::string::npos;
}

state_handle read_handle(field_reader& fields, const json& object,
                         const std::string& where, std::uint32_t operator_id) {
  state_handle handle;
  handle.operator_id = operator_id;
  handle.subtask = fields.get<std::uint32_t>(object, where, "subtask");
  handle.file = fields.get<std::string>(object, where, "file");
  handle.bytes = fields.get<std::uint64_t>(object, where, "bytes");
  handle.crc32c = fields.get<std::uint32_t>(object, where, "crc32c");
  handle.entries = fields.get<std::uint64_t>(object, where, "entries");
  const json range = fields.get<json>(object, where, "key_groups");
  if (range.size() == 2 && range[0].is_number_unsigned() &&
      range[1].is_number_unsigned() &&
      range[0].get<std::uint64_t>() <= range[1].get<std::uint64_t>() &&
      range[1].get<std::uint64_t>() <= max_max_parallelism) {
    handle.key_groups = {range[0].get<std::uint32_t>(),
                         range[1].get<std::uint32_t>()};
  } else {
    fields.problem("field '" + where + ".key_groups' is not [start, end]");
  }
  if (!is_plain_file_name(handle.file)) {
    fields.problem("field '" + where + ".file' is not a file name");
  }
  return handle;
}

metadata from_json(field_reader& fields, const json& object) {
  metadata meta;
  meta.format = fields.get<std::uint32_t>(object, "", "format");
  meta.job = fields.get<std::string>(object, "", "job");
  meta.fingerprint = fields.get<std::string>(object, "", "fingerprint");
  meta.id = fields.get<std::int64_t>(object, "", "id");
  const std::string kind = fields.get<std::string>(object, "", "kind");
  if (kind == "savepoint") {
    meta.kind = snapshot_kind::savepoint;
  } else if (kind != "checkpoint") {
    fields.problem("field 'kind' is neither checkpoint nor savepoint");
  }
  meta.created_ms = fields.get<std::int64_t>(object, "", "created_ms");
  meta.max_parallelism =
      fields.get<std::uint32_t>(object, "", "max_parallelism");
  meta.final = fields.get<bool>(object, "", "final");
  const json operators = fields.get<json>(object, "", "operators");
  for (std::size_t i = 0; i < operators.size(); ++i) {
    const std::string where = "operators[" + std::to_string(i) + "]";
    if (!operators[i].is_object()) {
      fields.problem("field '" + where + "' is not an object");
      break;
    }
    metadata::operator_entry op;
    op.id = fields.get<std::uint32_t>(operators[i], where, "id");
    op.name = fields.get<std::string>(operators[i], where, "name");
    op.parallelism =
        fields.get<std::uint32_t>(operators[i], where, "parallelism");
    const json subtasks = fields.get<json>(operators[i], where, "subtasks");
    for (std::size_t j = 0; j < subtasks.size(); ++j) {
      const std::string at = where + ".subtasks[" + std::to_string(j) + "]";
      if (!subtasks[j].is_object()) {
        fields.problem("field '" + at + "' is not an object");
        break;
      }
      op.subtasks.push_back(read_handle(fields, subtasks[j], at, op.id));
    }
    meta.operators.push_back(std::move(op));
  }
  return meta;
}

// The whole of a small file; `not_found` when it does not exist.
result<std::string> read_small_file(const std::string& path) {
  file_descriptor fd{open_file(path, O_RDONLY)};
  if (!fd.valid()) {
    const int err = errno;
    if (err == ENOENT) return status{errc::not_found, path};
    return io_failure("open", path, err);
  }
  std::string text;
  char chunk[64 * 1024];
  for (;;) {
    std::size_t got = 0;
    if (const int err = read_all(fd.get(), chunk, sizeof(chunk), got)) {
      return io_failure("read", path, err);
    }
    text.append(chunk, got);
    if (got < sizeof(chunk)) return text;
  }
}

}  // namespace

status write_metadata(const std::string& folder, const metadata& meta) {
  json object = to_json(meta);
  const std::uint32_t checksum = crc32c(dump(object));
  object["checksum"] = checksum;
  const std::string path = folder + "/" + std::string{metadata_name};
  const std::string temp = path + ".tmp";
  {
    checked_writer out{temp};
    out.append(dump(object, 2));
    out.append("\n");
    if (status finished = out.finish(); !finished.ok()) return finished;
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return io_failure("rename to _metadata", temp, errno);
  }
  return fsync_directory(folder);
}

result<metadata> read_metadata(const std::string& folder) {
  const std::string path = folder + "/" + std::string{metadata_name};
  result<std::string> text = read_small_file(path);
  if (!text.ok()) {
    if (text.error().code() != errc::not_found) return text.error();
    return status{errc::not_found, "no _metadata in '" + folder +
                                       "': not a complete checkpoint"};
  }
  const auto malformed = [&](std::string_view what) {
    return status{errc::malformed_data,
                  "checkpoint metadata '" + path + "' " + std::string{what}};
  };
  json object;
  try {
    object = json::parse(*text);
  } catch (const json::parse_error& e) {
    return malformed(std::string{"is not valid JSON: "} + e.what());
  }
  if (!object.is_object()) return malformed("is not a JSON object");
  // Before the checksum: a newer format may checksum differently.
  const auto format = object.find("format");
  if (format != object.end() && format->is_number_unsigned() &&
      format->get<std::uint64_t>() > metadata::current_format) {
    return malformed("was written by a newer version (format " +
                     std::to_string(format->get<std::uint64_t>()) +
                     ", this version reads format " +
                     std::to_string(metadata::current_format) + ")");
  }
  const auto stored = object.find("checksum");
  if (stored == object.end() || !stored->is_number_unsigned() ||
      stored->get<std::uint64_t>() >
          std::numeric_limits<std::uint32_t>::max()) {
    return malformed("has no checksum field");
  }
  const auto expected = stored->get<std::uint32_t>();
  object.erase("checksum");
  if (const std::uint32_t actual = crc32c(dump(object)); actual != expected) {
    return malformed("is corrupt: checksum mismatch (crc32c " + hex32(actual) +
                     ", the file says " + hex32(expected) + ")");
  }
  field_reader fields;
  metadata meta = from_json(fields, object);
  if (!fields.problem().empty()) {
    return malformed("is malformed: " + fields.problem());
  }
  if (meta.format != metadata::current_format) {
    return malformed("has unknown format " + std::to_string(meta.format));
  }
  return meta;
}

status verify(const std::string& folder, const metadata& meta) {
  for (const metadata::operator_entry& op : meta.operators) {
    for (const state_handle& handle : op.subtasks) {
      status checked =
          load_checked(folder + "/" + handle.file, handle, nullptr);
      if (!checked.ok()) return checked;
    }
  }
  return {};
}

status check_compatible(const metadata& meta, const std::string& job,
                        const std::string& fingerprint) {
  const std::string what =
      (meta.kind == snapshot_kind::savepoint ? "savepoint " : "checkpoint ") +
      std::to_string(meta.id);
  if (meta.job != job) {
    return {errc::invalid_config, what + " belongs to job '" + meta.job +
                                      "', not to job '" + job + "'"};
  }
  if (meta.fingerprint != fingerprint) {
    return {errc::invalid_config,
            what + " of job '" + job +
                "' was taken of a different topology (fingerprint " +
                meta.fingerprint + ", this job has " + fingerprint + ")"};
  }
  return {};
}

// ---------------------------------------------------------------------------
// Folders of a job

namespace {

constexpr std::string_view checkpoint_prefix = "chk-";
constexpr std::string_view savepoint_prefix = "sp-";

// The id of a folder named `<prefix><digits>`, as `storage::folder` names
// them; nullopt for any other name.
std::optional<std::int64_t> folder_id(std::string_view name,
                                      std::string_view prefix) {
  if (!name.starts_with(prefix)) return std::nullopt;
  name.remove_prefix(prefix.size());
  if (name.empty() || name.front() < '0' || name.front() > '9') {
    return std::nullopt;
  }
  std::int64_t id = 0;
  const auto [end, ec] =
      std::from_chars(name.data(), name.data() + name.size(), id);
  if (ec != std::errc{} || end != name.data() + name.size()) {
    return std::nullopt;
  }
  return id;
}

std::string join_path(const std::string& dir, std::string_view name) {
  return dir + "/" + std::string{name};
}

struct numbered_folder {
  std::int64_t id = 0;
  std::string path;
};

// The `<prefix><id>` folders directly in `dir`, ascending by id; none when
// `dir` does not exist or cannot be listed.
std::vector<numbered_folder> list_folders(const std::string& dir,
                                          std::string_view prefix) {
  std::vector<numbered_folder> found;
  std::error_code ec;
  for (fs::directory_iterator it{dir, ec}, end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const std::optional<std::int64_t> id = folder_id(name, prefix);
    std::error_code type_ec;
    if (id && it->is_directory(type_ec)) {
      found.push_back({*id, join_path(dir, name)});
    }
  }
  std::sort(found.begin(), found.end(),
            [](const numbered_folder& a, const numbered_folder& b) {
              return a.id < b.id;
            });
  return found;
}

// A restore point passes the cheap checks before the one that reads every
// byte of its state.
result<restore_point> load_restore_point(const std::string& folder,
                                         const std::string& job,
                                         const std::string& fingerprint) {
  result<metadata> meta = read_metadata(folder);
  if (!meta.ok()) return meta.error();
  if (status s = check_compatible(*meta, job, fingerprint); !s.ok()) return s;
  if (status s = verify(folder, *meta); !s.ok()) return s;
  return restore_point{folder, std::move(meta).value()};
}

// The newest usable checkpoint among the chk-<id> folders of `dir`.
result<restore_point> newest_usable(const std::string& dir,
                                    const std::string& job,
                                    const std::string& fingerprint,
                                    std::vector<std::string>& skipped) {
  const std::vector<numbered_folder> found =
      list_folders(dir, checkpoint_prefix);
  std::string reasons;
  for (auto it = found.rbegin(); it != found.rend(); ++it) {
    result<restore_point> point =
        load_restore_point(it->path, job, fingerprint);
    if (point.ok()) return point;
    std::string line = "skipped checkpoint " + std::to_string(it->id) + " (" +
                       it->path + "): " + point.error().message();
    reasons += reasons.empty() ? "" : "; ";
    reasons += line;
    skipped.push_back(std::move(line));
  }
  if (found.empty()) {
    std::error_code ec;
    reasons = fs::exists(dir, ec) ? "it holds no chk-<id> folder"
                                  : "the folder does not exist";
  }
  return status{errc::not_found,
                "no usable checkpoint in '" + dir + "': " + reasons};
}

}  // namespace

storage::storage(std::string checkpoint_dir, std::string savepoint_dir,
                 std::string job)
    : checkpoint_dir_(std::move(checkpoint_dir)),
      savepoint_dir_(std::move(savepoint_dir)),
      job_(std::move(job)),
      root_(join_path(checkpoint_dir_, job_)) {}

std::string storage::folder(std::int64_t id, snapshot_kind kind) const {
  if (kind == snapshot_kind::checkpoint) {
    return join_path(root_,
                     std::string{checkpoint_prefix} + std::to_string(id));
  }
  const std::string dir =
      savepoint_dir_.empty() ? root_ : join_path(savepoint_dir_, job_);
  return join_path(dir, std::string{savepoint_prefix} + std::to_string(id));
}

result<std::string> storage::create(std::int64_t id, snapshot_kind kind) const {
  std::string path = folder(id, kind);
  std::error_code ec;
  fs::remove_all(path, ec);
  if (ec) return io_failure("remove the leftover folder", path, ec.value());
  fs::create_directories(path, ec);
  if (ec) return io_failure("create folder", path, ec.value());
  // The new folder's name must be durable before `_metadata` declares the
  // checkpoint complete: the fsync in write_metadata covers only its content.
  if (status s = fsync_directory(fs::path{path}.parent_path().string());
      !s.ok()) {
    return s;
  }
  return path;
}

status storage::discard(const std::string& folder) const {
  std::error_code ec;
  fs::remove_all(folder, ec);
  if (ec) return io_failure("remove folder", folder, ec.value());
  return {};
}

std::int64_t storage::highest_id() const {
  const std::string savepoint_root =
      fs::path{folder(0, snapshot_kind::savepoint)}.parent_path().string();
  std::int64_t highest = 0;
  for (const std::string& dir : {root_, savepoint_root}) {
    for (std::string_view prefix : {checkpoint_prefix, savepoint_prefix}) {
      for (const numbered_folder& found : list_folders(dir, prefix)) {
        highest = std::max(highest, found.id);
      }
    }
  }
  return highest;
}

std::vector<std::string> storage::retain(std::uint32_t keep) const {
  // Keeping none would leave nothing to restore from.
  keep = std::max<std::uint32_t>(keep, 1);
  const std::vector<numbered_folder> found =
      list_folders(root_, checkpoint_prefix);
  std::vector<bool> complete(found.size());
  std::size_t complete_count = 0;
  std::optional<std::int64_t> newest_complete;
  for (std::size_t i = 0; i < found.size(); ++i) {
    // Only the metadata: verifying every byte of every checkpoint on each
    // completion would cost more than the checkpoints themselves.
    complete[i] = read_metadata(found[i].path).ok();
    if (complete[i]) {
      ++complete_count;
      newest_complete = found[i].id;
    }
  }
  std::vector<std::string> removed;
  std::size_t complete_seen = 0;
  for (std::size_t i = 0; i < found.size(); ++i) {
    bool remove = false;
    if (complete[i]) {
      remove = complete_count - complete_seen > keep;
      ++complete_seen;
    } else {
      // Newer incomplete folders may be checkpoints still being written.
      remove = newest_complete && found[i].id < *newest_complete;
    }
    std::error_code ec;
    if (remove && fs::remove_all(found[i].path, ec) > 0 && !ec) {
      removed.push_back(found[i].path);
    }
  }
  return removed;
}

result<restore_point> storage::latest(const std::string& fingerprint,
                                      std::vector<std::string>& skipped) const {
  return newest_usable(root_, job_, fingerprint, skipped);
}

result<restore_point> resolve(const std::string& path, const std::string& job,
                              const std::string& fingerprint,
                              std::vector<std::string>& skipped) {
  std::string target = path;
  while (target.size() > 1 && target.back() == '/') target.pop_back();
  std::error_code ec;
  if (target.empty() || !fs::exists(target, ec)) {
    return status{errc::not_found,
                  "restore path '" + path + "' does not exist"};
  }
  const std::string name = fs::path{target}.filename().string();
  std::string folder = target;
  bool single = false;
  if (name == metadata_name) {
    folder = fs::path{target}.parent_path().string();
    if (folder.empty()) folder = ".";
    single = true;
  } else if (fs::is_directory(target, ec)) {
    single = folder_id(name, checkpoint_prefix) ||
             folder_id(name, savepoint_prefix) ||
             fs::exists(join_path(target, metadata_name), ec);
  }
  if (single) {
    result<restore_point> point = load_restore_point(folder, job, fingerprint);
    // check_compatible is the only source of invalid_config; its message
    // names the checkpoint by id, so add where it is.
    if (!point.ok() && point.error().code() == errc::invalid_config) {
      return status{errc::invalid_config, "cannot restore from '" + folder +
                                              "': " + point.error().message()};
    }
    return point;
  }
  if (fs::is_directory(target, ec)) {
    if (!list_folders(target, checkpoint_prefix).empty()) {
      return newest_usable(target, job, fingerprint, skipped);
    }
    const std::string job_root = join_path(target, job);
    if (!list_folders(job_root, checkpoint_prefix).empty()) {
      return newest_usable(job_root, job, fingerprint, skipped);
    }
  }
  return status{errc::not_found,
                "restore path '" + path +
                    "' holds no checkpoint: give a chk-<id> or sp-<id> "
                    "folder, a folder of chk-<id> folders, or the checkpoint "
                    "directory holding a '" +
                    job + "' folder"};
}

}  // namespace stream::checkpoint
