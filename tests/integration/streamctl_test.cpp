// streamctl, the built binary, against a real stream::http_server in this
// process serving the coordinator's REST API documents.

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "process.hpp"
#include "stream/http_server.hpp"

namespace stream {
namespace {

constexpr const char* token = "s3cret";

constexpr const char* job_json = R"({
  "job": "eo", "state": "running", "attempt": 1, "restarts": 1,
  "uptime_seconds": 12.5, "fingerprint": "0123456789abcdef",
  "max_parallelism": 128,
  "workers": [{"id": "w-1", "address": "127.0.0.1:40123", "slots": 2,
               "used": 2, "state": "up"}],
  "operators": [
    {"id": 0, "name": "readings", "kind": "source", "chain": "readings",
     "parallelism": 2, "keyed": false},
    {"id": 2, "name": "window", "kind": "operator",
     "chain": "window -> format", "parallelism": 3, "keyed": true}],
  "tasks": [{"chain": "readings", "subtask": 0, "worker": "w-1",
             "state": "running"}],
  "key_groups": [{"operator": "window", "parallelism": 3, "table_version": 2,
    "subtasks": [{"subtask": 0, "key_groups": "0-40,100,120-121",
                  "runs": [[0, 40], [100, 100], [120, 121]], "count": 44,
                  "worker": "w-1"}]}]})";

constexpr const char* checkpoints_json = R"({
  "counts": {"completed": 5, "failed": 1, "in_progress": 0},
  "history": [
    {"id": 5, "kind": "checkpoint", "status": "completed",
     "folder": "/tmp/c/eo/chk-5", "duration_ms": 12.5, "size_bytes": 123456,
     "reason": ""},
    {"id": 6, "kind": "checkpoint", "status": "failed", "folder": "",
     "duration_ms": 60.0, "size_bytes": 0, "reason": "timed out"}]})";

struct outcome {
  int code = -1;
  std::string out;
  std::string err;
};

// One server for the suite (stopping civetweb takes up to 2 s); each test
// starts from the documents above and may replace one.
class streamctl : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    http_server::config cfg;
    cfg.address = "127.0.0.1";
    cfg.bearer_token = token;
    std::vector<http_server::route> routes;
    for (const auto& [method, path] : {std::pair{"GET", "/api/v1/job"},
                                       {"GET", "/api/v1/checkpoints"},
                                       {"POST", "/api/v1/savepoints"},
                                       {"POST", "/api/v1/cancel"}}) {
      routes.push_back(
          {method, path, [p = std::string{path}](const http_request&) {
             const std::lock_guard lock{replies_mutex};
             return replies.at(p);
           }});
    }
    auto started = http_server::start(cfg, std::move(routes));
    ASSERT_TRUE(started.ok()) << started.error().to_string();
    server = std::move(*started);
  }

  static void TearDownTestSuite() { server.reset(); }

  void SetUp() override {
    ASSERT_NE(server, nullptr);
    const std::lock_guard lock{replies_mutex};
    replies = {
        {"/api/v1/job", {200, "application/json", job_json}},
        {"/api/v1/checkpoints", {200, "application/json", checkpoints_json}},
        {"/api/v1/savepoints",
         {200, "application/json",
          R"({"id":7,"kind":"savepoint","folder":"/tmp/s/eo/sp-7"})"}},
        {"/api/v1/cancel",
         {202, "application/json", R"({"state":"cancelling"})"}},
    };
  }

  static void reply(const std::string& path, http_response response) {
    const std::lock_guard lock{replies_mutex};
    replies[path] = std::move(response);
  }

  static std::string server_url() {
    return "http://127.0.0.1:" + std::to_string(server->port());
  }

  // Runs streamctl against the server with the right token, plus `args`.
  static outcome run(const std::vector<std::string>& args,
                     const std::string& with_token = token) {
    std::vector<std::string> argv{STREAMCTL_PATH, "--server", server_url(),
                                  "--token", with_token};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_raw(argv);
  }

  static outcome run_raw(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {}) {
    outcome o;
    o.code = testing::run_command(argv, &o.out, &o.err, env);
    return o;
  }

 private:
  static inline std::unique_ptr<http_server> server;
  static inline std::mutex replies_mutex;
  static inline std::map<std::string, http_response> replies;
};

// The whitespace-separated cells of the first line of `text` that contains
// `needle`; empty when none does.
std::vector<std::string> row_with(const std::string& text,
                                  const std::string& needle) {
  std::istringstream lines{text};
  for (std::string line; std::getline(lines, line);) {
    if (line.find(needle) == std::string::npos) continue;
    std::istringstream words{line};
    std::vector<std::string> cells;
    for (std::string w; words >> w;) cells.push_back(w);
    return cells;
  }
  return {};
}

using cells = std::vector<std::string>;

