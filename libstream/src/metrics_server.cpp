#include "stream/metrics_server.hpp"

#include <cassert>
#include <utility>

#include "stream/http_server.hpp"

namespace stream {

// The metrics endpoint is the HTTP server with no routes: only GET /metrics.
struct metrics_server::impl {
  std::unique_ptr<http_server> server;
};

metrics_server::metrics_server(std::unique_ptr<impl> state)
    : impl_(std::move(state)) {}

metrics_server::~metrics_server() = default;

result<std::unique_ptr<metrics_server>> metrics_server::start(
    std::shared_ptr<metrics_registry> registry, const std::string& bind_address,
    std::uint16_t port) {
  assert(registry != nullptr);
  http_server::config cfg;
  cfg.address = bind_address;
  cfg.port = port;
  cfg.registry = std::move(registry);
  auto server = http_server::start(std::move(cfg), {});
  if (!server) {
    // Same codes, said for /metrics.
    std::string message = server.error().message();
    if (auto at = message.find("HTTP"); at != std::string::npos)
      message.replace(at, 4, "/metrics");
    return status{server.error().code(), message};
  }
  auto state = std::make_unique<impl>();
  state->server = std::move(*server);
  return std::unique_ptr<metrics_server>{new metrics_server(std::move(state))};
}

std::uint16_t metrics_server::port() const noexcept {
  return impl_->server->port();
}

}  // namespace stream
