// Checkpoint metadata: the `_metadata` file that makes a folder a complete
// checkpoint, and the checks run on it before a restore. The JSON layout is
// specified in FORMAT.md beside this file; keep the two in step.

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "io.hpp"
#include "stream/checkpoint/storage.hpp"

namespace stream::checkpoint {

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

using json = nlohmann::json;
using detail::checked_writer;
using detail::file_descriptor;
using detail::fsync_directory;
using detail::hex32;
using detail::io_failure;
using detail::load_checked;
using detail::metadata_name;
using detail::open_file;
using detail::read_all;

// Invalid UTF-8 in a name is replaced rather than thrown on; the
// replacement dumps identically after a parse, so checksums still match.
std::string dump(const json& value, int indent = -1) {
  return value.dump(indent, ' ', false, json::error_handler_t::replace);
}

// Format 2: [[start, end], ...], the runs, ascending and non-adjacent.
json runs_to_json(const key_group_set& set) {
  json runs = json::array();
  for (const key_group_range& run : set.runs()) {
    runs.push_back(json::array({run.start, run.end}));
  }
  return runs;
}

// A [start, end) pair of key groups within the largest max parallelism.
std::optional<key_group_range> range_from_json(const json& pair) {
  if (!pair.is_array() || pair.size() != 2 || !pair[0].is_number_unsigned() ||
      !pair[1].is_number_unsigned() ||
      pair[0].get<std::uint64_t>() > pair[1].get<std::uint64_t>() ||
      pair[1].get<std::uint64_t>() > max_max_parallelism) {
    return std::nullopt;
  }
  return key_group_range{pair[0].get<std::uint32_t>(),
                         pair[1].get<std::uint32_t>()};
}

// Format 1 holds one [start, end] range; format 2 the runs, which must be
// ascending, non-empty and non-adjacent (as written), so that a damaged
// list is not silently merged into another set.
std::optional<key_group_set> key_groups_from_json(const json& value,
                                                  std::uint32_t format) {
  if (format < 2) {
    const auto range = range_from_json(value);
    if (!range) return std::nullopt;
    return key_group_set::of(*range);
  }
  if (!value.is_array()) return std::nullopt;
  std::vector<key_group_range> runs;
  for (const json& pair : value) {
    const auto run = range_from_json(pair);
    if (!run || run->empty() ||
        (!runs.empty() && run->start <= runs.back().end))
      return std::nullopt;
    runs.push_back(*run);
  }
  return key_group_set{std::move(runs)};
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
                          {"key_groups", runs_to_json(handle.key_groups)},
                          {"entries", handle.entries}});
    }
    operators.push_back({{"id", op.id},
                         {"name", op.name},
                         {"parallelism", op.parallelism},
                         {"table_version", op.table_version},
                         {"subtasks", std::move(subtasks)}});
  }
  return {{"format", meta.format},
          {"plan_version", meta.plan_version},
          {"job", meta.job},
          {"fingerprint", meta.fingerprint},
          {"id", meta.id},
          {"kind",
           meta.kind == snapshot_kind::savepoint ? "savepoint" : "checkpoint"},
          {"created_ms", meta.created_ms},
          {"max_parallelism", meta.max_parallelism},
          {"final", meta.final},
          {"drained", meta.drained},
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
                         const std::string& where, std::uint32_t operator_id,
                         std::uint32_t format) {
  state_handle handle;
  handle.operator_id = operator_id;
  handle.subtask = fields.get<std::uint32_t>(object, where, "subtask");
  handle.file = fields.get<std::string>(object, where, "file");
  handle.bytes = fields.get<std::uint64_t>(object, where, "bytes");
  handle.crc32c = fields.get<std::uint32_t>(object, where, "crc32c");
  handle.entries = fields.get<std::uint64_t>(object, where, "entries");
  const json groups = fields.get<json>(object, where, "key_groups");
  if (auto set = key_groups_from_json(groups, format)) {
    handle.key_groups = std::move(*set);
  } else {
    fields.problem("field '" + where + ".key_groups' is not " +
                   (format < 2 ? "[start, end]"
                               : "a list of ascending, separate [start, end] "
                                 "runs"));
  }
  if (!is_plain_file_name(handle.file)) {
    fields.problem("field '" + where + ".file' is not a file name");
  }
  return handle;
}

// The subtasks of one operator own disjoint key groups below the max
// parallelism: a restore reads each key group from the one file that owns
// it, so an overlap would load state twice and a key group past M would
// belong to no subtask.
void check_ownership(field_reader& fields, const metadata::operator_entry& op,
                     const std::string& where, std::uint32_t max_parallelism) {
  std::vector<std::pair<key_group_range, std::uint32_t>> runs;
  for (const state_handle& handle : op.subtasks) {
    for (const key_group_range& run : handle.key_groups.runs()) {
      runs.emplace_back(run, handle.subtask);
    }
  }
  std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) {
    return a.first.start < b.first.start;
  });
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const auto& [run, subtask] = runs[i];
    if (run.end > max_parallelism) {
      fields.problem(
          "field '" + where + "': subtask " + std::to_string(subtask) +
          " owns key group " + std::to_string(run.end - 1) +
          ", beyond the max parallelism " + std::to_string(max_parallelism));
      return;
    }
    if (i > 0 && run.start < runs[i - 1].first.end) {
      fields.problem("field '" + where + "': subtasks " +
                     std::to_string(runs[i - 1].second) + " and " +
                     std::to_string(subtask) + " both own key group " +
                     std::to_string(run.start));
      return;
    }
  }
}

metadata from_json(field_reader& fields, const json& object) {
  metadata meta;
  meta.format = fields.get<std::uint32_t>(object, "", "format");
  meta.job = fields.get<std::string>(object, "", "job");
  meta.fingerprint = fields.get<std::string>(object, "", "fingerprint");
  meta.id = fields.get<std::int64_t>(object, "", "id");
  // Ids start at 1; a restore deletes output committed after its id, so a
  // forged id of 0 or below would take back everything.
  if (meta.id < 1) fields.problem("field 'id' is below 1");
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
  if (object.contains("plan_version"))
    meta.plan_version = fields.get<std::uint64_t>(object, "", "plan_version");
  // Written since the drain became explicit; older metadata lacks it.
  if (object.contains("drained"))
    meta.drained = fields.get<bool>(object, "", "drained");
  if (meta.drained && !meta.final)
    fields.problem("field 'drained' is true but 'final' is false");
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
    if (operators[i].contains("table_version"))
      op.table_version =
          fields.get<std::uint64_t>(operators[i], where, "table_version");
    const json subtasks = fields.get<json>(operators[i], where, "subtasks");
    for (std::size_t j = 0; j < subtasks.size(); ++j) {
      const std::string at = where + ".subtasks[" + std::to_string(j) + "]";
      if (!subtasks[j].is_object()) {
        fields.problem("field '" + at + "' is not an object");
        break;
      }
      op.subtasks.push_back(
          read_handle(fields, subtasks[j], at, op.id, meta.format));
    }
    check_ownership(fields, op, where, meta.max_parallelism);
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
  if (meta.format < 1 || meta.format > metadata::current_format) {
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

}  // namespace stream::checkpoint