TEST_F(streamctl, job_prints_the_summary_operators_and_workers) {
  const outcome o = run({"job"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(row_with(o.out, "job:"), (cells{"job:", "eo"}));
  EXPECT_EQ(row_with(o.out, "state:"), (cells{"state:", "running"}));
  EXPECT_EQ(row_with(o.out, "attempt:"), (cells{"attempt:", "1"}));
  EXPECT_EQ(row_with(o.out, "restarts:"), (cells{"restarts:", "1"}));
  EXPECT_EQ(row_with(o.out, "uptime:"), (cells{"uptime:", "12.5s"}));
  EXPECT_EQ(row_with(o.out, "PARALLELISM"),
            (cells{"ID", "NAME", "KIND", "PARALLELISM", "KEYED", "CHAIN"}));
  EXPECT_EQ(row_with(o.out, "source"),
            (cells{"0", "readings", "source", "2", "no", "readings"}));
  EXPECT_EQ(row_with(o.out, "w-1"),
            (cells{"w-1", "127.0.0.1:40123", "2", "2", "up"}));
}

TEST_F(streamctl, operators_lists_every_operator_with_its_parallelism) {
  const outcome o = run({"operators"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(row_with(o.out, "readings"),
            (cells{"0", "readings", "source", "2", "no", "readings"}));
  EXPECT_EQ(
      row_with(o.out, "window"),
      (cells{"2", "window", "operator", "3", "yes", "window", "->", "format"}));
}

TEST_F(streamctl, keygroups_lists_each_subtask_runs_with_the_table_version) {
  const outcome o = run({"keygroups"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(row_with(o.out, "OPERATOR"),
            (cells{"OPERATOR", "TABLE", "SUBTASK", "KEY", "GROUPS", "COUNT",
                   "WORKER"}));
  EXPECT_EQ(row_with(o.out, "window"),
            (cells{"window", "v2", "0", "0-40,100,120-121", "44", "w-1"}));
}

TEST_F(streamctl, checkpoints_prints_the_counts_and_the_history) {
  const outcome o = run({"checkpoints"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_NE(o.out.find("completed 5, failed 1, in progress 0"),
            std::string::npos)
      << o.out;
  EXPECT_EQ(row_with(o.out, "chk-5"),
            (cells{"5", "checkpoint", "completed", "12.5", "ms", "120.6", "KiB",
                   "/tmp/c/eo/chk-5", "-"}));
  EXPECT_EQ(row_with(o.out, "timed out"),
            (cells{"6", "checkpoint", "failed", "60.0", "ms", "0", "B", "-",
                   "timed", "out"}));
}

TEST_F(streamctl, savepoint_prints_the_folder_written) {
  const outcome o = run({"savepoint"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, "savepoint 7 written to /tmp/s/eo/sp-7\n");
}

TEST_F(streamctl, cancel_prints_the_state) {
  const outcome o = run({"cancel"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, "state: cancelling\n");
}

TEST_F(streamctl, json_prints_the_servers_document) {
  const outcome o = run({"--json", "checkpoints"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(nlohmann::json::parse(o.out),
            nlohmann::json::parse(checkpoints_json));
}

TEST_F(streamctl, shows_missing_fields_as_dashes_and_ignores_unknown_ones) {
  reply("/api/v1/job",
        {200, "application/json",
         R"({"job":"eo","future":{"x":1},"operators":[{"id":4,"name":"sink",
             "parallelism":1,"extra":true}]})"});
  const outcome o = run({"job"});
  ASSERT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(row_with(o.out, "state:"), (cells{"state:", "-"}));
  EXPECT_EQ(row_with(o.out, "uptime:"), (cells{"uptime:", "-"}));
  EXPECT_EQ(row_with(o.out, "sink"), (cells{"4", "sink", "-", "1", "-", "-"}));
}

TEST_F(streamctl, exits_1_with_the_servers_error_for_a_wrong_token) {
  const outcome o = run({"job"}, "wrong");
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(o.out, "");
  EXPECT_EQ(o.err, "streamctl: 401 Unauthorized: invalid bearer token\n");
}

TEST_F(streamctl, exits_1_with_the_servers_error_when_a_savepoint_fails) {
  reply("/api/v1/savepoints",
        json_error(409, "a savepoint is already in progress"));
  const outcome o = run({"savepoint"});
  EXPECT_EQ(o.code, 1);
  EXPECT_EQ(o.err,
            "streamctl: 409 Conflict: a savepoint is already in progress\n");
}

TEST_F(streamctl, takes_server_and_token_from_the_environment) {
  const outcome o =
      run_raw({STREAMCTL_PATH, "cancel"},
              {{"STREAM_SERVER", server_url()}, {"STREAM_REST_TOKEN", token}});
  EXPECT_EQ(o.code, 0) << o.err;
  EXPECT_EQ(o.out, "state: cancelling\n");
}

TEST_F(streamctl, exits_3_naming_the_url_when_nothing_listens) {
  // A port that was free a moment ago and has no listener.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  const std::string url =
      "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  const outcome o = run_raw({STREAMCTL_PATH, "--server", url, "job"});
  EXPECT_EQ(o.code, 3);
  EXPECT_NE(o.err.find("cannot reach " + url + "/api/v1/job: "),
            std::string::npos)
      << o.err;
}

TEST_F(streamctl, exits_2_on_a_bad_command_line) {
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"--bogus", "job"},
                                             {"frob"},
                                             {},
                                             {"job", "extra"},
                                             {"--timeout", "5", "job"}}) {
    std::vector<std::string> argv{STREAMCTL_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    const outcome o = run_raw(argv);
    EXPECT_EQ(o.code, 2) << o.err;
    EXPECT_NE(o.err.find("streamctl --help"), std::string::npos) << o.err;
  }
}

TEST_F(streamctl, help_lists_the_options_and_commands) {
  const outcome o = run_raw({STREAMCTL_PATH, "--help"});
  EXPECT_EQ(o.code, 0);
  for (const char* word : {"--server", "--token", "--timeout", "--json", "job",
                           "operators", "keygroups", "checkpoints", "savepoint",
                           "cancel", "STREAM_SERVER", "STREAM_REST_TOKEN"}) {
    EXPECT_NE(o.out.find(word), std::string::npos) << word << " in\n" << o.out;
  }
}

}  // namespace
}  // namespace stream
