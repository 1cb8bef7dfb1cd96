// Stopping and refusing across processes: a coordinator stopped by SIGTERM,
// SIGINT or --stop-after at a random moment and started again (plainly, or
// with --restore) continues exactly; SIGTERM ends a coordinator within its
// documented bound whether it waits for slots, runs, recovers or waits for a
// hung checkpoint; workers started with other job options are refused by
// name and exit 2 while the job goes on exactly.

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
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

namespace stream {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using stream::testing::busy_workers;
using stream::testing::child_process;
using stream::testing::cluster;
using stream::testing::committed_lines;
using stream::testing::exactly_once_expected;

constexpr std::uint64_t sensors = 40;
constexpr std::uint64_t readings = 90'000;

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

/// `readings` at 25,000/s (about 3.6 s) with a checkpoint every 100 ms.
std::vector<std::string> job_options_for_test() {
  return {"--readings",
          std::to_string(readings),
          "--sensors",
          std::to_string(sensors),
          "--rate",
          "25000",
          "--checkpoint-interval",
          "100ms"};
}

class cluster_stop_test : public stream::testing::cluster_fixture {
 protected:
  std::vector<std::unique_ptr<child_process>> start_workers(
      const std::vector<std::string>& job, int n) const {
    std::vector<std::unique_ptr<child_process>> workers;
    for (int i = 1; i <= n; ++i)
      workers.push_back(c_->start_worker("w" + std::to_string(i), job, 1));
    return workers;
  }

