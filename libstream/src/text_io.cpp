#include "stream/detail/text_io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace stream::detail {

namespace {

status io_failure(const char* what, const std::string& path) {
  return status{errc::io_error,
                std::string{what} + " '" + path + "': " + std::strerror(errno)};
}

// Large stdio buffers: one syscall per megabyte, not per line.
constexpr std::size_t io_buffer_bytes = 1 << 20;

}  // namespace

result<std::unique_ptr<line_reader>> line_reader::open(
    const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return io_failure("cannot open input file", path);
  std::setvbuf(file, nullptr, _IOFBF, io_buffer_bytes);
  return std::unique_ptr<line_reader>{new line_reader(file, path)};
}

line_reader::line_reader(std::FILE* file, std::string path)
    : file_(file), path_(std::move(path)) {}

line_reader::~line_reader() {
  std::free(buffer_);
  std::fclose(file_);
}

bool line_reader::next(std::string& line) {
  errno = 0;
  auto n = ::getline(&buffer_, &capacity_, file_);
  if (n < 0) {
    if (std::ferror(file_) != 0) error_ = io_failure("cannot read", path_);
    return false;
  }
  offset_ += static_cast<std::uint64_t>(n);
  std::size_t len = static_cast<std::size_t>(n);
  if (len > 0 && buffer_[len - 1] == '\n') --len;
  if (len > 0 && buffer_[len - 1] == '\r') --len;
  line.assign(buffer_, len);
  return true;
}

status line_reader::seek(std::uint64_t offset) {
  struct stat st {};
  if (::fstat(::fileno(file_), &st) != 0)
    return io_failure("cannot stat", path_);
  if (static_cast<std::uint64_t>(st.st_size) < offset)
    return status{errc::io_error,
                  "input file '" + path_ + "' has " +
                      std::to_string(st.st_size) +
                      " bytes, fewer than the checkpointed offset " +
                      std::to_string(offset)};
  if (::fseeko(file_, static_cast<off_t>(offset), SEEK_SET) != 0)
    return io_failure("cannot seek in", path_);
  offset_ = offset;
  return {};
}

result<std::unique_ptr<text_writer>> text_writer::open(
    const std::string& path) {
  if (path == "-")
    return std::unique_ptr<text_writer>{new text_writer(stdout, path, false)};
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) return io_failure("cannot open output file", path);
  std::setvbuf(file, nullptr, _IOFBF, io_buffer_bytes);
  return std::unique_ptr<text_writer>{new text_writer(file, path, true)};
}

text_writer::text_writer(std::FILE* file, std::string path, bool owned)
    : file_(file), path_(std::move(path)), owned_(owned) {}

text_writer::~text_writer() {
  if (owned_)
    std::fclose(file_);
  else
    std::fflush(file_);
}

status text_writer::write(std::string_view text) {
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size())
    return io_failure("cannot write to", path_);
  return {};
}

status text_writer::flush() {
  if (std::fflush(file_) != 0) return io_failure("cannot flush", path_);
  return {};
}

status text_writer::sync() {
  if (auto st = flush(); !st.ok()) return st;
  if (::fsync(::fileno(file_)) != 0) return io_failure("cannot fsync", path_);
  return {};
}

namespace {

// Creates and removes a probe file in `dir`: the one check that also holds
// for root, whom permission bits do not stop (a read-only mount does).
// Returns the reason it failed, or "".
std::string probe_create(const std::string& dir) {
  const std::string probe =
      dir + "/.stream-write-probe-" + std::to_string(::getpid());
  const int fd =
      ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return std::strerror(errno);
  ::close(fd);
  ::unlink(probe.c_str());
  return {};
}

}  // namespace

status check_writable_directory(const std::string& dir,
                                const std::string& what) {
  namespace fs = std::filesystem;
  auto fail = [&](const std::string& why) {
    return status{errc::invalid_config,
                  what + " '" + dir + "' cannot be written: " + why};
  };
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return fail(ec.message());
  if (!fs::is_directory(dir, ec)) return fail("it is not a folder");
  if (auto why = probe_create(dir); !why.empty()) return fail(why);
  return {};
}

status check_writable_file(const std::string& path) {
  namespace fs = std::filesystem;
  if (path == "-") return {};
  std::error_code ec;
  if (fs::is_directory(path, ec))
    return status{errc::invalid_config,
                  "output file '" + path + "' is a folder, not a file"};
  if (fs::exists(path, ec)) {
    // Appending nothing changes nothing, and fails where writing would.
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0)
      return status{errc::invalid_config,
                    "output file '" + path +
                        "' cannot be written: " + std::strerror(errno)};
    ::close(fd);
    return {};
  }
  auto parent = fs::path{path}.parent_path();
  if (parent.empty()) parent = ".";
  if (!fs::is_directory(parent, ec))
    return status{errc::invalid_config,
                  "output file '" + path + "': its folder '" + parent.string() +
                      "' does not exist"};
  if (auto why = probe_create(parent.string()); !why.empty())
    return status{errc::invalid_config, "output file '" + path +
                                            "' cannot be created in '" +
                                            parent.string() + "': " + why};
  return {};
}

}  // namespace stream::detail
