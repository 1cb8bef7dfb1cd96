// Checkpoints and failover in one process: the exactly_once job (event-time
// windows, keyed value state and timers, exactly-once file sinks) with
// failures injected at random readings, during a checkpoint, with a damaged
// newest checkpoint, with a checkpoint that verifies but cannot load, and
// with a checkpoint that times out. Its committed
// output is compared line for line with a reference computed straight from
// the readings. Also: a failed commit of the final checkpoint fails the job.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "backend_fixture.hpp"
#include "exactly_once.hpp"
#include "exactly_once_reference.hpp"
#include "stream/checkpoint/storage.hpp"
#include "stream/metrics.hpp"
#include "stream/run.hpp"

namespace stream {
namespace {

namespace fs = std::filesystem;
using stream::testing::committed_lines;
using stream::testing::exactly_once_expected;
using stream::testing::line_diff;

constexpr std::uint64_t sensors = 40;

class checkpoint_test : public stream::testing::backend_test {
 protected:
  /// Parallelism 2 (so window and process subtasks align barriers from two
  /// source subtasks), a checkpoint every 20 ms, quick restarts.
  job_options options(const std::string& job) const {
    auto o = backend_options(256);
    o.job_name = job;
    o.checkpoint_interval = std::chrono::milliseconds{20};
    o.checkpoint_dir = dir_ + "/checkpoints";
    o.restart_strategy = "fixed-delay";
    o.restart_attempts = 20;
    o.restart_delay = std::chrono::milliseconds{5};
    return o;
  }

  std::string output() const { return dir_ + "/out"; }

  /// Runs the job over `readings` readings at `rate` per second.
  result<job_report> run(const job_options& o, std::uint64_t readings,
                         double rate, exactly_once::failure_fn fail) {
    environment env{o};
    generator_options gen;
    gen.count = readings;
    gen.rate = rate;
    exactly_once::build(env, sensors, gen, std::move(fail), output());
    execution_hooks hooks;
    hooks.registry = registry_;
    return execute(env, hooks);
  }

  /// The value of series `name{labels}` (counter or gauge), -1 if absent.
  double counter_value(const std::string& name,
                       const metric_labels& labels) const {
    for (const auto& f : registry_->snapshot()) {
      if (f.name != name) continue;
      for (const auto& s : f.samples) {
        if (s.labels == labels) return s.value;
      }
    }
    return -1;
  }

