#include "stream/status.hpp"

#include <cassert>

namespace stream {

std::string_view to_string(errc code) noexcept {
  switch (code) {
    case errc::ok:
      return "ok";
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::invalid_config:
      return "invalid_config";
    case errc::malformed_data:
      return "malformed_data";
    case errc::io_error:
      return "io_error";
    case errc::not_found:
      return "not_found";
    case errc::operator_failed:
      return "operator_failed";
    case errc::cancelled:
      return "cancelled";
    case errc::internal:
      return "internal";
  }
  return "unknown";
}

status::status(errc code, std::string message)
    : code_(code), message_(std::move(message)) {
  assert(code != errc::ok);
}

std::string status::to_string() const {
  if (ok()) return "ok";
  std::string out{stream::to_string(code_)};
  out += ": ";
  out += message_;
  return out;
}

}  // namespace stream
