#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "stream/status.hpp"

namespace stream::detail {

/// Reads a text file line by line with a large buffer. Not thread-safe.
class line_reader {
 public:
  /// Opens `path`; the error names the file and the system's reason.
  static result<std::unique_ptr<line_reader>> open(const std::string& path);
  ~line_reader();
  line_reader(const line_reader&) = delete;
  line_reader& operator=(const line_reader&) = delete;

  /// Reads the next line into `line` without its "\n" or "\r\n". Returns
  /// false at the end of the file; a read error is reported as an
  /// `errc::io_error` status in `error()`.
  bool next(std::string& line);

  /// The error that stopped reading, or ok at the end of the file.
  const status& error() const noexcept { return error_; }

  /// Byte offset of the next line: the resumable position.
  std::uint64_t offset() const noexcept { return offset_; }

  /// Continues at `offset` (from `offset()` of an earlier read of the same
  /// file). Errors: io_error when the file is shorter than that.
  status seek(std::uint64_t offset);

 private:
  line_reader(std::FILE* file, std::string path);

  std::FILE* file_;
  std::string path_;
  char* buffer_ = nullptr;
  std::size_t capacity_ = 0;
  std::uint64_t offset_ = 0;
  status error_;
};

/// Writes text to a file or to stdout through a large buffer. Not
/// thread-safe.
class text_writer {
 public:
  /// Opens (truncates) `path`; "-" means standard output.
  static result<std::unique_ptr<text_writer>> open(const std::string& path);
  ~text_writer();
  text_writer(const text_writer&) = delete;
  text_writer& operator=(const text_writer&) = delete;

  /// Appends `text`; fails with `errc::io_error` naming the file.
  status write(std::string_view text);

  /// Pushes buffered text to the operating system.
  status flush();

  /// Flushes and makes the text durable (fsync).
  status sync();

 private:
  text_writer(std::FILE* file, std::string path, bool owned);

  std::FILE* file_;
  std::string path_;
  bool owned_;
};

/// Start-up check of an output or checkpoint folder: creates `dir` (and its
/// parents) if needed, then creates and removes a probe file in it, so that
/// a folder that cannot be written fails the job before it reads any input.
/// `errc::invalid_config` (a start-up refusal, exit code 2) naming the
/// folder, `what` (e.g. "--checkpoint-dir") and the reason.
status check_writable_directory(const std::string& dir,
                                const std::string& what);

/// Start-up check of an output file: "-" (stdout) passes; otherwise its
/// folder must exist and be writable, and the path must not be a folder or
/// a file that cannot be written. `errc::invalid_config` naming the path.
status check_writable_file(const std::string& path);

}  // namespace stream::detail
