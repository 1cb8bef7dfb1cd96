#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "stream/metrics.hpp"
#include "stream/status.hpp"

namespace stream {

/// Serves `GET /metrics` for one registry in the Prometheus text format, so
/// that Prometheus or the autoscaler can scrape the process.
///
/// A `stream::http_server` without routes (four threads); each scrape takes a
/// registry snapshot, which never blocks hot-path updates (only the creation
/// of new series, briefly). Other paths answer 404. Destroying the server
/// stops listening and waits for scrapes in progress. All members are
/// thread-safe.
class metrics_server {
 public:
  /// Starts listening on `bind_address:port` and returns the running server.
  ///
  /// `bind_address` is an IPv4 literal (`0.0.0.0` for every interface) or a
  /// host name; `port` 0 picks a free port, see `port()`. `registry` must not
  /// be null; the server keeps it alive until destroyed.
  ///
  /// Errors: `errc::invalid_argument` when `bind_address` is empty or holds a
  /// character no host name or address has (such as `,` or a space);
  /// `errc::io_error` when the socket cannot be bound (port in use, address
  /// not local or not resolvable, IPv6 where the HTTP server lacks it), with
  /// a message that names the address, the port and the reason.
  static result<std::unique_ptr<metrics_server>> start(
      std::shared_ptr<metrics_registry> registry,
      const std::string& bind_address, std::uint16_t port);

  ~metrics_server();

  metrics_server(const metrics_server&) = delete;
  metrics_server& operator=(const metrics_server&) = delete;

  /// The TCP port the server listens on: the one chosen by the system when
  /// started with port 0.
  std::uint16_t port() const noexcept;

 private:
  struct impl;

  explicit metrics_server(std::unique_ptr<impl> state);

  std::unique_ptr<impl> impl_;
};

}  // namespace stream
