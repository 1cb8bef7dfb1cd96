#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "stream/detail/sinks.hpp"

namespace stream::detail {

namespace {

namespace fs = std::filesystem;

status fs_error(const std::string& what, const std::string& path,
                const std::error_code& ec) {
  return {errc::io_error, what + " '" + path + "': " + ec.message()};
}

status sync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0)
    return {errc::io_error,
            "cannot open directory '" + dir + "': " + std::strerror(errno)};
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0)
    return {errc::io_error,
            "cannot fsync directory '" + dir + "': " + std::strerror(err)};
  return {};
}

/// The id in "<prefix><id><suffix>", or -1 when `name` is not such a name.
std::int64_t id_in(std::string_view name, std::string_view prefix,
                   std::string_view suffix) {
  if (!name.starts_with(prefix) || !name.ends_with(suffix) ||
      name.size() <= prefix.size() + suffix.size())
    return -1;
  auto digits =
      name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  std::int64_t id = -1;
  auto [ptr, ec] =
      std::from_chars(digits.data(), digits.data() + digits.size(), id);
  if (ec != std::errc{} || ptr != digits.data() + digits.size()) return -1;
  return id;
}

}  // namespace

part_files::part_files(std::string dir, std::uint32_t subtask,
                       std::uint32_t attempt)
    : dir_(std::move(dir)),
      prefix_("part-" + std::to_string(subtask) + "-"),
      attempt_suffix_(attempt == 0 ? std::string{}
                                   : "-a" + std::to_string(attempt)) {}

status part_files::open() const {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return fs_error("cannot create output directory", dir_, ec);
  return {};
}

std::string part_files::in_progress(std::int64_t after) const {
  return dir_ + "/." + prefix_ + std::to_string(after) + attempt_suffix_ +
         ".inprogress";
}

std::string part_files::pending(std::int64_t id) const {
  return dir_ + "/." + prefix_ + std::to_string(id) + ".pending";
}

std::string part_files::committed(std::int64_t id) const {
  return dir_ + "/" + prefix_ + std::to_string(id);
}

status part_files::stage(std::int64_t after, std::int64_t id) const {
  std::error_code ec;
  fs::rename(in_progress(after), pending(id), ec);
  if (ec) return fs_error("cannot stage output file", in_progress(after), ec);
  return sync_dir(dir_);
}

status part_files::commit(std::int64_t id) const {
  std::error_code ec;
  auto from = pending(id);
  if (fs::exists(from, ec)) {
    fs::rename(from, committed(id), ec);
    if (ec) return fs_error("cannot commit output file", from, ec);
    return sync_dir(dir_);
  }
  if (fs::exists(committed(id), ec)) return {};  // committed before
  return {errc::not_found, "output of checkpoint " + std::to_string(id) +
                               " is missing: neither '" + from + "' nor '" +
                               committed(id) + "' exists"};
}

result<std::size_t> part_files::clean(std::int64_t keep_up_to) const {
  std::size_t removed = 0;
  std::error_code ec;
  std::vector<fs::path> doomed;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    auto name = entry.path().filename().string();
    auto hidden = "." + prefix_;
    // In-progress files of any attempt (".part-<s>-<after>[-a<k>]...").
    bool in_progress =
        name.starts_with(hidden) && name.ends_with(".inprogress") &&
        name.size() > hidden.size() + 11 &&
        std::isdigit(static_cast<unsigned char>(name[hidden.size()])) != 0;
    if (in_progress || id_in(name, hidden, ".pending") >= 0 ||
        id_in(name, prefix_, "") > keep_up_to)
      doomed.push_back(entry.path());
  }
  if (ec) return fs_error("cannot list output directory", dir_, ec);
  for (const auto& p : doomed) {
    fs::remove(p, ec);
    if (ec) return fs_error("cannot remove stale output file", p.string(), ec);
    ++removed;
  }
  if (removed > 0) {
    if (auto st = sync_dir(dir_); !st.ok()) return st;
  }
  return removed;
}

}  // namespace stream::detail
