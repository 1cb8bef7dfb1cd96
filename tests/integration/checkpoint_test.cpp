// Exactly-once across processes: the exactly_once example killed with
// SIGKILL mid-stream and restored from its newest checkpoint, stopped with a
// savepoint (SIGTERM, SIGINT, --stop-after at random moments) and restored
// from it, a drained checkpoint refused unless asked, a savepoint taken on
// SIGUSR1, damaged checkpoints (flipped byte, truncated file, missing metadata)
// skipped on restore, a checkpoint of another job refused, and failures
// injected with
// --fail-at. Every run's committed output is compared line for line with a
// reference computed straight from the readings.

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "exactly_once_reference.hpp"
#include "process.hpp"

namespace stream {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using stream::testing::child_process;
using stream::testing::committed_lines;
using stream::testing::exactly_once_expected;
using stream::testing::line_diff;

const std::string examples = STREAM_EXAMPLES_DIR;
constexpr std::uint64_t readings = 60'000;
constexpr std::uint64_t sensors = 40;

class checkpoint_process_test : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/stream-ckpt-it-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string output() const { return dir_ + "/out"; }
  std::string checkpoints() const { return dir_ + "/checkpoints"; }
  std::string job_root(const std::string& job = "eo") const {
    return checkpoints() + "/" + job;
  }

  /// The exactly_once example at parallelism 2 on the backend under test.
  std::vector<std::string> command(std::vector<std::string> extra,
                                   const std::string& job = "eo") const {
    std::vector<std::string> argv{examples + "/exactly_once",
                                  "--job-name",
                                  job,
                                  "--readings",
                                  std::to_string(readings),
                                  "--sensors",
                                  std::to_string(sensors),
                                  "--output",
                                  output(),
                                  "--parallelism",
                                  "2",
                                  "--checkpoint-dir",
                                  checkpoints(),
                                  "--state-backend",
                                  GetParam(),
                                  "--state-dir",
                                  dir_ + "/state",
                                  "--metrics-address",
                                  ""};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
  }

  /// `argv` with the value after `flag` replaced by `value` (the flag must
  /// be there: a repeated flag is a usage error).
  static std::vector<std::string> with_value(std::vector<std::string> argv,
                                             const std::string& flag,
                                             const std::string& value) {
    auto at = std::find(argv.begin(), argv.end(), flag);
    EXPECT_TRUE(at != argv.end() && at + 1 != argv.end()) << flag;
    if (at != argv.end() && at + 1 != argv.end()) *(at + 1) = value;
    return argv;
  }