  std::shared_ptr<metrics_registry> registry_ =
      std::make_shared<metrics_registry>();
};

TEST_P(checkpoint_test, failures_at_random_readings_lose_and_repeat_nothing) {
  constexpr std::uint64_t readings = 60'000;
  auto o = options("faults");
  // Three failures at random readings, and one at the first reading after
  // 20,000 that finds a checkpoint in progress.
  const auto seed = std::random_device{}();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng{seed};
  // Even readings only: they all come from source subtask 0, so no two
  // failures can strike one attempt (the second would go unnoticed in the
  // restart the first caused, and the restart count would be 3).
  std::set<std::uint64_t> targets;
  while (targets.size() < 3)
    targets.insert(std::uniform_int_distribution<std::uint64_t>{
        500, readings / 2 - 500}(rng)*2);
  auto& in_progress = registry_->get_gauge(
      "stream_checkpoint_in_progress",
      "1 while a checkpoint or savepoint is running.", {{"job", "faults"}});
  std::mutex mtx;
  std::atomic<bool> during_checkpoint{false};
  auto fail = [&](std::uint64_t seq) {
    std::lock_guard<std::mutex> guard{mtx};
    if (targets.erase(seq) > 0) return true;
    if (seq >= 20'000 && seq % 2 == 0 && !during_checkpoint &&
        in_progress.value() == 1) {
      during_checkpoint = true;
      return true;
    }
    return false;
  };
  auto report = run(o, readings, 30'000, fail);
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_TRUE(targets.empty()) << "every injected failure happened";
  EXPECT_TRUE(during_checkpoint) << "a failure hit a running checkpoint";
  EXPECT_EQ(report->restarts, 4u);
  EXPECT_EQ(counter_value("stream_restarts_total", {{"job", "faults"}}), 4);
  EXPECT_GE(
      counter_value("stream_checkpoints_completed_total", {{"job", "faults"}}),
      4);
  // The last completed checkpoint's figures were measured, not left at 0.
  metric_labels job{{"job", "faults"}};
  EXPECT_GT(counter_value("stream_checkpoint_duration_seconds", job), 0);
  EXPECT_GT(counter_value("stream_checkpoint_size_bytes", job), 0);
  EXPECT_GT(counter_value("stream_checkpoint_sync_seconds", job), 0);
  EXPECT_GT(counter_value("stream_checkpoint_async_seconds", job), 0);
  EXPECT_GT(counter_value("stream_last_recovery_seconds", job), 0);
  EXPECT_GT(counter_value("stream_recovery_seconds_total", job),
            counter_value("stream_last_recovery_seconds", job));
  auto expected = exactly_once_expected(readings, sensors);
  auto actual = committed_lines(output());
  EXPECT_EQ(actual.size(), expected.size());
  EXPECT_TRUE(actual == expected) << line_diff(expected, actual);
}

TEST_P(checkpoint_test, failover_falls_back_past_a_damaged_checkpoint) {
  constexpr std::uint64_t readings = 40'000;
  auto o = options("damaged");
  o.checkpoints_retained = 3;
  auto& last_id =
      registry_->get_gauge("stream_checkpoint_last_completed_id",
                           "Id of the last completed checkpoint or savepoint.",
                           {{"job", "damaged"}});
  std::mutex mtx;
  std::int64_t damaged = 0;
  auto root = fs::path{o.checkpoint_dir} / "damaged";
  // Once three checkpoints completed: flip a byte in a state file of the
  // newest, then fail.
  auto& in_progress = registry_->get_gauge(
      "stream_checkpoint_in_progress",
      "1 while a checkpoint or savepoint is running.", {{"job", "damaged"}});
  // The failure comes at a moment when no checkpoint is in flight (none
  // running, no folder newer than the last completed one): the source that
  // fails here never sends the barrier of a later one, so the damaged
  // checkpoint stays the newest complete one.
  auto quiet = [&] {
    if (in_progress.value() != 0) return false;
    const auto last = last_id.value();
    for (const auto& f : fs::directory_iterator(root)) {
      const auto name = f.path().filename().string();
      if (name.starts_with("chk-") && std::stoll(name.substr(4)) > last)
        return false;
    }
    return true;
  };
  auto fail = [&](std::uint64_t seq) {
    std::lock_guard<std::mutex> guard{mtx};
    if (damaged != 0 || seq < 10'000 || last_id.value() < 3 || !quiet())
      return false;
    damaged = last_id.value();
    auto folder = root / ("chk-" + std::to_string(damaged));
    fs::path largest;
    std::uintmax_t size = 0;
    for (const auto& f : fs::directory_iterator(folder)) {
      if (f.path().extension() == ".state" && f.file_size() > size) {
        size = f.file_size();
        largest = f.path();
      }
    }
    std::fstream file{largest, std::ios::in | std::ios::out | std::ios::binary};
    file.seekp(static_cast<std::streamoff>(size / 2));
    char c = 0;
    file.seekg(static_cast<std::streamoff>(size / 2));
    file.get(c);
    file.seekp(static_cast<std::streamoff>(size / 2));
    file.put(static_cast<char>(c ^ 0x5a));
    return true;
  };
  ::testing::internal::CaptureStderr();
  auto report = run(o, readings, 20'000, fail);
  auto err = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(report.ok()) << report.error().to_string() << "\n" << err;
  ASSERT_NE(damaged, 0);
  EXPECT_NE(err.find("skipped checkpoint " + std::to_string(damaged) +
                     " for recovery"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("checksum mismatch"), std::string::npos) << err;
  EXPECT_NE(err.find("restoring checkpoint " + std::to_string(damaged - 1)),
            std::string::npos)
      << err;
  auto expected = exactly_once_expected(readings, sensors);
  auto actual = committed_lines(output());
  EXPECT_TRUE(actual == expected) << line_diff(expected, actual);
}

/// Rewrites every source state file of the checkpoint in `folder` with an
/// operator state that does not decode, with sizes and checksums that
/// match: the checkpoint verifies, but no source can load it.
void make_unloadable(const fs::path& folder) {
  auto meta = checkpoint::read_metadata(folder.string());
  ASSERT_TRUE(meta.ok()) << meta.error().to_string();
  bool changed = false;
  for (auto& op : meta->operators) {
    if (op.name != "readings") continue;
    for (auto& h : op.subtasks) {
      auto snap = checkpoint::read_state_file(folder.string(), h,
                                              key_group_set::of({0, 32768}));
      ASSERT_TRUE(snap.ok()) << snap.error().to_string();
      snap->operator_state = "\xff\xff\xff not a position";
      std::filesystem::remove(folder / h.file);
      auto written =
          checkpoint::write_state_file(folder.string(), *snap, h.key_groups);
      ASSERT_TRUE(written.ok()) << written.error().to_string();
      h = *written;
      changed = true;
    }
  }
  ASSERT_TRUE(changed) << "no source state in " << folder;
  ASSERT_TRUE(checkpoint::write_metadata(folder.string(), *meta).ok());
  ASSERT_TRUE(checkpoint::verify(folder.string(), *meta).ok());
}

/// A stateful sink whose state of one checkpoint cannot load (as a state
/// that does not decode), and that throws once, after `fail_after`
/// checkpoints completed, to make the job recover from that checkpoint.
class unloadable_sink final : public runtime::consumer<std::uint64_t> {
 public:
  struct shared {
    std::atomic<std::int64_t> completed{0};
    std::atomic<std::int64_t> bad{0};  ///< The checkpoint that cannot load.
    std::atomic<int> restores_of_bad{0};
  };
  explicit unloadable_sink(shared& s) : s_(s) {}
  bool stateful() const override { return true; }
  void push(std::vector<std::uint64_t>&) override {
    std::int64_t none = 0;
    if (s_.completed.load() >= 3 &&
        s_.bad.compare_exchange_strong(none, s_.completed.load()))
      throw std::runtime_error("injected failure after checkpoint " +
                               std::to_string(s_.bad.load()));
  }
  void flush() override {}
  void finish() override {}
  void on_control(const runtime::control_event&) override {}
  void notify_checkpoint_complete(std::int64_t id) override {
    if (id > s_.completed.load()) s_.completed = id;
  }
  status restore_state(const checkpoint::restored_state& in) override {
    if (in.checkpoint_id != s_.bad.load()) return {};
    ++s_.restores_of_bad;
    return status{errc::malformed_data, "the sink's state does not decode"};
  }

 private:
  shared& s_;
};

TEST_P(checkpoint_test, an_unloadable_checkpoint_falls_back_at_once) {
  // Its files verify, but a state in it cannot load: trying it again
  // cannot help, so recovery falls back to the checkpoint before it at
  // once, without the restart strategy's delay, and is not tried again.
  auto o = options("unloadable");
  o.parallelism = 1;
  o.restart_strategy = "fixed-delay";
  o.restart_delay = std::chrono::milliseconds{5};
  unloadable_sink::shared shared;
  environment env{o};
  generator_options gen;
  gen.count = 20'000;
  gen.rate = 10'000;
  env.from_generator([](std::uint64_t i) { return i; }, gen)
      .sink("unloadable",
            [&shared](const runtime::stage_context&, runtime::stage_object*) {
              return std::make_unique<unloadable_sink>(shared);
            });
  execution_hooks hooks;
  hooks.registry = registry_;
  ::testing::internal::CaptureStderr();
  auto report = execute(env, hooks);
  auto err = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(report.ok()) << report.error().to_string() << "\n" << err;
  const auto bad = shared.bad.load();
  ASSERT_GT(bad, 0) << err;
  EXPECT_EQ(shared.restores_of_bad.load(), 1) << err;
  EXPECT_NE(err.find("checkpoint " + std::to_string(bad) + " in "),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("cannot restore its state: the sink's state does not "
                     "decode"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("restoring checkpoint " + std::to_string(bad - 1)),
            std::string::npos)
      << err;
}

TEST_P(checkpoint_test, restoring_an_unloadable_checkpoint_fails_fast) {
  auto o = options("unloadable-restore");
  ASSERT_TRUE(run(o, 20'000, 0, {}).ok());
  auto root = fs::path{o.checkpoint_dir} / "unloadable-restore";
  std::int64_t newest = 0;
  for (const auto& f : fs::directory_iterator(root)) {
    auto name = f.path().filename().string();
    if (name.starts_with("chk-"))
      newest = std::max<std::int64_t>(newest, std::stoll(name.substr(4)));
  }
  ASSERT_GT(newest, 0);
  auto folder = root / ("chk-" + std::to_string(newest));
  make_unloadable(folder);
  o.restore = folder.string();
  o.restore_final = true;  // the newest is the end-of-input checkpoint
  o.restart_strategy = "exponential";
  o.restart_delay = std::chrono::seconds{1};
  fs::remove_all(output());
  auto start = std::chrono::steady_clock::now();
  ::testing::internal::CaptureStderr();
  auto report = run(o, 20'000, 0, {});
  auto err = ::testing::internal::GetCapturedStderr();
  auto secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  ASSERT_FALSE(report.ok()) << err;
  EXPECT_EQ(report.error().code(), errc::malformed_data);
  EXPECT_NE(report.error().message().find("cannot be restored"),
            std::string::npos)
      << report.error().message();
  EXPECT_NE(report.error().message().find(folder.string()), std::string::npos)
      << report.error().message();
  EXPECT_LT(secs, 5.0) << err;
}

TEST_P(checkpoint_test, a_checkpoint_that_times_out_is_aborted_and_counted) {
  constexpr std::uint64_t readings = 20'000;
  auto o = options("timeout");
  o.threads = 3;  // one stays blocked in the user function below
  o.checkpoint_timeout = std::chrono::milliseconds{60};
  auto& timeouts = registry_->get_counter(
      "stream_checkpoints_failed_total", "Checkpoints aborted, by reason.",
      {{"job", "timeout"}, {"reason", "timeout"}});
  auto& completed = registry_->get_counter(
      "stream_checkpoints_completed_total",
      "Checkpoints and savepoints completed.", {{"job", "timeout"}});
  std::uint64_t completed_before = 0;
  // At reading 5,000 the source chain stalls (a slow external call, say)
  // until the coordinator gave up on the checkpoint it could not finish.
  auto fail = [&](std::uint64_t seq) {
    if (seq != 5'000) return false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{10};
    while (timeouts.raw() == 0) {
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error{"no checkpoint timed out within 10 s"};
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
    completed_before = completed.raw();
    return false;
  };
  ::testing::internal::CaptureStderr();
  auto report = run(o, readings, 20'000, fail);
  auto err = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(report.ok()) << report.error().to_string() << "\n" << err;
  EXPECT_EQ(report->restarts, 0u);
  EXPECT_GE(timeouts.raw(), 1u);
  EXPECT_NE(err.find("timed out after 60 ms"), std::string::npos) << err;
  EXPECT_GT(completed.raw(), completed_before)
      << "checkpoints complete again after the timeout";
  // Aborted checkpoints leave no folder behind.
  for (const auto& f :
       fs::directory_iterator(fs::path{o.checkpoint_dir} / "timeout")) {
    if (!f.is_directory()) continue;  // the job folder's .lock
    EXPECT_TRUE(fs::exists(f.path() / "_metadata"))
        << f.path() << " is an aborted checkpoint that was not removed";
  }
  auto expected = exactly_once_expected(readings, sensors);
  auto actual = committed_lines(output());
  EXPECT_TRUE(actual == expected) << line_diff(expected, actual);
}

/// A stateful sink whose snapshots after the end of its input (the final
/// checkpoint's) stall until the coordinator has given up on them, for the
/// first `stalls` of them.
class stalling_sink final : public runtime::consumer<std::uint64_t> {
 public:
  stalling_sink(counter& timeouts, int stalls)
      : timeouts_(timeouts), stalls_(stalls) {}
  bool stateful() const override { return true; }
  void push(std::vector<std::uint64_t>&) override {}
  void flush() override {}
  void finish() override { finished_ = true; }
  void on_control(const runtime::control_event&) override {}
  void snapshot_state(std::int64_t, checkpoint::pending_snapshot&) override {
    if (!finished_ || stalls_ == 0) return;
    --stalls_;
    const auto before = timeouts_.raw();
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds{30};
    while (timeouts_.raw() == before &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds{1});
    }
  }

 private:
  counter& timeouts_;
  int stalls_;
  bool finished_ = false;
};

TEST_P(checkpoint_test, an_aborted_final_checkpoint_is_taken_again) {
  for (int stalls : {2, 4}) {
    SCOPED_TRACE(std::to_string(stalls) + " final checkpoints stall");
    const std::string job = "final-" + std::to_string(stalls);
    auto o = options(job);
    o.parallelism = 1;
    o.checkpoint_timeout = std::chrono::milliseconds{100};
    // No periodic checkpoint before the end: every timeout is a final one.
    o.checkpoint_interval = std::chrono::hours{1};
    auto& timeouts = registry_->get_counter(
        "stream_checkpoints_failed_total", "Checkpoints aborted, by reason.",
        {{"job", job}, {"reason", "timeout"}});
    environment env{o};
    generator_options gen;
    gen.count = 1'000;
    env.from_generator([](std::uint64_t i) { return i; }, gen)
        .sink("stalling", [&timeouts, stalls](const runtime::stage_context&,
                                              runtime::stage_object*) {
          return std::make_unique<stalling_sink>(timeouts, stalls);
        });
    execution_hooks hooks;
    hooks.registry = registry_;
    ::testing::internal::CaptureStderr();
    auto report = execute(env, hooks);
    auto err = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("taking the final checkpoint again (retry 1 of 3, "
                       "with 200 ms)"),
              std::string::npos)
        << err;
    EXPECT_NE(err.find("(retry 2 of 3, with 400 ms)"), std::string::npos)
        << err;
    if (stalls == 2) {
      // The third try went through.
      ASSERT_TRUE(report.ok()) << report.error().to_string() << "\n" << err;
      EXPECT_EQ(timeouts.raw(), 2u);
    } else {
      // Four tries (100, 200, 400 and 800 ms) timed out: the job fails.
      ASSERT_FALSE(report.ok()) << err;
      EXPECT_NE(report.error().message().find(
                    "the final checkpoint failed after 3 retries: timed out "
                    "after 800 ms"),
                std::string::npos)
          << report.error().message();
      EXPECT_EQ(timeouts.raw(), 4u);
    }
  }
}

TEST_P(checkpoint_test, past_the_restart_limit_the_job_fails_clearly) {
  auto o = options("limit");
  o.restart_attempts = 2;
  std::atomic<int> failures{0};
  auto fail = [&](std::uint64_t seq) {
    if (seq != 100) return false;
    ++failures;
    return true;  // every attempt fails at the same reading
  };
  ::testing::internal::CaptureStderr();
  auto report = run(o, 5'000, 0, fail);
  auto err = ::testing::internal::GetCapturedStderr();
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.error().code(), errc::operator_failed);
  EXPECT_NE(report.error().message().find("injected failure at reading 100"),
            std::string::npos)
      << report.error().message();
  EXPECT_NE(report.error().message().find(
                "restart strategy fixed-delay: 2 restarts used"),
            std::string::npos)
      << report.error().message();
  EXPECT_EQ(failures.load(), 3);
}

/// A sink whose commit of the last checkpoint fails, as a transactional
/// sink's can when the broker goes away at the end of the job.
class failing_final_commit final : public runtime::consumer<std::uint64_t> {
 public:
  explicit failing_final_commit(std::atomic<int>& commits)
      : commits_(commits) {}
  bool stateful() const override { return true; }
  void push(std::vector<std::uint64_t>&) override {}
  void flush() override {}
  void finish() override { finished_ = true; }
  void on_control(const runtime::control_event&) override {}
  void notify_checkpoint_complete(std::int64_t id) override {
    ++commits_;
    if (finished_)
      throw std::runtime_error("cannot commit checkpoint " +
                               std::to_string(id) + ": broker gone");
  }

 private:
  std::atomic<int>& commits_;
  bool finished_ = false;
};

TEST_P(checkpoint_test, a_failed_commit_of_the_final_checkpoint_fails_the_job) {
  auto o = options("final-commit");
  // Only the final checkpoint (at the end of input) runs.
  o.checkpoint_interval = std::chrono::hours{1};
  std::atomic<int> commits{0};
  environment env{o};
  generator_options gen;
  gen.count = 1'000;
  env.from_generator([](std::uint64_t i) { return i; }, gen)
      .sink("final_commit",
            [&commits](const runtime::stage_context&, runtime::stage_object*) {
              return std::make_unique<failing_final_commit>(commits);
            });
  execution_hooks hooks;
  hooks.registry = registry_;
  auto report = execute(env, hooks);
  ASSERT_FALSE(report.ok()) << "the job reported success although its last "
                               "commit failed";
  EXPECT_EQ(report.error().code(), errc::operator_failed);
  EXPECT_NE(report.error().message().find("broker gone"), std::string::npos)
      << report.error().message();
  EXPECT_NE(report.error().message().find("after the final checkpoint"),
            std::string::npos)
      << report.error().message();
  EXPECT_GE(commits.load(), 1);
}

INSTANTIATE_TEST_SUITE_P(backends, checkpoint_test,
                         ::testing::Values("memory", "leveldb"));

}  // namespace
}  // namespace stream
