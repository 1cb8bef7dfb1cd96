#pragma once

// Starts the coordinator and worker roles of an example as child processes
// on loopback, each with its own flags, in one temporary folder.

#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "process.hpp"
#include "scrape.hpp"

namespace stream::testing {

/// Occurrences of `needle` in `text`.
inline std::size_t count_of(const std::string& text,
                            const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + needle.size()))
    ++n;
  return n;
}

/// A TCP port that was free a moment ago (bound to port 0, then closed).
inline std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// One job (an example binary) run as a coordinator and workers. The
/// coordinator keeps its ports across restarts.
class cluster {
 public:
#ifdef STREAM_EXAMPLES_DIR
  /// The exactly_once example as job `eo`.
  cluster() : cluster(std::string{STREAM_EXAMPLES_DIR} + "/exactly_once") {}
#endif
  /// `binary` as job `job_name` at `parallelism`, in a new temporary
  /// folder (removed with the cluster) and on two ports that were free.
  explicit cluster(std::string binary, std::string job_name = "eo",
                   int parallelism = 3)
      : binary_(std::move(binary)),
        job_name_(std::move(job_name)),
        parallelism_(parallelism),
        cluster_port_(free_port()),
        rest_port_(free_port()) {
    char tmpl[] = "/tmp/stream-cluster-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
  }
  ~cluster() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  cluster(const cluster&) = delete;
  cluster& operator=(const cluster&) = delete;

  const std::string& dir() const { return dir_; }
  const std::string& job_name() const { return job_name_; }
  std::string output() const { return dir_ + "/out"; }
  std::string checkpoints() const { return dir_ + "/checkpoints"; }
  std::uint16_t cluster_port() const { return cluster_port_; }
  std::uint16_t rest_port() const { return rest_port_; }
  std::string rest_url() const {
    return "http://127.0.0.1:" + std::to_string(rest_port_);
  }

  /// The example's command line at the cluster's parallelism with `job`
  /// appended; an empty `out` leaves `--output` out (a job without one).
  std::vector<std::string> job_command(const std::vector<std::string>& job,
                                       const std::string& out,
                                       const std::string& checkpoints) const {
    std::vector<std::string> argv{binary_, "--job-name", job_name_};
    if (!out.empty()) argv.insert(argv.end(), {"--output", out});
    argv.insert(argv.end(), {"--parallelism", std::to_string(parallelism_),
                             "--checkpoint-dir", checkpoints, "--state-dir",
                             dir_ + "/state", "--metrics-address", ""});
    argv.insert(argv.end(), job.begin(), job.end());
    return argv;
  }

  /// `command` (a job's command line) with the coordinator role's flags
  /// (this cluster's ports on loopback) and `extra` appended.
  std::vector<std::string> coordinator_command(
      std::vector<std::string> command,
      const std::vector<std::string>& extra = {}) const {
    command.insert(command.end(),
                   {"--role", "coordinator", "--cluster-port",
                    std::to_string(cluster_port_), "--rest-address",
                    "127.0.0.1", "--rest-port", std::to_string(rest_port_)});
    command.insert(command.end(), extra.begin(), extra.end());
    return command;
  }

  /// `command` with the flags of worker `id` offering `slots` and `extra`
  /// appended.
  std::vector<std::string> worker_command(
      std::vector<std::string> command, const std::string& id,
      std::uint32_t slots, const std::vector<std::string>& extra = {}) const {
    command.insert(
        command.end(),
        {"--role", "worker", "--coordinator",
         "127.0.0.1:" + std::to_string(cluster_port_), "--worker-id", id,
         "--slots", std::to_string(slots), "--advertise-host", "127.0.0.1"});
    command.insert(command.end(), extra.begin(), extra.end());
    return command;
  }

  std::unique_ptr<child_process> start_coordinator(
      const std::vector<std::string>& job,
      const std::vector<std::string>& extra = {}) const {
    return std::make_unique<child_process>(
        coordinator_command(job_command(job, output(), checkpoints()), extra));
  }

  std::unique_ptr<child_process> start_worker(
      const std::string& id, const std::vector<std::string>& job,
      std::uint32_t slots, const std::vector<std::string>& extra = {}) const {
    return std::make_unique<child_process>(worker_command(
        job_command(job, output(), checkpoints()), id, slots, extra));
  }

  /// Ids of the complete checkpoints (with `_metadata`) of the job, in
  /// directory order.
  std::vector<long long> checkpoint_ids() const {
    std::vector<long long> ids;
    std::error_code ec;
    auto root = checkpoints() + "/" + job_name_;
    for (const auto& f : std::filesystem::directory_iterator(root, ec)) {
      auto name = f.path().filename().string();
      if (name.starts_with("chk-") &&
          std::filesystem::exists(f.path() / "_metadata", ec))
        ids.push_back(std::atoll(name.c_str() + 4));
    }
    return ids;
  }

  /// Complete checkpoints (with `_metadata`) of the job.
  std::size_t complete_checkpoints() const { return checkpoint_ids().size(); }

  /// Id of the newest complete checkpoint of the job, -1 when none is.
  long long latest_checkpoint() const {
    auto ids = checkpoint_ids();
    return ids.empty() ? -1 : *std::max_element(ids.begin(), ids.end());
  }

  /// Polls until `n` checkpoints are complete; false after `timeout`.
  bool wait_for_checkpoints(std::size_t n,
                            std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (complete_checkpoints() >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

 private:
  std::string binary_;
  std::string job_name_;
  int parallelism_ = 3;
  std::uint16_t cluster_port_;
  std::uint16_t rest_port_;
  std::string dir_;
};

/// Ids of the workers that host tasks, from the coordinator's REST API.
inline std::vector<std::string> busy_workers(const cluster& c) {
  auto job = nlohmann::json::parse(http_get(c.rest_url() + "/api/v1/job"));
  std::vector<std::string> out;
  for (const auto& w : job["workers"]) {
    if (w["used"].get<int>() > 0) out.push_back(w["id"]);
  }
  return out;
}

}  // namespace stream::testing
