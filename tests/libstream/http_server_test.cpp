#include "stream/http_server.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "stream/metrics.hpp"
#include "stream/metrics_server.hpp"
#include "stream/status.hpp"

namespace stream {
namespace {

::testing::AssertionResult contains(const std::string& text,
                                    const std::string& part) {
  if (text.find(part) != std::string::npos) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "\"" << part << "\" not in:\n"
                                       << text;
}

struct answer {
  long code = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case

  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

std::size_t append_body(char* data, std::size_t size, std::size_t count,
                        void* out) {
  static_cast<answer*>(out)->body.append(data, size * count);
  return size * count;
}

std::size_t keep_header(char* data, std::size_t size, std::size_t count,
                        void* out) {
  const std::string line{data, size * count};
  const auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(c));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    value.erase(value.find_last_not_of("\r\n") + 1);
    static_cast<answer*>(out)->headers[name] = value;
  }
  return size * count;
}

// A real HTTP client over a real socket, as streamctl or Prometheus use.
answer request(const std::string& method, const std::string& url,
               const std::vector<std::string>& headers = {},
               const std::string* body = nullptr) {
  answer out;
  const std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl{
      curl_easy_init(), &curl_easy_cleanup};
  EXPECT_NE(curl, nullptr);
  if (curl == nullptr) return out;
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  const std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> guard{
      list, &curl_slist_free_all};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
  if (body != nullptr) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(body->size()));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &append_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, &keep_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &out);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  // A hung server must fail the test, not stall the suite.
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
  const CURLcode rc = curl_easy_perform(c);
  EXPECT_EQ(rc, CURLE_OK) << curl_easy_strerror(rc) << " for " << url;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out.code);
  return out;
}

std::string url(const http_server& server, const std::string& path) {
  return "http://127.0.0.1:" + std::to_string(server.port()) + path;
}

http_server::config local(std::string token = "") {
  http_server::config cfg;
  cfg.address = "127.0.0.1";
  cfg.bearer_token = std::move(token);
  return cfg;
}

std::vector<http_server::route> job_routes() {
  return {
      {"GET", "/api/v1/job",
       [](const http_request&) {
         return http_response{200, "application/json", R"({"job":"eo"})"};
       }},
      {"POST", "/api/v1/echo",
       [](const http_request& r) {
         return http_response{
             201, "text/plain",
             r.method + " " + r.path + "?" + r.query + " " + r.body};
       }},
  };
}

std::unique_ptr<http_server> start(http_server::config cfg,
                                   std::vector<http_server::route> routes) {
  auto server = http_server::start(std::move(cfg), std::move(routes));
  EXPECT_TRUE(server.ok()) << server.error().to_string();
  return server.ok() ? std::move(*server) : nullptr;
}

TEST(http_server, answers_its_routes_on_a_free_port) {
  auto server = start(local(), job_routes());
  ASSERT_NE(server, nullptr);
  EXPECT_NE(server->port(), 0);

  const answer job = request("GET", url(*server, "/api/v1/job"));
  EXPECT_EQ(job.code, 200);
  EXPECT_EQ(job.body, R"({"job":"eo"})");
  EXPECT_EQ(job.header("content-type"), "application/json");

  const std::string body = "payload";
  const answer echo =
      request("POST", url(*server, "/api/v1/echo?x=1&y=2"), {}, &body);
  EXPECT_EQ(echo.code, 201);
  EXPECT_EQ(echo.body, "POST /api/v1/echo?x=1&y=2 payload");
}

TEST(http_server, answers_404_with_a_json_error_for_an_unknown_path) {
  auto server = start(local(), job_routes());
  ASSERT_NE(server, nullptr);
  const answer missing = request("GET", url(*server, "/api/v1/nothing"));
  EXPECT_EQ(missing.code, 404);
  EXPECT_EQ(missing.body, R"({"error":"no such path: /api/v1/nothing"})");
  // Without a registry, /metrics is just another unknown path.
  EXPECT_EQ(request("GET", url(*server, "/metrics")).code, 404);
}

