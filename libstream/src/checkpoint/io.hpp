#pragma once

// File helpers shared by the state files, `_metadata` and the folders of a
// job: POSIX reads and writes that retry on EINTR, a writer that leaves no
// partial file behind, and the error messages they produce. Private to the
// checkpoint module.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "stream/checkpoint/storage.hpp"

namespace stream::checkpoint::detail {

inline constexpr std::string_view metadata_name = "_metadata";
// Bytes per read(): large enough that system calls cost nothing next to
// the checksum, small enough that `verify` needs only a modest buffer.
inline constexpr std::size_t read_chunk_bytes = std::size_t{8} << 20;

inline std::string hex32(std::uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08x", value);
  return text;
}

inline status io_failure(std::string_view what, const std::string& path,
                         int err) {
  return {errc::io_error, "cannot " + std::string{what} + " '" + path +
                              "': " + std::generic_category().message(err)};
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

inline int open_file(const std::string& path, int flags, mode_t mode = 0) {
  int fd = -1;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

// 0 or the errno of the failed write.
inline int write_all(int fd, const char* data, std::size_t size) {
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
inline int read_all(int fd, char* data, std::size_t size, std::size_t& got) {
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

inline status fsync_directory(const std::string& path) {
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

// Checks the size and whole-file CRC32C of `path` against `handle`, reading
// every byte once; keeps the bytes in `contents` when it is not null.
// Defined in state_file.cpp; `verify` uses it too.
status load_checked(const std::string& path, const state_handle& handle,
                    std::string* contents);

}  // namespace stream::checkpoint::detail
