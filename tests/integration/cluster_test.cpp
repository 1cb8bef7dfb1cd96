// The coordinator and worker roles as separate processes on loopback: the
// exactly_once job (keyed event-time windows and keyed running totals into
// exactly-once file sinks) at parallelism 3 over three workers, compared
// line for line with the local-role run and with a reference computed
// straight from the readings; workers killed with SIGKILL at random moments
// and restarted, as Kubernetes would; the coordinator killed and restarted.

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "cluster_fixture.hpp"
#include "cluster_support.hpp"
#include "exactly_once_reference.hpp"
#include "process.hpp"
#include "scrape.hpp"

namespace stream {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using stream::testing::busy_workers;
using stream::testing::child_process;
using stream::testing::cluster;
using stream::testing::committed_lines;
using stream::testing::count_of;
using stream::testing::exactly_once_expected;
using stream::testing::line_diff;

constexpr std::uint64_t sensors = 40;

double ms_since(clock_type::time_point t) {
  return std::chrono::duration<double, std::milli>(clock_type::now() - t)
      .count();
}

/// The job's options: `readings` at 25,000/s with a checkpoint every 100 ms
/// and immediate restarts (no backoff between chaos kills).
std::vector<std::string> paced_job(std::uint64_t readings) {
  return {"--readings",
          std::to_string(readings),
          "--sensors",
          std::to_string(sensors),
          "--rate",
          "25000",
          "--checkpoint-interval",
          "100ms",
          "--restart-strategy",
          "fixed-delay",
          "--restart-delay",
          "0",
          "--restart-attempts",
          "20"};
}

using worker_map = std::map<std::string, std::unique_ptr<child_process>>;

/// Workers w1..wN with `slots` each.
worker_map start_workers(const cluster& c, const std::vector<std::string>& job,
                         int n, std::uint32_t slots) {
  worker_map workers;
  for (int i = 1; i <= n; ++i) {
    auto id = "w" + std::to_string(i);
    workers[id] = c.start_worker(id, job, slots);
  }
  return workers;
}

class cluster_test : public stream::testing::cluster_fixture {
 protected:
  void expect_exact_output(std::uint64_t readings) const {
    cluster_fixture::expect_exact_output(readings, sensors);
  }
};

TEST_F(cluster_test, three_workers_produce_the_local_role_output) {
  constexpr std::uint64_t readings = 60'000;
  std::vector<std::string> job{"--readings",
                               std::to_string(readings),
                               "--sensors",
                               std::to_string(sensors),
                               "--checkpoint-interval",
                               "100ms"};
  // The local role first, into its own folder.
  auto local_out = c_->dir() + "/local-out";
  {
    auto argv = c_->job_command(job, local_out, c_->dir() + "/local-ckpt");
    child_process local{argv};
    ASSERT_EQ(local.wait(60s), 0) << local.err();
  }
  auto coordinator = c_->start_coordinator(job);
  std::vector<std::unique_ptr<child_process>> workers;
  for (int i = 1; i <= 3; ++i)
    workers.push_back(c_->start_worker("w" + std::to_string(i), job, 1));
  ASSERT_EQ(coordinator->wait(90s), 0) << coordinator->err();
  for (auto& w : workers) EXPECT_EQ(w->wait(20s), 0) << w->err();
  auto err = coordinator->err();
  for (int i = 1; i <= 3; ++i)
    EXPECT_NE(err.find("worker w" + std::to_string(i) + " registered"),
              std::string::npos)
        << err;
  // Every worker hosted a third of the job: slot s on worker s+1.
  for (auto& w : workers)
    EXPECT_EQ(w->err().find("refused"), std::string::npos) << w->err();
  auto local = committed_lines(local_out);
  auto remote = committed_lines(c_->output());
  EXPECT_EQ(remote.size(), local.size());
  EXPECT_TRUE(remote == local) << line_diff(local, remote);
  expect_exact_output(readings);
}

TEST_F(cluster_test, workers_killed_at_random_moments_lose_nothing) {
  // 150,000 readings at 25,000/s: about 6 s of input, longer with the
  // recoveries. Four workers of one slot for a job of three: three times
  // a random worker that hosts tasks is killed at a random moment; the job
  // recovers on the spare and the others, and the killed one is restarted
  // at once (as Kubernetes would) and becomes the next spare.
  constexpr std::uint64_t readings = 150'000;
  auto job = paced_job(readings);
  auto coordinator = c_->start_coordinator(job);
  auto workers = start_workers(*c_, job, 4, 1);
  ASSERT_TRUE(c_->wait_for_checkpoints(2, 20s)) << coordinator->err();

  auto seed = std::random_device{}();
  std::mt19937 rng{seed};
  std::printf("chaos seed %u\n", seed);
  std::vector<double> detections;
  std::vector<double> recoveries;
  for (int kill = 0; kill < 3; ++kill) {
    std::uniform_int_distribution<int> pause_ms{200, 900};
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
    auto busy = busy_workers(*c_);
    ASSERT_FALSE(busy.empty()) << coordinator->err();
    std::uniform_int_distribution<std::size_t> pick{0, busy.size() - 1};
    auto id = busy[pick(rng)];
    auto lost_before = count_of(coordinator->err(), "worker " + id + " lost");
    auto flowing_before = count_of(coordinator->err(), "records flowing again");
    auto killed_at = clock_type::now();
    workers[id]->signal(SIGKILL);
    workers[id]->wait(10s);
    // Detection: the coordinator names the lost worker.
    double detected = -1;
    while (ms_since(killed_at) < 10'000) {
      if (count_of(coordinator->err(), "worker " + id + " lost") >
          lost_before) {
        detected = ms_since(killed_at);
        break;
      }
      std::this_thread::sleep_for(1ms);
    }
    double flowing = -1;
    while (ms_since(killed_at) < 20'000) {
      if (count_of(coordinator->err(), "records flowing again") >
          flowing_before) {
        flowing = ms_since(killed_at);
        break;
      }
      std::this_thread::sleep_for(1ms);
    }
    // Kubernetes restarts the pod: a new process under the same name.
    workers[id] = c_->start_worker(id, job, 1);
    ASSERT_GE(detected, 0) << "kill " << kill << " of " << id
                           << " not detected\n"
                           << coordinator->err();
    ASSERT_GE(flowing, 0) << "no record after kill " << kill << "\n"
                          << coordinator->err();
    std::printf(
        "kill %d of worker %s: detected after %.1f ms, first record after "
        "recovery %.1f ms after the kill\n",
        kill + 1, id.c_str(), detected, flowing);
    detections.push_back(detected);
    recoveries.push_back(flowing);
  }
  ASSERT_EQ(coordinator->wait(120s), 0) << coordinator->err();
  for (auto& [id, w] : workers) EXPECT_EQ(w->wait(20s), 0) << w->err();
  auto err = coordinator->err();
  EXPECT_GE(count_of(err, " lost: "), 3U) << err;
  expect_exact_output(readings);
  for (double d : detections) EXPECT_LT(d, 1000) << "detection under 1 s";
  for (double r : recoveries) EXPECT_LT(r, 3000) << "recovery under 3 s";
}

TEST_F(cluster_test, a_hung_worker_is_detected_by_heartbeats) {
  // SIGSTOP: the process is alive but silent, so only the heartbeat and
  // the peer timeout (defaults 250 ms and 2 s) can tell.
  constexpr std::uint64_t readings = 150'000;
  auto job = paced_job(readings);
  auto coordinator = c_->start_coordinator(job);
  auto workers = start_workers(*c_, job, 4, 1);
  ASSERT_TRUE(c_->wait_for_checkpoints(2, 20s)) << coordinator->err();
  auto busy = busy_workers(*c_);
  ASSERT_FALSE(busy.empty());
  auto id = busy.front();
  auto stopped_at = clock_type::now();
  workers[id]->signal(SIGSTOP);
  ASSERT_TRUE(coordinator->wait_for_err("worker " + id + " lost", 10s))
      << coordinator->err();
  auto detected = ms_since(stopped_at);
  ASSERT_TRUE(coordinator->wait_for_err("records flowing again", 10s))
      << coordinator->err();
  auto flowing = ms_since(stopped_at);
  std::printf(
      "hung worker %s: detected after %.0f ms, first record after recovery "
      "%.0f ms after SIGSTOP\n",
      id.c_str(), detected, flowing);
  auto metrics = stream::testing::http_get(c_->rest_url() + "/metrics");
  EXPECT_EQ(stream::testing::sum_of(metrics, "stream_workers_lost_total",
                                    "job=\"eo\""),
            1);
  EXPECT_EQ(stream::testing::sum_of(metrics, "stream_workers", "job=\"eo\""),
            3);
  auto first_record = stream::testing::sum_of(
      metrics, "stream_last_recovery_first_record_seconds", "job=\"eo\"");
  EXPECT_GT(first_record, 0);
  EXPECT_LT(first_record, 3.0);
  // It never comes back by itself: Kubernetes' liveness probe would kill
  // and restart it.
  workers[id]->signal(SIGKILL);
  workers[id]->wait(10s);
  workers[id] = c_->start_worker(id, job, 1);
  ASSERT_EQ(coordinator->wait(120s), 0) << coordinator->err();
  for (auto& [wid, w] : workers) EXPECT_EQ(w->wait(20s), 0) << w->err();
  expect_exact_output(readings);
  EXPECT_LT(detected, 3000) << "a hung worker is detected within 3 s";
  EXPECT_LT(flowing, 3000 + 1000);
}

TEST_F(cluster_test, a_worker_stopped_gracefully_says_goodbye) {
  constexpr std::uint64_t readings = 100'000;
  auto job = paced_job(readings);
  auto coordinator = c_->start_coordinator(job);
  auto workers = start_workers(*c_, job, 4, 1);
  ASSERT_TRUE(c_->wait_for_checkpoints(2, 20s)) << coordinator->err();
  auto busy = busy_workers(*c_);
  ASSERT_FALSE(busy.empty());
  auto id = busy.front();
  auto stopped_at = clock_type::now();
  workers[id]->signal(SIGTERM);  // as Kubernetes does before removing a pod
  EXPECT_EQ(workers[id]->wait(10s), 0) << workers[id]->err();
  // The README's bound for a worker.
  EXPECT_LT(ms_since(stopped_at), 5000) << workers[id]->err();
  EXPECT_NE(workers[id]->err().find("worker stopped"), std::string::npos)
      << workers[id]->err();
  ASSERT_TRUE(coordinator->wait_for_err("worker " + id + " left", 10s))
      << coordinator->err();
  auto metrics = stream::testing::http_get(c_->rest_url() + "/metrics");
  EXPECT_EQ(stream::testing::sum_of(metrics, "stream_workers_lost_total",
                                    "job=\"eo\""),
            0)
      << "a goodbye is not a loss";
  workers.erase(id);
  ASSERT_EQ(coordinator->wait(120s), 0) << coordinator->err();
  auto err = coordinator->err();
  EXPECT_NE(err.find("worker " + id + " is leaving"), std::string::npos) << err;
  EXPECT_EQ(err.find(" lost"), std::string::npos) << err;
  for (auto& [wid, w] : workers) EXPECT_EQ(w->wait(20s), 0) << w->err();
  expect_exact_output(readings);
}

TEST_F(cluster_test, a_restarted_coordinator_recovers_the_job) {
  constexpr std::uint64_t readings = 120'000;
  std::vector<std::string> job{"--readings",
                               std::to_string(readings),
                               "--sensors",
                               std::to_string(sensors),
                               "--rate",
                               "25000",
                               "--checkpoint-interval",
                               "100ms"};
  auto coordinator = c_->start_coordinator(job);
  std::vector<std::unique_ptr<child_process>> workers;
  for (int i = 1; i <= 3; ++i)
    workers.push_back(c_->start_worker("w" + std::to_string(i), job, 1));
  ASSERT_TRUE(c_->wait_for_checkpoints(3, 20s)) << coordinator->err();
  auto killed_at = clock_type::now();
  coordinator->signal(SIGKILL);
  ASSERT_EQ(coordinator->wait(10s), 128 + SIGKILL);
  auto partial = committed_lines(c_->output()).size();
  ASSERT_LT(partial, exactly_once_expected(readings, sensors).size())
      << "killed mid-stream";
  // Every worker notices and stops its tasks.
  for (auto& w : workers)
    ASSERT_TRUE(w->wait_for_err("lost the coordinator", 10s)) << w->err();
  // The same coordinator again, on the same port, same checkpoint dir.
  auto again = c_->start_coordinator(job);
  ASSERT_TRUE(again->wait_for_err("recovering job", 10s)) << again->err();
  ASSERT_TRUE(again->wait_for_err("records flowing", 20s)) << again->err();
  std::printf(
      "coordinator restart: records flowing %.0f ms after the kill "
      "(a new coordinator process started at once)\n",
      ms_since(killed_at));
  ASSERT_EQ(again->wait(120s), 0) << again->err();
  std::printf("coordinator restart: job done %.0f ms after the kill\n",
              ms_since(killed_at));
  for (auto& w : workers) EXPECT_EQ(w->wait(20s), 0) << w->err();
  for (int i = 1; i <= 3; ++i)
    EXPECT_NE(again->err().find("worker w" + std::to_string(i) + " registered"),
              std::string::npos)
        << again->err();
  expect_exact_output(readings);
}

TEST_F(cluster_test, a_worker_of_another_job_is_refused) {
  std::vector<std::string> job{"--readings", "1000", "--sensors",
                               std::to_string(sensors)};
  auto coordinator = c_->start_coordinator(job);
  // Another binary (another topology) under the same job name.
  child_process odd{{std::string{STREAM_EXAMPLES_DIR} + "/keyed_sum",
                     "--job-name", "eo", "--metrics-address", "", "--role",
                     "worker", "--coordinator",
                     "127.0.0.1:" + std::to_string(c_->cluster_port()),
                     "--worker-id", "odd"}};
  auto* worker = &odd;
  EXPECT_EQ(worker->wait(20s), 2) << worker->err();
  EXPECT_NE(worker->err().find("refused this worker: the worker built a "
                               "different job"),
            std::string::npos)
      << worker->err();
  coordinator->signal(SIGTERM);
  EXPECT_EQ(coordinator->wait(20s), 0) << coordinator->err();
}

/// Runs streamctl against the coordinator; returns its exit code.
int streamctl(const cluster& c, const std::vector<std::string>& args,
              std::string& out, std::string& err) {
  std::vector<std::string> argv{STREAMCTL_PATH, "--server", c.rest_url()};
  argv.insert(argv.end(), args.begin(), args.end());
  return stream::testing::run_command(argv, &out, &err);
}

TEST_F(cluster_test, streamctl_shows_the_job_and_takes_a_savepoint) {
  constexpr std::uint64_t readings = 150'000;
  std::vector<std::string> job{"--readings",
                               std::to_string(readings),
                               "--sensors",
                               std::to_string(sensors),
                               "--rate",
                               "20000",
                               "--checkpoint-interval",
                               "100ms"};
  auto coordinator = c_->start_coordinator(job, {"--rest-token", "s3cret"});
  std::vector<std::unique_ptr<child_process>> workers;
  for (int i = 1; i <= 3; ++i)
    workers.push_back(c_->start_worker("w" + std::to_string(i), job, 1));
  ASSERT_TRUE(c_->wait_for_checkpoints(2, 20s)) << coordinator->err();
  std::string out, err;
  // The token is required: none, or a wrong one, is refused.
  EXPECT_EQ(streamctl(*c_, {"job"}, out, err), 1) << out << err;
  EXPECT_NE(err.find("401"), std::string::npos) << err;
  EXPECT_EQ(streamctl(*c_, {"--token", "wrong", "job"}, out, err), 1);
  EXPECT_NE(err.find("invalid bearer token"), std::string::npos) << err;

  ASSERT_EQ(streamctl(*c_, {"--token", "s3cret", "job"}, out, err), 0) << err;
  EXPECT_NE(out.find("running"), std::string::npos) << out;
  for (const char* w : {"w1", "w2", "w3"})
    EXPECT_NE(out.find(w), std::string::npos) << out;
  ASSERT_EQ(streamctl(*c_, {"--token", "s3cret", "operators"}, out, err), 0)
      << err;
  // Every operator at parallelism 3.
  EXPECT_TRUE(std::regex_search(out, std::regex{"readings.*\\b3\\b"})) << out;
  ASSERT_EQ(streamctl(*c_, {"--token", "s3cret", "keygroups"}, out, err), 0)
      << err;
  // 128 key groups over 3 subtasks, table version 1: 0-42, 43-85, 86-127.
  for (const char* runs : {" 0-42 ", " 43-85 ", " 86-127 ", " v1 "})
    EXPECT_NE(out.find(runs), std::string::npos) << out;
  ASSERT_EQ(streamctl(*c_, {"--token", "s3cret", "checkpoints"}, out, err), 0)
      << err;
  EXPECT_NE(out.find("completed"), std::string::npos) << out;
  // /metrics on the REST port needs no token.
  auto metrics = stream::testing::http_get(c_->rest_url() + "/metrics");
  EXPECT_EQ(stream::testing::sum_of(metrics, "stream_workers", "job=\"eo\""),
            3);
  EXPECT_EQ(stream::testing::sum_of(metrics, "stream_task_slots", "job=\"eo\""),
            3);
  EXPECT_EQ(stream::testing::sum_of(metrics, "stream_workers_lost_total",
                                    "job=\"eo\""),
            0);
  EXPECT_GE(stream::testing::sum_of(
                metrics, "stream_checkpoints_completed_total", "job=\"eo\""),
            2);

  ASSERT_EQ(streamctl(*c_, {"--token", "s3cret", "savepoint"}, out, err), 0)
      << out << err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex{"written to (\\S+)"}))
      << out;
  std::string savepoint = m[1];
  EXPECT_TRUE(fs::exists(savepoint + "/_metadata")) << savepoint;
  // The job dies before its end; the savepoint carries it on, in the local
  // role this time.
  coordinator->signal(SIGKILL);
  coordinator->wait(10s);
  for (auto& w : workers) {
    w->signal(SIGKILL);
    w->wait(10s);
  }
  ASSERT_LT(committed_lines(c_->output()).size(),
            exactly_once_expected(readings, sensors).size());
  auto argv =
      c_->job_command({"--readings", std::to_string(readings), "--sensors",
                       std::to_string(sensors), "--restore", savepoint},
                      c_->output(), c_->checkpoints());
  child_process restored{argv};
  ASSERT_EQ(restored.wait(60s), 0) << restored.err();
  EXPECT_NE(restored.err().find("restoring savepoint"), std::string::npos)
      << restored.err();
  expect_exact_output(readings);
}

}  // namespace
}  // namespace stream
