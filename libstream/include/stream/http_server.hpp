#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "stream/metrics.hpp"
#include "stream/status.hpp"

namespace stream {

/// One HTTP request as a route handler sees it. The body has been read in
/// full (at most `http_server::config::max_body_bytes`).
struct http_request {
  std::string method;         ///< Upper case as sent, e.g. "GET".
  std::string path;           ///< URL-decoded, without the query.
  std::string query;          ///< The raw text after '?', or "".
  std::string body;           ///< Request body bytes, possibly empty.
  std::string authorization;  ///< The Authorization header, or "".
};

/// What a route handler answers. Defaults: 200, a JSON body.
struct http_response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

/// Returns `{"error":"<message>"}` with `status`: the one error shape of the
/// REST API. `message` is any text; it is JSON-escaped (invalid UTF-8 is
/// replaced).
http_response json_error(int status, std::string_view message);

/// Answers one request. Runs on a server thread, possibly concurrently with
/// itself; see `http_server`. An exception it throws becomes a 500 response
/// whose JSON error is the exception's `what()`.
using http_handler = std::function<http_response(const http_request&)>;

/// A small HTTP/1.1 server for a JSON REST API: exact-path routes, an
/// optional bearer token on `/api/`, and optionally `GET /metrics`.
///
/// Requests are answered on a fixed pool of 128 server threads, one
/// connection each, without keep-alive; a client that sends no complete
/// request within 2 s is disconnected, so 120 idle connections delay no
/// other client, and more delay others by at most 2 s each wave.
/// Before a handler runs, the server answers by itself:
/// - 401 `{"error":"missing bearer token"}` (with `WWW-Authenticate: Bearer`)
///   or `{"error":"invalid bearer token"}` for a path equal to `/api` or
///   under `/api/` when a token is configured and the request lacks it;
/// - 404 for a path no route has, 405 with `Allow` for a known path and
///   another method;
/// - 413 when the body exceeds `config::max_body_bytes` (not read further).
///
/// Handlers are called on threads the caller does not own: per the house
/// rules they should only send messages (and wait for replies, with a
/// bound) rather than touch actor state. Destroying the server stops
/// listening and waits for requests in progress, so a handler may capture
/// state that outlives the server; it wakes civetweb's accept loop with a
/// connection of its own, so an idle server stops within milliseconds.
/// `port()` is thread-safe.
class http_server {
 public:
  /// Listening and access options; defaults in the member initialisers.
  struct config {
    /// IPv4 literal (`0.0.0.0` for every interface) or host name.
    std::string address = "0.0.0.0";
    /// TCP port; 0 picks a free port, see `port()`.
    std::uint16_t port = 0;
    /// Token every `/api` request must present as `Authorization: Bearer
    /// <token>`, compared in constant time. Empty: no authentication.
    std::string bearer_token;
    /// When set, `GET /metrics` serves it in the Prometheus text format,
    /// exactly as `metrics_server` does, without the token. The server
    /// keeps the registry alive until destroyed.
    std::shared_ptr<metrics_registry> registry;
    /// Largest request body accepted; larger ones get 413. 1 MiB.
    std::size_t max_body_bytes = std::size_t{1} << 20;
  };

  /// One endpoint: `method` (upper case, e.g. "POST") on exactly `path`
  /// (e.g. "/api/v1/job"; no pattern, no trailing-slash folding).
  struct route {
    std::string method;
    std::string path;
    http_handler handler;  ///< Must not be empty.
  };

  /// Starts listening on `cfg.address:cfg.port` with `routes` and returns
  /// the running server. Routes cannot be changed later.
  ///
  /// Errors: `errc::invalid_argument` when the address is empty or holds a
  /// character no host name or address has (such as `,` or a space), when a
  /// route's path does not start with '/' or its method is empty, when two
  /// routes share method and path, or when a route takes `/metrics` while a
  /// registry is set; `errc::io_error` when the socket cannot be bound (port
  /// in use, address not local or not resolvable), with a message that names
  /// the address, the port and the reason.
  static result<std::unique_ptr<http_server>> start(config cfg,
                                                    std::vector<route> routes);

  /// Stops listening and waits for requests in progress.
  ~http_server();

  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// The TCP port the server listens on: the one chosen by the system when
  /// started with port 0.
  std::uint16_t port() const noexcept;

 private:
  struct impl;

  explicit http_server(std::unique_ptr<impl> state);

  std::unique_ptr<impl> impl_;
};

}  // namespace stream
