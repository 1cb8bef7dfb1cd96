#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace stream {

/// Error codes of the core module. Every expected failure (bad input, disk,
/// network, peers, timeouts) is reported as one of these plus a message.
enum class errc {
  ok = 0,
  invalid_argument,  ///< A caller passed a value outside its documented range.
  invalid_config,    ///< A flag, config file or environment variable is bad.
  malformed_data,    ///< Bytes or text that do not decode (codec, files).
  io_error,          ///< A file or socket operation failed.
  not_found,         ///< A named thing (file, operator, metric) is missing.
  operator_failed,   ///< User operator code threw; the task failed.
  cancelled,         ///< The job was stopped before it finished.
  internal,          ///< A broken invariant that is not a programmer error.
};

/// Returns a stable lower-case name for `code`, e.g. "malformed_data".
std::string_view to_string(errc code) noexcept;

/// The outcome of an operation that returns no value: `ok()` or an error code
/// with a message a user can act on. Cheap to copy when ok.
class [[nodiscard]] status {
 public:
  /// Constructs a successful status.
  status() = default;

  /// Constructs a failed status. `code` must not be `errc::ok`.
  status(errc code, std::string message);

  /// Returns a successful status.
  static status success() { return {}; }

  bool ok() const noexcept { return code_ == errc::ok; }
  explicit operator bool() const noexcept { return ok(); }
  errc code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }

  /// Renders "code: message", or "ok".
  std::string to_string() const;

 private:
  errc code_ = errc::ok;
  std::string message_;
};

/// A value of type `T` or the `status` explaining why there is none.
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  result(status error) : error_(std::move(error)) {}  // NOLINT

  bool ok() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }

  /// The value; only valid when `ok()`.
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

  /// The error; `status::success()` when `ok()`.
  const status& error() const noexcept { return error_; }

 private:
  std::optional<T> value_;
  status error_;
};

}  // namespace stream
