// Checkpoint storage: the folders of one job, and finding the checkpoint to
// restore from. State files are in state_file.cpp, `_metadata` in
// metadata.cpp; FORMAT.md beside this file specifies the layout.

#include "stream/checkpoint/storage.hpp"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <optional>
#include <system_error>
#include <utility>
#include <vector>

#include "io.hpp"

namespace stream::checkpoint {
namespace {

namespace fs = std::filesystem;
using detail::fsync_directory;
using detail::io_failure;
using detail::metadata_name;

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
  snapshot_kind kind = snapshot_kind::checkpoint;
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
      found.push_back({*id, join_path(dir, name),
                       prefix == savepoint_prefix ? snapshot_kind::savepoint
                                                  : snapshot_kind::checkpoint});
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
  // The folder's name is what retention and recovery order by: metadata
  // that claims another id or kind was copied or forged.
  const std::string name = fs::path{folder}.filename().string();
  for (auto [prefix, kind] :
       {std::pair{checkpoint_prefix, snapshot_kind::checkpoint},
        std::pair{savepoint_prefix, snapshot_kind::savepoint}}) {
    auto id = folder_id(name, prefix);
    if (id && (*id != meta->id || kind != meta->kind))
      return status{
          errc::malformed_data,
          "'" + folder + "': its _metadata says " +
              (meta->kind == snapshot_kind::savepoint ? "savepoint "
                                                      : "checkpoint ") +
              std::to_string(meta->id) +
              ", not what the folder's "
              "name says"};
  }
  if (status s = check_compatible(*meta, job, fingerprint); !s.ok()) return s;
  if (status s = verify(folder, *meta); !s.ok()) return s;
  return restore_point{folder, std::move(meta).value()};
}

// The chk-<id> and sp-<id> folders of `dirs`, ascending by id (a
// checkpoint before a savepoint of the same id, which cannot happen when
// one job wrote both).
std::vector<numbered_folder> list_restore_folders(
    const std::vector<std::string>& dirs) {
  std::vector<numbered_folder> found;
  for (std::size_t i = 0; i < dirs.size(); ++i) {
    if (std::find(dirs.begin(), dirs.begin() + static_cast<long>(i), dirs[i]) !=
        dirs.begin() + static_cast<long>(i))
      continue;
    for (std::string_view prefix : {checkpoint_prefix, savepoint_prefix}) {
      auto more = list_folders(dirs[i], prefix);
      found.insert(found.end(), more.begin(), more.end());
    }
  }
  std::stable_sort(found.begin(), found.end(),
                   [](const numbered_folder& a, const numbered_folder& b) {
                     return a.id < b.id;
                   });
  return found;
}

// The newest usable checkpoint or savepoint among the folders of `dirs`.
result<restore_point> newest_usable(const std::vector<std::string>& dirs,
                                    const std::string& job,
                                    const std::string& fingerprint,
                                    std::vector<std::string>& skipped) {
  const std::vector<numbered_folder> found = list_restore_folders(dirs);
  std::string reasons;
  bool all_foreign = !found.empty();
  for (auto it = found.rbegin(); it != found.rend(); ++it) {
    result<restore_point> point =
        load_restore_point(it->path, job, fingerprint);
    if (point.ok()) return point;
    all_foreign = all_foreign && point.error().code() == errc::invalid_config;
    std::string line =
        std::string{"skipped "} +
        (it->kind == snapshot_kind::savepoint ? "savepoint " : "checkpoint ") +
        std::to_string(it->id) + " (" + it->path +
        "): " + point.error().message();
    reasons += reasons.empty() ? "" : "; ";
    reasons += line;
    skipped.push_back(std::move(line));
  }
  if (found.empty()) {
    std::error_code ec;
    reasons = fs::exists(dirs.front(), ec)
                  ? "it holds no chk-<id> or sp-<id> folder"
                  : "the folder does not exist";
  }
  // Only another job's checkpoints: a mistake in the options, not damage.
  return status{all_foreign ? errc::invalid_config : errc::not_found,
                "no usable checkpoint in '" + dirs.front() + "': " + reasons};
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
  const std::string savepoint_root =
      fs::path{folder(0, snapshot_kind::savepoint)}.parent_path().string();
  return newest_usable({root_, savepoint_root}, job_, fingerprint, skipped);
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
    if (!list_restore_folders({target}).empty()) {
      return newest_usable({target}, job, fingerprint, skipped);
    }
    const std::string job_root = join_path(target, job);
    if (!list_restore_folders({job_root}).empty()) {
      return newest_usable({job_root}, job, fingerprint, skipped);
    }
  }
  return status{errc::not_found,
                "restore path '" + path +
                    "' holds no checkpoint: give a chk-<id> or sp-<id> "
                    "folder, a folder of such folders, or the checkpoint "
                    "directory holding a '" +
                    job + "' folder"};
}

status check_resumable(const restore_point& point, bool allow_final,
                       std::string& warning) {
  warning.clear();
  if (!point.meta.final) return {};
  const std::string what =
      std::string{point.meta.kind == snapshot_kind::savepoint ? "savepoint "
                                                              : "checkpoint "} +
      std::to_string(point.meta.id) + " in '" + point.folder + "'";
  const std::string why =
      point.meta.drained
          ? what +
                " was taken after a drain (a stop with --drain): its sources "
                "ended mid-input and every window already fired, so the rest "
                "of the input would be dropped as late and those windows "
                "would come out again"
          : what +
                " is final: the job's input ended and all of it was "
                "processed, so nothing is left to resume";
  if (allow_final) {
    warning = "warning: --restore-final: " + why;
    return {};
  }
  return status{errc::invalid_config,
                why +
                    ". Restore an earlier checkpoint or a savepoint folder "
                    "with --restore, start over with another --job-name or "
                    "--checkpoint-dir, or pass --restore-final to continue "
                    "from it anyway"};
}

}  // namespace stream::checkpoint
