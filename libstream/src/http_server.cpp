#include "stream/http_server.hpp"

#include <CivetServer.h>
#include <netdb.h>
#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <exception>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <system_error>
#include <thread>
#include <utility>

namespace stream {

namespace detail {

// Defined in metrics.cpp. Declared here rather than in a header because its
// signature names prometheus-cpp, which public headers must not include.
std::vector<prometheus::MetricFamily> to_prometheus_families(
    const std::vector<metrics_registry::family>& families);

}  // namespace detail

namespace {

// A fixed pool: with keep-alive off, a thread is busy only while one request
// is read, handled and answered, and `request_timeout_ms` bounds how long a
// slow or idle client can hold it. An idle connection (opened, nothing
// sent) holds a thread until that timeout: with 128 threads, 120 idle
// connections delay nobody, and more delay others by at most the timeout
// per wave. (Four threads and 10 s let four idle sockets block the API for
// 10 s.) The timeout stays above the 1 s a client such as curl waits for
// "100 Continue" before it sends a large or chunked body, which civetweb
// does not send to handlers. A thread costs its 16 KiB request buffer and
// the little of its stack it touches.
constexpr const char* server_threads = "128";
constexpr const char* request_timeout_ms = "2000";
constexpr const char* prometheus_content_type =
    "text/plain; version=0.0.4; charset=utf-8";

using header_list = std::vector<std::pair<std::string, std::string>>;

// A response plus the headers some statuses require (Allow, WWW-Authenticate).
struct reply {
  http_response response;
  header_list headers;
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
// exception. So, after the fact, repeat the bind the way civetweb does
// (SO_REUSEADDR, IPv4 unless the address is IPv6) to learn the system's
// reason. Returns "" when the probe cannot explain it. May block for the
// resolver's timeout when the host name is unknown.
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

bool is_api_path(const std::string& path) {
  return path == "/api" || path.rfind("/api/", 0) == 0;
}

// The token after a case-insensitive "Bearer " scheme (RFC 6750), or nullopt
// when the header carries no bearer credentials at all.
std::optional<std::string_view> bearer_token_of(std::string_view header) {
  constexpr std::string_view scheme = "bearer ";
  if (header.size() <= scheme.size()) return std::nullopt;
  for (std::size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != scheme[i]) {
      return std::nullopt;
    }
  }
  std::string_view token = header.substr(scheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  return token;
}

// Time depends on the length of `given` only, never on where the first
// mismatch is, so that response times do not reveal the token byte by byte.
bool same_token(std::string_view given, std::string_view expected) {
  if (expected.empty()) return false;
  std::size_t diff = given.size() ^ expected.size();
  for (std::size_t i = 0; i < given.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i]) ^
            static_cast<unsigned char>(expected[i % expected.size()]);
  }
  return diff == 0;
}

enum class body_read { complete, too_large, broken };

// Reads the whole body into `body`, but never more than `limit` bytes: the
// loop ends at the end of the body, on a connection error or timeout, or once
// the limit is passed.
body_read read_body(mg_connection* conn, std::size_t limit, std::string& body) {
  const long long announced = mg_get_request_info(conn)->content_length;
  if (announced > 0 && static_cast<unsigned long long>(announced) > limit) {
    return body_read::too_large;
  }
  char chunk[16384];
  for (;;) {
    const int n = mg_read(conn, chunk, sizeof chunk);
    if (n == 0) return body_read::complete;
    if (n < 0) return body_read::broken;
    if (body.size() + static_cast<std::size_t>(n) > limit) {
      return body_read::too_large;
    }
    body.append(chunk, static_cast<std::size_t>(n));
  }
}

void send_reply(mg_connection* conn, const reply& r) {
  const http_response& response = r.response;
  const std::string length = std::to_string(response.body.size());
  mg_response_header_start(conn, response.status);
  mg_response_header_add(conn, "Content-Type", response.content_type.c_str(),
                         -1);
  mg_response_header_add(conn, "Content-Length", length.c_str(), -1);
  mg_response_header_add(conn, "Cache-Control", "no-store", -1);
  for (const auto& [name, value] : r.headers) {
    mg_response_header_add(conn, name.c_str(), value.c_str(), -1);
  }
  mg_response_header_send(conn);
  // A HEAD answer announces the body's length but must not carry it.
  if (std::string_view{mg_get_request_info(conn)->request_method} != "HEAD") {
    mg_write(conn, response.body.data(), response.body.size());
  }
}

// Civetweb calls one handler object for every path (pattern "**") and
// method; it routes by itself so that 401, 404 and 405 follow one policy.
// Immutable after construction, hence safe on all server threads at once.
class dispatcher final : public CivetHandler {
 public:
  dispatcher(http_server::config cfg,
             std::map<std::string, std::map<std::string, http_handler>> routes)
      : config_(std::move(cfg)), routes_(std::move(routes)) {}