TEST(http_server, answers_405_with_allow_for_another_method_on_a_known_path) {
  auto server = start(local(), job_routes());
  ASSERT_NE(server, nullptr);
  const answer wrong = request("DELETE", url(*server, "/api/v1/job"));
  EXPECT_EQ(wrong.code, 405);
  EXPECT_EQ(wrong.header("allow"), "GET");
  EXPECT_TRUE(contains(wrong.body, R"({"error":")"));
}

TEST(http_server, requires_the_bearer_token_under_api) {
  std::vector<http_server::route> routes = job_routes();
  routes.push_back({"GET", "/healthz", [](const http_request&) {
                      return http_response{200, "text/plain", "ok"};
                    }});
  auto server = start(local("s3cret"), std::move(routes));
  ASSERT_NE(server, nullptr);
  const std::string job = url(*server, "/api/v1/job");

  const answer missing = request("GET", job);
  EXPECT_EQ(missing.code, 401);
  EXPECT_EQ(missing.body, R"({"error":"missing bearer token"})");
  EXPECT_TRUE(contains(missing.header("www-authenticate"), "Bearer"));

  const answer basic = request("GET", job, {"Authorization: Basic czNjcmV0"});
  EXPECT_EQ(basic.code, 401);
  EXPECT_EQ(basic.body, R"({"error":"missing bearer token"})");

  for (const std::string wrong : {"s3cre", "s3cret!", "S3cret", "x"}) {
    const answer denied =
        request("GET", job, {"Authorization: Bearer " + wrong});
    EXPECT_EQ(denied.code, 401) << wrong;
    EXPECT_EQ(denied.body, R"({"error":"invalid bearer token"})") << wrong;
  }
  // Unknown paths under /api/ do not reveal themselves without the token.
  EXPECT_EQ(request("GET", url(*server, "/api/v2/x")).code, 401);

  EXPECT_EQ(request("GET", job, {"Authorization: Bearer s3cret"}).code, 200);
  EXPECT_EQ(request("GET", job, {"Authorization: bearer s3cret"}).code, 200);
  EXPECT_EQ(request("GET", url(*server, "/healthz")).code, 200);
}

TEST(http_server, serves_metrics_without_the_token_as_metrics_server_does) {
  auto registry = std::make_shared<metrics_registry>();
  registry
      ->get_counter("records_in_total", "Records read.", {{"operator", "map"}})
      .add(5);
  registry->get_gauge("queue_length", "Batches queued.", {}).set(3);
  http_server::config cfg = local("s3cret");
  cfg.registry = registry;
  auto server = start(cfg, job_routes());
  ASSERT_NE(server, nullptr);

  const answer metrics = request("GET", url(*server, "/metrics"));
  EXPECT_EQ(metrics.code, 200);
  EXPECT_TRUE(contains(metrics.header("content-type"), "text/plain"));
  EXPECT_TRUE(contains(metrics.body, "# TYPE records_in_total counter\n"));
  EXPECT_TRUE(contains(metrics.body, "records_in_total{operator=\"map\"} 5"));
  EXPECT_EQ(request("POST", url(*server, "/metrics")).code, 405);

  // metrics_server (this server without routes) serves the same text.
  auto reference = metrics_server::start(registry, "127.0.0.1", 0);
  ASSERT_TRUE(reference.ok()) << reference.error().to_string();
  const answer expected = request(
      "GET",
      "http://127.0.0.1:" + std::to_string((*reference)->port()) + "/metrics");
  EXPECT_EQ(metrics.body, expected.body);
}

TEST(http_server, turns_a_handler_exception_into_500_with_its_text) {
  auto server =
      start(local(), {{"POST", "/api/v1/savepoints", [](const http_request&) {
                         throw std::runtime_error("disk \"full\"");
                         return http_response{};
                       }}});
  ASSERT_NE(server, nullptr);
  const answer failed = request("POST", url(*server, "/api/v1/savepoints"));
  EXPECT_EQ(failed.code, 500);
  EXPECT_EQ(failed.body, R"({"error":"disk \"full\""})");
}

TEST(http_server, rejects_a_body_over_the_limit_with_413) {
  auto server = start(local(), job_routes());
  ASSERT_NE(server, nullptr);
  const std::string echo = url(*server, "/api/v1/echo");

  const std::string at_limit(std::size_t{1} << 20, 'a');
  const answer accepted = request("POST", echo, {}, &at_limit);
  EXPECT_EQ(accepted.code, 201);
  EXPECT_EQ(accepted.body.size(), at_limit.size() + 19);

  const std::string over = at_limit + "b";
  const answer rejected = request("POST", echo, {}, &over);
  EXPECT_EQ(rejected.code, 413);
  EXPECT_TRUE(contains(rejected.body, "larger than 1048576 bytes"));

  // Without Content-Length the limit holds while reading.
  const answer chunked =
      request("POST", echo, {"Transfer-Encoding: chunked"}, &over);
  EXPECT_EQ(chunked.code, 413);
}

TEST(http_server, runs_handlers_on_several_threads_at_once) {
  // Each handler waits until all four are inside: one server thread alone
  // would time out instead.
  constexpr int parallel = 4;
  std::mutex mutex;
  std::condition_variable all_inside;
  int inside = 0;
  auto server = start(
      local(), {{"GET", "/api/v1/wait", [&](const http_request&) {
                   std::unique_lock lock{mutex};
                   ++inside;
                   all_inside.notify_all();
                   const bool met =
                       all_inside.wait_for(lock, std::chrono::seconds(4),
                                           [&] { return inside == parallel; });
                   return http_response{met ? 200 : 504, "text/plain", ""};
                 }}});
  ASSERT_NE(server, nullptr);
  std::vector<long> codes(parallel);
  std::vector<std::thread> clients;
  clients.reserve(parallel);
  for (int i = 0; i < parallel; ++i) {
    clients.emplace_back([&, i] {
      codes[i] = request("GET", url(*server, "/api/v1/wait")).code;
    });
  }
  for (auto& t : clients) t.join();
  for (long code : codes) EXPECT_EQ(code, 200);
}

