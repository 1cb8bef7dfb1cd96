#include "stream/checkpoint/job_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <utility>

namespace stream::checkpoint {

namespace {

std::string describe_holder(const std::string& role) {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "?");
  const std::time_t now =
      std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char since[32] = {};
  std::strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return "pid " + std::to_string(::getpid()) + " on " + host + " (" + role +
         ", since " + since + ")";
}

/// The holder's line, or a placeholder when the holder has not written it
/// yet (it writes right after taking the lock) or it cannot be read.
std::string read_holder(int fd) {
  char buffer[512] = {};
  const ssize_t n = ::pread(fd, buffer, sizeof(buffer) - 1, 0);
  std::string line = n > 0 ? std::string(buffer, static_cast<size_t>(n)) : "";
  while (!line.empty() && (line.back() == '\n' || line.back() == '\0')) {
    line.pop_back();
  }
  return line.empty() ? "another process (it has not said which yet)" : line;
}

}  // namespace

result<job_lock> job_lock::acquire(const std::string& folder,
                                   const std::string& role) {
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  const std::string path = (std::filesystem::path{folder} / ".lock").string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return status{errc::io_error, "cannot open the job lock '" + path +
                                      "': " + std::strerror(errno)};
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    std::string holder = read_holder(fd);
    ::close(fd);
    if (error != EWOULDBLOCK) {
      return status{errc::io_error,
                    "cannot lock '" + path + "': " + std::strerror(error)};
    }
    return status{errc::invalid_config,
                  "the checkpoint folder '" + folder +
                      "' is in use by another run of this job: " + holder +
                      ". Two runs of one job on one folder would corrupt "
                      "each other's checkpoints; stop that run, or give this "
                      "one another --checkpoint-dir or --job-name"};
  }
  // Best effort: the lock is what protects, the line only names its holder.
  const std::string line = describe_holder(role) + "\n";
  if (::ftruncate(fd, 0) == 0) {
    [[maybe_unused]] const ssize_t written =
        ::pwrite(fd, line.data(), line.size(), 0);
  }
  return job_lock{fd, path};
}

job_lock::job_lock(job_lock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)) {}

job_lock& job_lock::operator=(job_lock&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
  }
  return *this;
}

job_lock::~job_lock() {
  // Closing the only descriptor of the open file releases the flock.
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace stream::checkpoint