  bool handleGet(CivetServer*, mg_connection* conn) override {
    return serve(conn);
  }
  bool handlePost(CivetServer*, mg_connection* conn) override {
    return serve(conn);
  }
  bool handleHead(CivetServer*, mg_connection* conn) override {
    return serve(conn);
  }
  bool handlePut(CivetServer*, mg_connection* conn) override {
    return serve(conn);
  }
  bool handleDelete(CivetServer*, mg_connection* conn) override {
    return serve(conn);
  }
  bool handleOptions(CivetServer*, mg_connection* conn) override {
    return serve(conn);
  }
  bool handlePatch(CivetServer*, mg_connection* conn) override {
    return serve(conn);
  }

 private:
  // No exception may unwind into civetweb's C code.
  bool serve(mg_connection* conn) noexcept {
    try {
      const mg_request_info* info = mg_get_request_info(conn);
      http_request request;
      request.method = info->request_method;
      request.path = info->local_uri != nullptr ? info->local_uri : "/";
      if (info->query_string != nullptr) request.query = info->query_string;
      if (const char* auth = mg_get_header(conn, "Authorization")) {
        request.authorization = auth;
      }
      reply r;
      try {
        r = answer(conn, request);
      } catch (const std::exception& e) {
        r = {json_error(500, e.what()), {}};
      } catch (...) {
        r = {json_error(500, "handler threw a non-standard exception"), {}};
      }
      send_reply(conn, r);
    } catch (...) {
      mg_send_http_error(conn, 500, "%s", "internal server error");
    }
    return true;
  }

  // The 401 answer when the path needs the token and the request lacks it.
  std::optional<reply> refusal(const http_request& request) const {
    if (config_.bearer_token.empty() || !is_api_path(request.path)) {
      return std::nullopt;
    }
    const auto token = bearer_token_of(request.authorization);
    if (!token) {
      return reply{json_error(401, "missing bearer token"),
                   {{"WWW-Authenticate", "Bearer"}}};
    }
    if (!same_token(*token, config_.bearer_token)) {
      return reply{json_error(401, "invalid bearer token"),
                   {{"WWW-Authenticate", "Bearer error=\"invalid_token\""}}};
    }
    return std::nullopt;
  }

  reply metrics(const http_request& request) const {
    if (request.method != "GET") {
      return {json_error(405, "/metrics only answers GET"), {{"Allow", "GET"}}};
    }
    const prometheus::TextSerializer serializer;
    return {{200, prometheus_content_type,
             serializer.Serialize(
                 detail::to_prometheus_families(config_.registry->snapshot()))},
            {}};
  }

  reply answer(mg_connection* conn, http_request& request) const {
    if (auto refused = refusal(request)) return std::move(*refused);
    if (config_.registry != nullptr && request.path == "/metrics") {
      return metrics(request);
    }
    const auto path = routes_.find(request.path);
    if (path == routes_.end()) {
      return {json_error(404, "no such path: " + request.path), {}};
    }
    const auto route = path->second.find(request.method);
    if (route == path->second.end()) {
      std::string allow;
      for (const auto& [method, handler] : path->second) {
        allow += (allow.empty() ? "" : ", ") + method;
      }
      return {json_error(405, request.path + " does not answer " +
                                  request.method + " (allowed: " + allow + ")"),
              {{"Allow", allow}}};
    }
    switch (read_body(conn, config_.max_body_bytes, request.body)) {
      case body_read::complete:
        break;
      case body_read::too_large:
        return {json_error(413, "request body larger than " +
                                    std::to_string(config_.max_body_bytes) +
                                    " bytes"),
                {}};
      case body_read::broken:
        return {json_error(400, "request body ended early"), {}};
    }
    http_response response = route->second(request);
    if (response.status < 200 || response.status > 599) {
      return {json_error(500, "handler returned HTTP status " +
                                  std::to_string(response.status)),
              {}};
    }
    return {std::move(response), {}};
  }

