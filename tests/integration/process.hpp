#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace stream::testing {

/// Where a child_process writes its output and whether it may outlive the
/// process that started it.
struct child_options {
  /// Extra environment variables.
  std::map<std::string, std::string> env;
  /// Empty: stdout and stderr go to temporary files, removed with the
  /// child_process. Otherwise to `<log>.out` and `<log>.err` (created or
  /// truncated), which stay, e.g. for a look after a failed benchmark.
  std::string log;
  /// When set, the child is killed (SIGKILL) as soon as the thread that
  /// started it ends (PR_SET_PDEATHSIG), so no child outlives a crashed
  /// driver. Start such children from a thread that lives as long as they.
  bool dies_with_parent = false;
};

/// A child process with stdout and stderr captured to files. The destructor
/// kills it if it is still running.
class child_process {
 public:
  /// Starts `argv[0]` with `argv`, extra environment variables `env`.
  child_process(const std::vector<std::string>& argv,
                const std::map<std::string, std::string>& env = {});
  /// Starts `argv[0]` with `argv`, its output and ties as `options` says.
  child_process(const std::vector<std::string>& argv,
                const child_options& options);
  ~child_process();
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  /// Waits at most `timeout` for the exit; returns the exit code, 128+signal
  /// when killed by a signal, or -1 on timeout (the child is then killed).
  int wait(std::chrono::milliseconds timeout);

  /// The child's peak resident set in KB, known once `wait` reaped it;
  /// -1 before.
  long max_rss_kb() const noexcept { return max_rss_kb_; }

  /// The child's process id.
  pid_t pid() const noexcept { return pid_; }

  /// Sends `sig` to the child.
  void signal(int sig);

  /// Output captured so far.
  std::string out() const;
  std::string err() const;

  /// Polls stderr until it contains `needle`; false after `timeout`.
  bool wait_for_err(const std::string& needle,
                    std::chrono::milliseconds timeout) const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  long max_rss_kb_ = -1;
  std::string out_path_;
  std::string err_path_;
  bool keep_logs_ = false;
};

/// Runs a command to completion (timeout 120 s) and returns its exit code.
int run_command(const std::vector<std::string>& argv, std::string* out,
                std::string* err,
                const std::map<std::string, std::string>& env = {});

}  // namespace stream::testing