  void expect_exact_output() const {
    cluster_fixture::expect_exact_output(readings, sensors);
  }
};

TEST_F(cluster_stop_test, stopped_and_started_again_the_job_is_exact) {
  // Each way of stopping at a random moment, then a restart: a plain
  // coordinator restart resumes from the stop's savepoint by itself; a
  // restart with --restore of the savepoint does so explicitly.
  struct way {
    const char* stop;
    bool plain_restart;
  };
  auto seed = std::random_device{}();
  std::mt19937 rng{seed};
  std::printf("seed %u\n", seed);
  std::uniform_int_distribution<int> moment_ms{300, 2500};
  const auto job = job_options_for_test();
  for (auto w : {way{"SIGTERM", true}, way{"SIGINT", false},
                 way{"--stop-after", true}}) {
    SCOPED_TRACE(w.stop);
    std::filesystem::remove_all(c_->output());
    std::filesystem::remove_all(c_->checkpoints());
    const int at = moment_ms(rng);
    std::vector<std::string> extra;
    if (std::string{w.stop} == "--stop-after")
      extra = {"--stop-after", std::to_string(at) + "ms"};
    auto coordinator = c_->start_coordinator(job, extra);
    auto workers = start_workers(job, 3);
    if (std::string{w.stop} != "--stop-after") {
      ASSERT_TRUE(coordinator->wait_for_err("records flowing", 30s))
          << coordinator->err();
      std::this_thread::sleep_for(std::chrono::milliseconds{at});
      coordinator->signal(std::string{w.stop} == "SIGTERM" ? SIGTERM : SIGINT);
    }
    ASSERT_EQ(coordinator->wait(60s), 0) << coordinator->err();
    for (auto& wk : workers) EXPECT_EQ(wk->wait(20s), 0) << wk->err();
    auto err = coordinator->err();
    std::printf("%s after %d ms: %zu of %zu windows committed\n", w.stop, at,
                committed_lines(c_->output()).size(),
                exactly_once_expected(readings, sensors).size());
    bool finished = err.find("job finished") != std::string::npos;
    std::smatch m;
    std::vector<std::string> again_extra;
    if (!finished) {
      ASSERT_TRUE(
          std::regex_search(err, m, std::regex{"last savepoint: (\\S+)"}))
          << err;
      if (!w.plain_restart) again_extra = {"--restore", m[1].str()};
    }
    auto again = c_->start_coordinator(job, again_extra);
    if (finished) {
      // Stopped just as the input ended: nothing is left, and a restart
      // says so instead of running again.
      EXPECT_EQ(again->wait(30s), 2) << again->err();
      EXPECT_NE(again->err().find("is final"), std::string::npos)
          << again->err();
    } else {
      auto more = start_workers(job, 3);
      ASSERT_EQ(again->wait(90s), 0) << again->err();
      for (auto& wk : more) EXPECT_EQ(wk->wait(20s), 0) << wk->err();
      EXPECT_NE(again->err().find(w.plain_restart
                                      ? "recovering job 'eo' from savepoint"
                                      : "restoring savepoint"),
                std::string::npos)
          << again->err();
    }
    expect_exact_output();
  }
}

TEST_F(cluster_stop_test, workers_with_other_job_options_are_refused) {
  const auto job = job_options_for_test();
  auto coordinator = c_->start_coordinator(job);
  // Each odd worker changes one option that defines the job.
  struct odd {
    std::string option;
    std::string value;
  };
  const std::vector<odd> odds = {
      {"--max-parallelism", "64"},
      {"--sensors", "20"},
      {"--readings", "1000"},
      {"--rate", "1000"},
      {"--parallelism", "2"},
      {"--parallelism-of", "windows=2"},
      {"--job-name", "other"},
      {"--checkpoint-dir", c_->dir() + "/elsewhere"}};
  std::vector<std::unique_ptr<child_process>> refused;
  for (std::size_t i = 0; i < odds.size(); ++i) {
    auto argv = c_->job_command(job, c_->output(), c_->checkpoints());
    bool replaced = false;
    for (std::size_t a = 0; a + 1 < argv.size(); ++a) {
      if (argv[a] == odds[i].option) {
        argv[a + 1] = odds[i].value;
        replaced = true;
      }
    }
    if (!replaced) argv.insert(argv.end(), {odds[i].option, odds[i].value});
    refused.push_back(std::make_unique<child_process>(
        c_->worker_command(argv, "odd" + std::to_string(i), 1)));
  }
  for (std::size_t i = 0; i < odds.size(); ++i) {
    SCOPED_TRACE(odds[i].option);
    EXPECT_EQ(refused[i]->wait(30s), 2) << refused[i]->err();
    EXPECT_NE(refused[i]->err().find("refused this worker: the worker's job "
                                     "options differ from the coordinator's: " +
                                     odds[i].option + " (coordinator: "),
              std::string::npos)
        << refused[i]->err();
  }
  auto workers = start_workers(job, 3);
  ASSERT_EQ(coordinator->wait(90s), 0) << coordinator->err();
  for (auto& w : workers) EXPECT_EQ(w->wait(20s), 0) << w->err();
  auto err = coordinator->err();
  EXPECT_FALSE(std::regex_search(err, std::regex{"worker odd\\d+ registered"}))
      << err;
  for (std::size_t i = 0; i < odds.size(); ++i)
    EXPECT_NE(err.find("refused worker odd" + std::to_string(i) + ": "),
              std::string::npos)
        << err;
  expect_exact_output();
}

/// The bound the README documents: a coordinator ends within
/// --stop-timeout plus 5 s of SIGTERM, whatever it is doing.
constexpr double stop_timeout_s = 2.0;
constexpr double bound_s = stop_timeout_s + 5.0;

TEST_F(cluster_stop_test, sigterm_ends_a_coordinator_in_every_state) {
  auto job = job_options_for_test();
  job.insert(job.end(),
             {"--stop-timeout", "2s", "--restart-strategy", "fixed-delay",
              "--restart-delay", "30s", "--restart-max-delay", "30s"});
  auto stop_and_time = [](child_process& coordinator, int expected_code) {
    auto start = clock_type::now();
    coordinator.signal(SIGTERM);
    EXPECT_EQ(coordinator.wait(std::chrono::seconds{30}), expected_code)
        << coordinator.err();
    return seconds_since(start);
  };
  {
    SCOPED_TRACE("waiting for task slots");
    auto coordinator = c_->start_coordinator(job);
    ASSERT_TRUE(coordinator->wait_for_err("waiting for 3 task slots", 30s))
        << coordinator->err();
    auto s = stop_and_time(*coordinator, 0);
    std::printf("SIGTERM while waiting for slots: ended after %.2f s\n", s);
    EXPECT_LT(s, bound_s) << coordinator->err();
    EXPECT_NE(coordinator->err().find("stopped while waiting for task slots"),
              std::string::npos)
        << coordinator->err();
  }
  {
    SCOPED_TRACE("running");
    auto coordinator = c_->start_coordinator(job);
    auto workers = start_workers(job, 3);
    ASSERT_TRUE(c_->wait_for_checkpoints(2, 30s)) << coordinator->err();
    auto s = stop_and_time(*coordinator, 0);
    std::printf("SIGTERM while running: ended after %.2f s\n", s);
    EXPECT_LT(s, bound_s) << coordinator->err();
    EXPECT_NE(coordinator->err().find("last savepoint: "), std::string::npos)
        << coordinator->err();
    for (auto& w : workers) EXPECT_EQ(w->wait(20s), 0) << w->err();
  }
  std::filesystem::remove_all(c_->checkpoints());
  std::filesystem::remove_all(c_->output());
  {
    SCOPED_TRACE("recovering");
    // A worker killed, the restart 30 s away: SIGTERM ends it now.
    auto coordinator = c_->start_coordinator(job);
    auto workers = start_workers(job, 3);
    ASSERT_TRUE(c_->wait_for_checkpoints(2, 30s)) << coordinator->err();
    workers[0]->signal(SIGKILL);
    ASSERT_TRUE(coordinator->wait_for_err("restart 1", 10s))
        << coordinator->err();
    auto s = stop_and_time(*coordinator, 0);
    std::printf("SIGTERM while recovering: ended after %.2f s\n", s);
    EXPECT_LT(s, bound_s) << coordinator->err();
    EXPECT_NE(coordinator->err().find("stopped while recovering"),
              std::string::npos)
        << coordinator->err();
    for (auto& w : workers) w->wait(20s);
  }
  std::filesystem::remove_all(c_->checkpoints());
  std::filesystem::remove_all(c_->output());
  {
    SCOPED_TRACE("checkpoint hung");
    // A worker frozen and never declared dead (no peer timeout): the
    // running checkpoint, and so the stop's savepoint, never completes.
    auto hung_job = job;
    hung_job.insert(hung_job.end(), {"--peer-timeout", "0"});
    auto coordinator = c_->start_coordinator(hung_job);
    auto workers = start_workers(hung_job, 3);
    ASSERT_TRUE(c_->wait_for_checkpoints(2, 30s)) << coordinator->err();
    auto busy = busy_workers(*c_);
    ASSERT_FALSE(busy.empty());
    auto& frozen = *workers.at(std::stoul(busy.front().substr(1)) - 1);
    frozen.signal(SIGSTOP);
    auto s = stop_and_time(*coordinator, 1);
    std::printf("SIGTERM with a hung checkpoint: ended after %.2f s\n", s);
    EXPECT_LT(s, bound_s) << coordinator->err();
    EXPECT_GE(s, stop_timeout_s - 0.5) << "ended before the stop timeout";
    EXPECT_NE(coordinator->err().find("no savepoint within --stop-timeout"),
              std::string::npos)
        << coordinator->err();
    // A failed job's workers wait for a new coordinator: end them.
    for (auto& w : workers) {
      w->signal(SIGKILL);
      w->wait(20s);
    }
  }
}

TEST_F(cluster_stop_test, a_rescaled_restore_ships_the_planned_tables) {
  // At parallelism 3, stopped with a savepoint; restored with the windows
  // and the keyed process function at 4. The coordinator plans the tables
  // (the fewest key groups move, so subtask 3 gets the tails of the three
  // old ranges) and ships them to the workers, which route by them.
  const auto job = job_options_for_test();
  std::string savepoint;
  {
    auto coordinator = c_->start_coordinator(job);
    auto workers = start_workers(job, 3);
    ASSERT_TRUE(c_->wait_for_checkpoints(2, 30s)) << coordinator->err();
    coordinator->signal(SIGTERM);
    ASSERT_EQ(coordinator->wait(60s), 0) << coordinator->err();
    for (auto& w : workers) EXPECT_EQ(w->wait(20s), 0) << w->err();
    std::smatch m;
    const std::string err = coordinator->err();
    ASSERT_TRUE(std::regex_search(err, m, std::regex{"last savepoint: (\\S+)"}))
        << err;
    savepoint = m[1];
  }
  auto job4 = job;
  job4.insert(job4.end(), {"--parallelism-of", "windows=4", "--parallelism-of",
                           "totals=4"});
  auto coordinator = c_->start_coordinator(job4, {"--restore", savepoint});
  // Four slots: subtask 3 of the keyed operators needs one of its own.
  std::vector<std::unique_ptr<child_process>> workers;
  for (const char* id : {"w1", "w2"})
    workers.push_back(c_->start_worker(id, job4, 2));
  ASSERT_TRUE(coordinator->wait_for_err("records flowing", 30s))
      << coordinator->err();
  EXPECT_NE(coordinator->err().find("'windows' rescaled from 3 to 4 subtasks: "
                                    "32 of 128 key groups change owner"),
            std::string::npos)
      << coordinator->err();
  // The REST answer and streamctl show the planned table.
  auto state = nlohmann::json::parse(
      stream::testing::http_get(c_->rest_url() + "/api/v1/job"));
  EXPECT_EQ(state["plan_version"], 2);
  bool seen = false;
  for (const auto& op : state["key_groups"]) {
    if (op["operator"] != "windows") continue;
    seen = true;
    EXPECT_EQ(op["table_version"], 2);
    ASSERT_EQ(op["subtasks"].size(), 4u);
    EXPECT_EQ(op["subtasks"][3]["key_groups"], "32-42,75-85,118-127");
    EXPECT_EQ(op["subtasks"][3]["runs"],
              nlohmann::json::parse("[[32, 42], [75, 85], [118, 127]]"));
    EXPECT_EQ(op["subtasks"][0]["key_groups"], "0-31");
  }
  EXPECT_TRUE(seen) << state.dump(2);
  std::string out;
  std::string err;
  ASSERT_EQ(stream::testing::run_command(
                {STREAMCTL_PATH, "--server", c_->rest_url(), "keygroups"}, &out,
                &err),
            0)
      << err;
  EXPECT_TRUE(std::regex_search(
      out, std::regex{"windows +v2 +3 +32-42,75-85,118-127 +32 "}))
      << out;
  ASSERT_EQ(coordinator->wait(90s), 0) << coordinator->err();
  for (auto& w : workers) EXPECT_EQ(w->wait(20s), 0) << w->err();
  expect_exact_output();
}

TEST_F(cluster_stop_test,
       recovery_with_another_max_parallelism_is_refused_naming_both) {
  const auto job = job_options_for_test();
  {
    auto coordinator = c_->start_coordinator(job);
    auto workers = start_workers(job, 3);
    ASSERT_TRUE(c_->wait_for_checkpoints(2, 30s)) << coordinator->err();
    coordinator->signal(SIGKILL);
    for (auto& w : workers) w->signal(SIGKILL);
    coordinator->wait(10s);
  }
  // Restarted on its own with 64 key groups, it would misplace every key
  // group of the checkpoint's 128: refused before anything is deployed.
  auto job64 = job;
  job64.insert(job64.end(), {"--max-parallelism", "64"});
  auto restarted = c_->start_coordinator(job64);
  EXPECT_EQ(restarted->wait(30s), 2) << restarted->err();
  EXPECT_NE(restarted->err().find("cannot recover job 'eo': checkpoint '" +
                                  c_->checkpoints() + "/eo/chk-"),
            std::string::npos)
      << restarted->err();
  EXPECT_NE(restarted->err().find("was taken with 128 key groups "
                                  "(--max-parallelism), this job has 64"),
            std::string::npos)
      << restarted->err();
}

TEST_F(cluster_stop_test, a_second_coordinator_on_the_job_folder_is_refused) {
  const auto job = job_options_for_test();
  // No worker: the first waits for slots, holding the job folder's lock.
  auto first = c_->start_coordinator(job);
  ASSERT_TRUE(first->wait_for_err("waiting for 3 task slots", 30s))
      << first->err();
  const std::string holder = "pid " + std::to_string(first->pid()) + " on ";
  // Its own ports, so that only the folder is shared.
  auto argv = c_->job_command(job, c_->output(), c_->checkpoints());
  argv.insert(argv.end(), {"--role", "coordinator", "--cluster-port",
                           std::to_string(stream::testing::free_port()),
                           "--rest-address", ""});
  child_process second{argv};
  EXPECT_EQ(second.wait(30s), 2) << second.err();
  EXPECT_NE(
      second.err().find("is in use by another run of this job: " + holder),
      std::string::npos)
      << second.err();
  EXPECT_NE(second.err().find("(coordinator, since "), std::string::npos)
      << second.err();
  first->signal(SIGTERM);
  EXPECT_EQ(first->wait(30s), 0) << first->err();
}

TEST_F(cluster_stop_test, sigterm_ends_a_worker_waiting_for_its_coordinator) {
  auto worker = c_->start_worker("lonely", job_options_for_test(), 1);
  ASSERT_TRUE(worker->wait_for_err("cannot connect to the coordinator", 30s))
      << worker->err();
  auto start = clock_type::now();
  worker->signal(SIGTERM);
  EXPECT_EQ(worker->wait(30s), 0) << worker->err();
  EXPECT_LT(seconds_since(start), 5.0) << worker->err();
}

}  // namespace
}  // namespace stream