  const http_server::config config_;
  const std::map<std::string, std::map<std::string, http_handler>> routes_;
};

// Checks the routes and indexes them by path, then method.
result<std::map<std::string, std::map<std::string, http_handler>>> index_routes(
    std::vector<http_server::route> routes, bool serves_metrics) {
  std::map<std::string, std::map<std::string, http_handler>> index;
  for (auto& r : routes) {
    if (r.method.empty() || r.path.empty() || r.path.front() != '/') {
      return status{errc::invalid_argument,
                    "HTTP route '" + r.method + " " + r.path +
                        "' needs a method and a path starting with '/'"};
    }
    if (!r.handler) {
      return status{errc::invalid_argument, "HTTP route '" + r.method + " " +
                                                r.path + "' has no handler"};
    }
    if (serves_metrics && r.path == "/metrics") {
      return status{errc::invalid_argument,
                    "HTTP route '" + r.method +
                        " /metrics' collides with the metrics registry"};
    }
    if (!index[r.path].emplace(r.method, std::move(r.handler)).second) {
      return status{
          errc::invalid_argument,
          "HTTP route '" + r.method + " " + r.path + "' is registered twice"};
    }
  }
  return index;
}

}  // namespace

http_response json_error(int status, std::string_view message) {
  const nlohmann::json body = {{"error", std::string{message}}};
  return {status, "application/json",
          body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}

// Member order matters: the server is destroyed first, which waits for the
// requests in progress, so no request can reach a destroyed dispatcher.
struct http_server::impl {
  std::unique_ptr<dispatcher> handler;
  std::unique_ptr<CivetServer> server;
  std::string host;  ///< As given: an address to reach the listener at.
  std::uint16_t port = 0;
};

namespace {

// Opens and closes one connection to the listener, so that civetweb's
// accept loop wakes from its 2-second poll and sees the stop at once.
void poke(const std::string& host, std::uint16_t port) {
  std::string target = host;
  if (target == "0.0.0.0") target = "127.0.0.1";
  if (target == "::") target = "::1";
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(target.c_str(), std::to_string(port).c_str(), &hints,
                  &found) != 0)
    return;
  const int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    (void)connect(fd, found->ai_addr, found->ai_addrlen);
    close(fd);
  }
  freeaddrinfo(found);
}

}  // namespace

http_server::http_server(std::unique_ptr<impl> state)
    : impl_(std::move(state)) {}

http_server::~http_server() {
  if (!impl_ || !impl_->server) return;
  // Poke the listener until the server is gone: a poke that lands before
  // civetweb set its stop flag is served as a request and the loop polls
  // again. Bounded by the poll period it shortens.
  std::atomic<bool> stopped{false};
  std::thread waker{[&] {
    for (int i = 0; i < 100 && !stopped.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds{20});
      if (!stopped.load()) poke(impl_->host, impl_->port);
    }
  }};
  impl_->server.reset();
  stopped = true;
  waker.join();
}

result<std::unique_ptr<http_server>> http_server::start(
    config cfg, std::vector<route> routes) {
  if (!is_host_text(cfg.address)) {
    return status{errc::invalid_argument,
                  "HTTP bind address '" + cfg.address +
                      "' is not a host name or IP address"};
  }
  auto index = index_routes(std::move(routes), cfg.registry != nullptr);
  if (!index) return index.error();

  const std::string host = without_brackets(cfg.address);
  const std::uint16_t port = cfg.port;
  const bool is_ipv6 = host.find(':') != std::string::npos;
  const std::string where =
      (is_ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);

  auto state = std::make_unique<impl>();
  state->handler =
      std::make_unique<dispatcher>(std::move(cfg), std::move(*index));
  try {
    state->server = std::make_unique<CivetServer>(std::vector<std::string>{
        "listening_ports", where, "num_threads", server_threads,
        "request_timeout_ms", request_timeout_ms, "enable_keep_alive", "no"});
  } catch (const std::exception& e) {
    std::string reason = bind_failure_reason(host, port);
    if (reason.empty()) reason = e.what();
    return status{errc::io_error,
                  "cannot serve HTTP on " + where + ": " + reason};
  }
  state->server->addHandler("**", state->handler.get());

  // One address was given, so civetweb reports exactly one listener.
  const std::vector<int> ports = state->server->getListeningPorts();
  if (ports.size() != 1 || ports.front() <= 0 || ports.front() > 65535) {
    return status{errc::internal, "HTTP server on " + where +
                                      " reports an unexpected listening port"};
  }
  state->port = static_cast<std::uint16_t>(ports.front());
  state->host = host;
  return std::unique_ptr<http_server>{new http_server(std::move(state))};
}

std::uint16_t http_server::port() const noexcept { return impl_->port; }

}  // namespace stream