  /// Ids of the complete checkpoints (with `_metadata`) of `job`, ascending.
  std::vector<std::int64_t> complete(const std::string& job = "eo") const {
    std::vector<std::int64_t> ids;
    std::error_code ec;
    if (!fs::exists(job_root(job), ec)) return ids;
    for (const auto& f : fs::directory_iterator(job_root(job))) {
      auto name = f.path().filename().string();
      if (name.starts_with("chk-") && fs::exists(f.path() / "_metadata"))
        ids.push_back(std::stoll(name.substr(4)));
    }
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  /// Starts the job throttled to 20,000 readings/s (3 s in all) with a
  /// checkpoint every 100 ms and SIGKILLs it once `wanted` checkpoints
  /// completed, mid-stream.
  void run_and_kill(std::size_t wanted) {
    child_process job{
        command({"--rate", "20000", "--checkpoint-interval", "100ms"})};
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (complete().size() < wanted &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    ASSERT_GE(complete().size(), wanted) << job.err();
    job.signal(SIGKILL);
    ASSERT_EQ(job.wait(10s), 128 + SIGKILL);
    auto partial = committed_lines(output()).size();
    ASSERT_LT(partial, exactly_once_expected(readings, sensors).size())
        << "the job was killed mid-stream";
  }

  /// Runs to the end; returns stderr. Fails the test on a non-zero exit.
  std::string run_to_end(std::vector<std::string> extra) {
    child_process job{command(std::move(extra))};
    auto code = job.wait(60s);
    EXPECT_EQ(code, 0) << job.err();
    return job.err();
  }

  void expect_exact_output() const {
    auto expected = exactly_once_expected(readings, sensors);
    auto actual = committed_lines(output());
    EXPECT_EQ(actual.size(), expected.size());
    EXPECT_TRUE(actual == expected) << line_diff(expected, actual);
  }

  /// The largest state file of checkpoint `id`.
  fs::path largest_state_file(std::int64_t id) const {
    fs::path largest;
    std::uintmax_t size = 0;
    for (const auto& f :
         fs::directory_iterator(job_root() + "/chk-" + std::to_string(id))) {
      if (f.path().extension() == ".state" && f.file_size() > size) {
        size = f.file_size();
        largest = f.path();
      }
    }
    return largest;
  }

  std::string dir_;
};

TEST_P(checkpoint_process_test,
       sigkill_then_restore_equals_an_uninterrupted_run) {
  run_and_kill(3);
  auto newest = complete().back();
  auto err = run_to_end({"--restore", job_root()});
  EXPECT_NE(err.find("restoring checkpoint " + std::to_string(newest)),
            std::string::npos)
      << err;
  expect_exact_output();
}

TEST_P(checkpoint_process_test, stop_with_savepoint_then_restore) {
  // A stop takes a savepoint without draining: the default.
  auto err = run_to_end({"--rate", "20000", "--stop-after", "1500ms"});
  std::smatch m;
  ASSERT_TRUE(std::regex_search(err, m, std::regex{"last savepoint: (\\S+)"}))
      << err;
  std::string savepoint = m[1];
  EXPECT_TRUE(fs::exists(savepoint + "/_metadata"));
  ASSERT_LT(committed_lines(output()).size(),
            exactly_once_expected(readings, sensors).size())
      << "stopped before the end of input";
  err = run_to_end({"--restore", savepoint});
  EXPECT_NE(err.find("restoring savepoint"), std::string::npos) << err;
  expect_exact_output();
}

TEST_P(checkpoint_process_test, stops_at_random_moments_then_restores_exactly) {
  // SIGTERM, SIGINT and --stop-after, each at a random moment, each
  // followed by a --restore of the job's folder: the output equals the
  // reference, or (stopped just as the input ended) the restore is refused
  // because there is nothing left.
  std::random_device rd;
  const auto seed = rd();
  std::printf("seed %u\n", seed);
  std::mt19937 rng{seed};
  std::uniform_int_distribution<int> moment_ms{200, 2000};
  for (const std::string how : {"SIGTERM", "SIGINT", "--stop-after"}) {
    SCOPED_TRACE(how);
    fs::remove_all(output());
    fs::remove_all(checkpoints());
    const int at = moment_ms(rng);
    std::vector<std::string> extra{"--rate", "20000", "--checkpoint-interval",
                                   "100ms"};
    if (how == "--stop-after")
      extra.insert(extra.end(), {"--stop-after", std::to_string(at) + "ms"});
    child_process job{command(extra)};
    if (how != "--stop-after") {
      ASSERT_TRUE(job.wait_for_err("records flowing", 20s)) << job.err();
      std::this_thread::sleep_for(std::chrono::milliseconds{at});
      job.signal(how == "SIGTERM" ? SIGTERM : SIGINT);
    }
    ASSERT_EQ(job.wait(60s), 0) << job.err();
    std::printf("%s after %d ms: %zu of %zu windows committed\n", how.c_str(),
                at, committed_lines(output()).size(),
                exactly_once_expected(readings, sensors).size());
    child_process again{command({"--restore", job_root()})};
    int rc = again.wait(60s);
    if (job.err().find("job finished") != std::string::npos) {
      // The input ended before the stop: all of it is out already.
      EXPECT_EQ(rc, 2) << again.err();
      EXPECT_NE(again.err().find("is final"), std::string::npos) << again.err();
    } else {
      ASSERT_NE(job.err().find("last savepoint: "), std::string::npos)
          << job.err();
      EXPECT_EQ(rc, 0) << again.err();
      EXPECT_NE(again.err().find("restoring savepoint"), std::string::npos)
          << again.err();
    }
    expect_exact_output();
  }
}

TEST_P(checkpoint_process_test,
       a_drained_checkpoint_is_resumed_only_on_request) {
  auto err = run_to_end({"--rate", "20000", "--checkpoint-interval", "100ms",
                         "--drain", "--stop-after", "1s"});
  ASSERT_NE(err.find("job stopped"), std::string::npos) << err;
  auto drained = committed_lines(output()).size();
  ASSERT_LT(drained, exactly_once_expected(readings, sensors).size())
      << "the drain ended the input early";
  // Refused, saying what happened and what to do.
  child_process refused{command({"--restore", job_root()})};
  EXPECT_EQ(refused.wait(60s), 2) << refused.err();
  for (const char* part :
       {"was taken after a drain", "dropped as late", "--restore-final"})
    EXPECT_NE(refused.err().find(part), std::string::npos)
        << part << ": " << refused.err();
  EXPECT_EQ(committed_lines(output()).size(), drained) << "nothing ran";
  // Forced: it runs, and says loudly what it does.
  auto forced = run_to_end({"--restore", job_root(), "--restore-final"});
  EXPECT_NE(forced.find("warning: --restore-final: checkpoint"),
            std::string::npos)
      << forced;
}

TEST_P(checkpoint_process_test, savepoint_on_sigusr1_survives_later_output) {
  // Checkpoints go on committing after the savepoint; restoring the older
  // savepoint takes that output back and produces it again.
  std::string savepoint;
  {
    child_process job{
        command({"--rate", "20000", "--checkpoint-interval", "100ms"})};
    std::this_thread::sleep_for(800ms);
    job.signal(SIGUSR1);
    ASSERT_TRUE(job.wait_for_err("written to ", 10s)) << job.err();
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (complete().size() < 2 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
    std::this_thread::sleep_for(300ms);  // commits after the savepoint
    job.signal(SIGKILL);
    job.wait(10s);
    std::smatch m;
    auto err = job.err();
    ASSERT_TRUE(std::regex_search(
        err, m, std::regex{"savepoint \\d+ written to (\\S+)"}))
        << err;
    savepoint = m[1];
  }
  run_to_end({"--restore", savepoint});
  expect_exact_output();
}

TEST_P(checkpoint_process_test, a_damaged_newest_checkpoint_is_skipped) {
  struct damage {
    const char* what;
    const char* message;  ///< What the skip line must say.
  };
  for (auto d :
       {damage{"flip", "checksum mismatch"}, damage{"truncate", "is truncated"},
        damage{"metadata", "no _metadata"}}) {
    SCOPED_TRACE(d.what);
    fs::remove_all(output());
    fs::remove_all(checkpoints());
    run_and_kill(3);
    auto newest = complete().back();
    auto folder = job_root() + "/chk-" + std::to_string(newest);
    auto file = largest_state_file(newest);
    auto size = fs::file_size(file);
    if (std::string{d.what} == "flip") {
      std::fstream f{file, std::ios::in | std::ios::out | std::ios::binary};
      f.seekg(static_cast<std::streamoff>(size / 2));
      char c = 0;
      f.get(c);
      f.seekp(static_cast<std::streamoff>(size / 2));
      f.put(static_cast<char>(c ^ 1));
    } else if (std::string{d.what} == "truncate") {
      fs::resize_file(file, size / 2);
    } else {
      fs::remove(folder + "/_metadata");
    }
    // Asked for by name, the damaged checkpoint is refused...
    child_process named{command({"--restore", folder})};
    EXPECT_EQ(named.wait(60s), 1) << named.err();
    EXPECT_NE(named.err().find(d.message), std::string::npos) << named.err();
    // ...and restoring the job's checkpoints falls back to the previous one.
    auto err = run_to_end({"--restore", job_root()});
    if (std::string{d.what} != "metadata") {
      EXPECT_NE(err.find("skipped checkpoint " + std::to_string(newest)),
                std::string::npos)
          << err;
      EXPECT_NE(err.find(d.message), std::string::npos) << err;
    }
    EXPECT_NE(err.find("restoring checkpoint " + std::to_string(newest - 1)),
              std::string::npos)
        << err;
    expect_exact_output();
  }
}

TEST_P(checkpoint_process_test, a_checkpoint_of_another_job_is_refused) {
  run_to_end({"--checkpoint-interval", "50ms"});
  ASSERT_FALSE(complete().empty());
  auto folder = job_root() + "/chk-" + std::to_string(complete().back());
  // A folder, and the job's folder of folders: both exit 2.
  for (const auto& path : {folder, job_root()}) {
    child_process other{command({"--restore", path}, "other")};
    EXPECT_EQ(other.wait(60s), 2) << other.err();
    EXPECT_NE(other.err().find("belongs to job 'eo', not to job 'other'"),
              std::string::npos)
        << other.err();
  }
}

TEST_P(checkpoint_process_test, a_second_run_on_the_job_folder_is_refused) {
  child_process first{
      command({"--rate", "20000", "--checkpoint-interval", "100ms"})};
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (complete().empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  ASSERT_FALSE(complete().empty()) << first.err();
  // The same job on the same folder, and another output: refused at start,
  // before it reads or writes anything.
  child_process second{with_value(command({"--checkpoint-interval", "100ms"}),
                                  "--output", dir_ + "/second-out")};
  EXPECT_EQ(second.wait(30s), 2) << second.err();
  EXPECT_NE(second.err().find("is in use by another run of this job: pid " +
                              std::to_string(first.pid()) + " on "),
            std::string::npos)
      << second.err();
  EXPECT_NE(second.err().find("(local role, since "), std::string::npos)
      << second.err();
  EXPECT_FALSE(fs::exists(dir_ + "/second-out"));
  // The first run went on undisturbed.
  EXPECT_EQ(first.wait(60s), 0) << first.err();
  expect_exact_output();
}

TEST_P(checkpoint_process_test, rescales_its_keyed_operators_by_restore) {
  // The windows and the keyed process function go 2 -> 3 -> 1 -> 3 -> 4,
  // each step stopped with a savepoint and restored from it; sources and
  // sinks keep parallelism 2. The planner moves the fewest key groups, so
  // from 3 on the tables are no longer contiguous ranges.
  auto at = [](int p) {
    return std::vector<std::string>{
        "--parallelism-of", "windows=" + std::to_string(p), "--parallelism-of",
        "totals=" + std::to_string(p)};
  };
  // Key groups that change owner, of 128, from the planner (computed by
  // key_group_planner_test): 2 -> 3: 42, 3 -> 1: 85, 1 -> 3: 85, 3 -> 4: 32.
  struct step {
    int from;
    int to;
    int moved;
  };
  const std::vector<step> steps{{2, 3, 42}, {3, 1, 85}, {1, 3, 85}, {3, 4, 32}};
  auto first = at(2);
  first.insert(first.end(), {"--rate", "20000", "--stop-after", "500ms"});
  auto err = run_to_end(first);
  for (const step& s : steps) {
    SCOPED_TRACE(std::to_string(s.from) + " -> " + std::to_string(s.to));
    std::smatch m;
    ASSERT_TRUE(std::regex_search(err, m, std::regex{"last savepoint: (\\S+)"}))
        << err;
    const std::string savepoint = m[1];
    auto extra = at(s.to);
    extra.insert(extra.end(), {"--restore", savepoint});
    const bool last = s.to == 4;
    if (!last)
      extra.insert(extra.end(), {"--rate", "20000", "--stop-after", "500ms"});
    err = run_to_end(extra);
    for (const char* op : {"windows", "totals"}) {
      EXPECT_NE(
          err.find("'" + std::string{op} + "' rescaled from " +
                   std::to_string(s.from) + " to " + std::to_string(s.to) +
                   " subtasks: " + std::to_string(s.moved) +
                   " of 128 key groups change owner (--rescale-plan "
                   "minimal"),
          std::string::npos)
          << err;
    }
    if (!last) {
      ASSERT_LT(committed_lines(output()).size(),
                exactly_once_expected(readings, sensors).size())
          << "the step stopped before the end of input";
    }
  }
  expect_exact_output();
}

TEST_P(checkpoint_process_test, bad_operator_parallelism_exits_2) {
  struct bad {
    std::vector<std::string> flags;
    std::string says;
  };
  for (const bad& b :
       {bad{{"--parallelism-of", "nosuch=2"},
            "--parallelism-of names 'nosuch', which is not an operator of "
            "this job (its operators: readings, faults, timestamps, windows"},
        bad{{"--parallelism-of", "windows=200"},
            "--parallelism-of windows=200: must be in 1..--max-parallelism "
            "(128)"},
        bad{{"--parallelism-of", "windows=0"},
            "invalid value '0' for --parallelism-of windows"},
        bad{{"--parallelism-of", "windows"}, "expected NAME=N"},
        bad{{"--parallelism-of", "windows=2", "--parallelism-of", "windows=3"},
            "--parallelism-of names 'windows' twice"}}) {
    child_process job{command(b.flags)};
    EXPECT_EQ(job.wait(30s), 2) << job.err();
    EXPECT_NE(job.err().find(b.says), std::string::npos) << job.err();
  }
}

TEST_P(checkpoint_process_test, a_format_1_savepoint_restores) {
  // Written by the version before key groups became sets (state files
  // version 1, metadata format 1); see tests/fixtures/v1_savepoint.
  const fs::path fixture =
      fs::path{STREAM_SOURCE_DIR} / "tests/fixtures/v1_savepoint";
  fs::copy(fixture / "checkpoints", checkpoints(), fs::copy_options::recursive);
  fs::copy(fixture / "out", output(), fs::copy_options::recursive);
  const std::string savepoint = job_root() + "/sp-6";
  auto meta = nlohmann::json::parse(std::ifstream{savepoint + "/_metadata"},
                                    nullptr, false);
  ASSERT_EQ(meta.value("format", 0), 1) << "the fixture is not format 1";
  // The fixture's job: 4000 readings of 6 sensors at parallelism 2.
  child_process job{with_value(
      with_value(command({"--restore", savepoint}), "--readings", "4000"),
      "--sensors", "6")};
  EXPECT_EQ(job.wait(60s), 0) << job.err();
  EXPECT_NE(job.err().find("restoring savepoint 6 from"), std::string::npos)
      << job.err();
  auto expected = exactly_once_expected(4000, 6);
  auto actual = committed_lines(output());
  EXPECT_EQ(actual.size(), expected.size());
  EXPECT_TRUE(actual == expected) << line_diff(expected, actual);
}

TEST_P(checkpoint_process_test, injected_failures_recover_exactly_once) {
  auto err = run_to_end({"--rate", "40000", "--checkpoint-interval", "50ms",
                         "--fail-at", "5000,20000,41000"});
  EXPECT_NE(err.find("3 restarts after failures"), std::string::npos) << err;
  expect_exact_output();
  // Without restarts the first failure fails the job.
  fs::remove_all(output());
  child_process strict{command({"--checkpoint-interval", "50ms", "--fail-at",
                                "5000", "--restart-strategy", "none"})};
  EXPECT_EQ(strict.wait(60s), 1);
  EXPECT_NE(strict.err().find("injected failure at reading 5000"),
            std::string::npos)
      << strict.err();
  EXPECT_NE(strict.err().find("restart strategy none"), std::string::npos)
      << strict.err();
}

INSTANTIATE_TEST_SUITE_P(backends, checkpoint_process_test,
                         ::testing::Values("memory", "leveldb"));

}  // namespace
}  // namespace stream
