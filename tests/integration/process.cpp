#include "process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace stream::testing {

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string temp_path(const char* tag) {
  std::string tmpl = "/tmp/stream-test-" + std::string{tag} + "-XXXXXX";
  int fd = ::mkstemp(tmpl.data());
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  ::close(fd);
  return tmpl;
}

// Created (or emptied) here, so the child only opens it, as a temp_path.
std::string log_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path);
  ::close(fd);
  return path;
}

}  // namespace

child_process::child_process(const std::vector<std::string>& argv,
                             const std::map<std::string, std::string>& env)
    : child_process(argv, child_options{env, {}, false}) {}

child_process::child_process(const std::vector<std::string>& argv,
                             const child_options& options)
    : out_path_(options.log.empty() ? temp_path("out")
                                    : log_path(options.log + ".out")),
      err_path_(options.log.empty() ? temp_path("err")
                                    : log_path(options.log + ".err")),
      keep_logs_(!options.log.empty()) {
  const auto parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    if (options.dies_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      // A parent that died before prctl() would never send the signal.
      if (::getppid() != parent) ::_exit(127);
    }
    int out = ::open(out_path_.c_str(), O_WRONLY | O_TRUNC);
    int err = ::open(err_path_.c_str(), O_WRONLY | O_TRUNC);
    ::dup2(out, 1);
    ::dup2(err, 2);
    for (const auto& [k, v] : options.env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
}

child_process::~child_process() {
  if (!reaped_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (keep_logs_) return;
  ::unlink(out_path_.c_str());
  ::unlink(err_path_.c_str());
}

int child_process::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  struct rusage usage {};
  while (true) {
    auto r = ::wait4(pid_, &status, WNOHANG, &usage);
    if (r == pid_) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      reaped_ = true;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  reaped_ = true;
  max_rss_kb_ = usage.ru_maxrss;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -2;
}

void child_process::signal(int sig) { ::kill(pid_, sig); }

std::string child_process::out() const { return slurp(out_path_); }
std::string child_process::err() const { return slurp(err_path_); }

bool child_process::wait_for_err(const std::string& needle,
                                 std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (err().find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

int run_command(const std::vector<std::string>& argv, std::string* out,
                std::string* err,
                const std::map<std::string, std::string>& env) {
  child_process p{argv, env};
  int rc = p.wait(std::chrono::seconds(120));
  if (out != nullptr) *out = p.out();
  if (err != nullptr) *err = p.err();
  return rc;
}

}  // namespace stream::testing
