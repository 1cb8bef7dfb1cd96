#pragma once

// One process per job and checkpoint folder: the coordinator (or a
// local-role job) holds an exclusive lock on its job's checkpoint folder
// while it runs, so that a second one cannot interleave its checkpoints with
// the first's.

#include <string>

#include "stream/status.hpp"

namespace stream::checkpoint {

/// An exclusive, advisory lock on `<folder>/.lock` (flock(2)), held until
/// destruction. The kernel drops it when the process ends, even by SIGKILL,
/// so a crashed job never leaves a stale lock behind. The file holds one line
/// describing the holder (pid, host, role, start time), which a refused
/// process quotes. Move-only; not thread-safe.
class job_lock {
 public:
  /// Takes the lock of `folder` (created if missing) for a holder described
  /// by `role` (e.g. "coordinator"). Fails with `errc::invalid_config`,
  /// naming the holder, when another open lock holds it (another process,
  /// or another `job_lock` in this one), and with `errc::io_error` when the
  /// lock file cannot be created.
  static result<job_lock> acquire(const std::string& folder,
                                  const std::string& role);

  job_lock(job_lock&& other) noexcept;
  job_lock& operator=(job_lock&& other) noexcept;
  job_lock(const job_lock&) = delete;
  job_lock& operator=(const job_lock&) = delete;
  ~job_lock();

  /// The lock file's path.
  const std::string& path() const noexcept { return path_; }

 private:
  job_lock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

  int fd_ = -1;
  std::string path_;
};

}  // namespace stream::checkpoint
