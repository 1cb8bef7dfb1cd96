#include "stream/metrics_server.hpp"

#include <netdb.h>
#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cctype>
#include <cerrno>
#include <exception>
#include <system_error>
#include <utility>

namespace stream {

namespace detail {

// Defined in metrics.cpp. Declared here rather than in a header because its
// signature names prometheus-cpp, which public headers must not include.
std::vector<prometheus::MetricFamily> to_prometheus_families(
    const std::vector<metrics_registry::family>& families);

}  // namespace detail

namespace {

// The adapter the exposer pulls from; it runs on civetweb's threads.
class registry_collectable final : public prometheus::Collectable {
 public:
  explicit registry_collectable(std::shared_ptr<metrics_registry> registry)
      : registry_(std::move(registry)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    return detail::to_prometheus_families(registry_->snapshot());
  }

 private:
  std::shared_ptr<metrics_registry> registry_;
};

// civetweb reads the address as part of its "listening_ports" option, where
// `,` separates further listeners: accept only what host names and IP
// literals are made of, so that an address can never open a second port.
bool is_host_text(const std::string& address) {
  return !address.empty() &&
         std::all_of(address.begin(), address.end(), [](unsigned char c) {
           return std::isalnum(c) != 0 || c == '.' || c == '-' || c == '_' ||
                  c == ':' || c == '[' || c == ']' || c == '%';
         });
}

std::string without_brackets(const std::string& address) {
  if (address.size() >= 2 && address.front() == '[' && address.back() == ']') {
    return address.substr(1, address.size() - 2);
  }
  return address;
}

// civetweb reports every failure to listen as the same "null context"
// exception and logs the cause only through a callback whose type lives in
// libcivetweb-cpp, which we do not link. So, after the fact, repeat the bind
// the way civetweb does (SO_REUSEADDR, IPv4 unless the address is IPv6) to
// learn the system's reason. Returns "" when the probe cannot explain it.
// May block for the resolver's timeout when the host name is unknown.
std::string bind_failure_reason(const std::string& host, std::uint16_t port) {
  addrinfo hints{};
  hints.ai_family = host.find(':') == std::string::npos ? AF_INET : AF_INET6;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
      rc != 0) {
    return gai_strerror(rc);
  }
  const std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard{found,
                                                                 &freeaddrinfo};
  const int fd = socket(found->ai_family, found->ai_socktype, 0);
  if (fd < 0) return std::system_category().message(errno);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  std::string reason;
  if (bind(fd, found->ai_addr, found->ai_addrlen) != 0) {
    reason = std::system_category().message(errno);
  } else if (found->ai_family == AF_INET6) {
    reason = "IPv6 address, which this build's HTTP server may not support";
  }
  close(fd);
  return reason;
}

}  // namespace

// Member order matters: the exposer is destroyed first, so no scrape can run
// once the collectable goes (the exposer only holds it weakly).
struct metrics_server::impl {
  std::shared_ptr<registry_collectable> collectable;
  std::unique_ptr<prometheus::Exposer> exposer;
  std::uint16_t port = 0;
};

metrics_server::metrics_server(std::unique_ptr<impl> state)
    : impl_(std::move(state)) {}

metrics_server::~metrics_server() = default;

result<std::unique_ptr<metrics_server>> metrics_server::start(
    std::shared_ptr<metrics_registry> registry, const std::string& bind_address,
    std::uint16_t port) {
  assert(registry != nullptr);
  if (!is_host_text(bind_address)) {
    return status{errc::invalid_argument,
                  "metrics bind address '" + bind_address +
                      "' is not a host name or IP address"};
  }
  const std::string host = without_brackets(bind_address);
  const bool is_ipv6 = host.find(':') != std::string::npos;
  const std::string where =
      (is_ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);

  auto state = std::make_unique<impl>();
  state->collectable =
      std::make_shared<registry_collectable>(std::move(registry));
  try {
    state->exposer = std::make_unique<prometheus::Exposer>(where);
  } catch (const std::exception& e) {
    std::string reason = bind_failure_reason(host, port);
    if (reason.empty()) reason = e.what();
    return status{errc::io_error,
                  "cannot serve /metrics on " + where + ": " + reason};
  }
  state->exposer->RegisterCollectable(state->collectable);

  // One address was given, so civetweb reports exactly one listener.
  const std::vector<int> ports = state->exposer->GetListeningPorts();
  if (ports.size() != 1 || ports.front() <= 0 || ports.front() > 65535) {
    return status{errc::internal, "metrics server on " + where +
                                      " reports an unexpected listening port"};
  }
  state->port = static_cast<std::uint16_t>(ports.front());
  return std::unique_ptr<metrics_server>{new metrics_server(std::move(state))};
}

std::uint16_t metrics_server::port() const noexcept { return impl_->port; }

}  // namespace stream