/// Opens `n` TCP connections to `port` on loopback that never send a byte.
std::vector<int> idle_connections(std::uint16_t port, int n) {
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr),
              0);
    fds.push_back(fd);
  }
  return fds;
}

TEST(http_server, fifty_idle_connections_do_not_delay_other_clients) {
  // The connections are accepted in order, so both requests queue behind
  // all 50 idle sockets: with a pool smaller than that, they would wait
  // for the idle ones to time out.
  auto cfg = local("secret");
  cfg.registry = std::make_shared<metrics_registry>();
  cfg.registry->get_counter("stream_demo_total", "demo", {}).add(3);
  auto server = start(cfg, job_routes());
  ASSERT_NE(server, nullptr);
  auto idle = idle_connections(server->port(), 50);
  for (const char* path : {"/api/v1/job", "/metrics"}) {
    auto begin = std::chrono::steady_clock::now();
    auto got =
        request("GET", url(*server, path), {"Authorization: Bearer secret"});
    auto ms = std::chrono::duration<double, std::milli>(
                  std::chrono::steady_clock::now() - begin)
                  .count();
    EXPECT_EQ(got.code, 200) << path;
    EXPECT_LT(ms, 1000.0) << path << " waited behind idle connections";
    std::printf("measured: GET %s with 50 idle connections open: %.1f ms\n",
                path, ms);
  }
  // Stopping does not wait for the idle clients beyond the request timeout.
  auto begin = std::chrono::steady_clock::now();
  server.reset();
  auto stop_ms = std::chrono::duration<double, std::milli>(
                     std::chrono::steady_clock::now() - begin)
                     .count();
  EXPECT_LT(stop_ms, 3000.0);
  for (int fd : idle) ::close(fd);
}

TEST(http_server, an_idle_server_stops_at_once) {
  auto server = start(local(), job_routes());
  ASSERT_NE(server, nullptr);
  auto begin = std::chrono::steady_clock::now();
  server.reset();
  auto ms = std::chrono::duration<double, std::milli>(
                std::chrono::steady_clock::now() - begin)
                .count();
  std::printf("measured: an idle HTTP server stopped in %.1f ms\n", ms);
  // civetweb's accept loop alone polls every 2 s.
  EXPECT_LT(ms, 1000.0);
}

TEST(http_server, fails_with_io_error_naming_the_port_when_it_is_taken) {
  auto first = start(local(), job_routes());
  ASSERT_NE(first, nullptr);
  http_server::config cfg = local();
  cfg.port = first->port();

  auto second = http_server::start(cfg, job_routes());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), errc::io_error);
  EXPECT_TRUE(contains(second.error().message(),
                       "127.0.0.1:" + std::to_string(cfg.port)));
  EXPECT_TRUE(contains(second.error().message(), "in use"));
  EXPECT_EQ(request("GET", url(*first, "/api/v1/job")).code, 200);
}

TEST(http_server, fails_with_io_error_on_an_address_it_cannot_bind) {
  http_server::config cfg;
  cfg.address = "256.1.1.1";
  cfg.port = 9249;
  auto server = http_server::start(cfg, {});
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.error().code(), errc::io_error);
  EXPECT_TRUE(contains(server.error().message(), "256.1.1.1:9249"));
}

TEST(http_server, rejects_an_address_that_would_open_more_listeners) {
  for (const std::string address : {"", "127.0.0.1:0,127.0.0.1", "a b"}) {
    http_server::config cfg;
    cfg.address = address;
    auto server = http_server::start(cfg, {});
    ASSERT_FALSE(server.ok()) << address;
    EXPECT_EQ(server.error().code(), errc::invalid_argument) << address;
    EXPECT_TRUE(contains(server.error().message(), "'" + address + "'"));
  }
}

TEST(http_server, rejects_routes_it_could_not_tell_apart) {
  const auto ok = [](const http_request&) { return http_response{}; };
  auto twice = http_server::start(
      local(), {{"GET", "/api/v1/job", ok}, {"GET", "/api/v1/job", ok}});
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code(), errc::invalid_argument);
  EXPECT_TRUE(contains(twice.error().message(), "registered twice"));

  http_server::config cfg = local();
  cfg.registry = std::make_shared<metrics_registry>();
  auto metrics = http_server::start(cfg, {{"GET", "/metrics", ok}});
  ASSERT_FALSE(metrics.ok());
  EXPECT_EQ(metrics.error().code(), errc::invalid_argument);

  auto relative = http_server::start(local(), {{"GET", "api/v1/job", ok}});
  ASSERT_FALSE(relative.ok());
  EXPECT_EQ(relative.error().code(), errc::invalid_argument);
}

}  // namespace
}  // namespace stream
