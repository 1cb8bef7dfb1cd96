// kafka_bench's set-up: helpers for its child processes and topics, and
// the broker it starts itself (see kafka_bench_setup.hpp).

#include "kafka_bench_setup.hpp"

#include <stdlib.h>  // getloadavg

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "bench_report.hpp"
#include "kafka_support.hpp"

namespace kafka_bench {

namespace fs = std::filesystem;
using bench::format;
using stream::testing::child_process;

seconds secs(std::uint64_t n) { return seconds{static_cast<long>(n)}; }

double load_average() {
  double load = -1;
  return getloadavg(&load, 1) == 1 ? load : -1;
}

/// The last lines of `text`, for error messages.
std::string tail(const std::string& text, std::size_t lines) {
  auto pos = text.size();
  for (std::size_t i = 0; i <= lines && pos != std::string::npos && pos > 0;
       ++i)
    pos = text.rfind('\n', pos - 1);
  return pos == std::string::npos ? text : text.substr(pos + 1);
}

/// `program` and its flags with their values.
std::vector<std::string> command(
    const std::string& program,
    const std::vector<std::pair<std::string, std::string>>& flags) {
  std::vector<std::string> argv{program};
  for (const auto& [flag, value] : flags)
    argv.insert(argv.end(), {flag, value});
  return argv;
}

/// Notes `argv` for the report (the first of each `what`), the temporary
/// folder written `$DIR` and the topic prefix `kafka-bench-$PID`.
void note_command(context& c, const std::string& what,
                  const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& a : argv) {
    if (!line.empty()) line += ' ';
    line += a.empty() ? "''" : a;
  }
  auto swap = [&](const std::string& from, const std::string& to) {
    for (auto pos = line.find(from); pos != std::string::npos;
         pos = line.find(from, pos + to.size()))
      line.replace(pos, from.size(), to);
  };
  swap(KAFKA_BROKER_SCRIPT, "tools/kafka-broker");
  swap(KAFKA_BENCH_DIR, "<build>/kafka-bench");
  swap(c.dir, "$DIR");
  swap(c.tag, "kafka-bench-$PID");
  swap(fs::path(c.job).parent_path().string() + "/", "");
  swap(fs::path(c.loader).parent_path().string() + "/", "");
  auto same = [&](const std::string& e) { return e.starts_with(what + ":"); };
  if (std::none_of(c.commands.begin(), c.commands.end(), same))
    c.commands.push_back(what + ":\n    `" + line + "`");
}

std::unique_ptr<child_process> start(const context& c,
                                     const std::vector<std::string>& argv,
                                     const std::string& log) {
  return std::make_unique<child_process>(
      argv, stream::testing::child_options{{}, c.dir + "/" + log, true});
}

/// Waits for `p`'s exit and throws unless it exited with 0.
std::string expect_success(child_process& p, const std::string& what,
                           seconds limit) {
  int rc = p.wait(limit);
  if (rc == 0) return p.err();
  throw std::runtime_error(
      (rc == -1 ? format("%s did not end within %lld s (killed)", what.c_str(),
                         static_cast<long long>(limit.count()))
                : format("%s exited with %d", what.c_str(), rc)) +
      "\n" + tail(p.err()));
}

/// Creates `topics` with 4 partitions, kept forever: the views carry
/// event times of 2023, which the broker's 7-day time retention would
/// delete at its next check (every 5 minutes), in the middle of a run.
void create_topics(context& c, const std::vector<std::string>& topics) {
  for (const auto& t : topics) {
    stream::test::kafka::create_topic(c.brokers, t, partitions,
                                      {{"retention.ms", "-1"}});
    c.topics.push_back(t);
  }
}

own_broker::own_broker(context& c) : c_(c) {
  try {
    start_broker();
  } catch (...) {
    stop_broker();  // a start that timed out may have left one running
    throw;
  }
  c.brokers = "127.0.0.1:19094";
}

own_broker::~own_broker() { stop_broker(); }

void own_broker::start_broker() {
  auto argv = command(KAFKA_BROKER_SCRIPT, {{"--dir", KAFKA_BENCH_DIR},
                                            {"--port", "19094"},
                                            {"--controller-port", "19095"},
                                            {"--timeout", "180"}});
  argv.insert(argv.begin() + 1, "start");
  note_command(c_, "broker", argv);
  std::fprintf(stderr, "kafka_bench: starting a broker in %s\n",
               KAFKA_BENCH_DIR);
  expect_success(*start(c_, argv, "broker-start"), "tools/kafka-broker start",
                 broker_start_limit);
}

void own_broker::stop_broker() {
  child_process stop{
      {KAFKA_BROKER_SCRIPT, "stop", "--dir", KAFKA_BENCH_DIR, "--timeout",
       "30"},
      stream::testing::child_options{{}, c_.dir + "/broker-stop", true}};
  if (stop.wait(broker_stop_limit) != 0) {
    std::fprintf(stderr, "kafka_bench: stopping the broker failed:\n%s\n",
                 tail(stop.err()).c_str());
  } else if (succeeded_) {
    std::error_code ec;
    fs::remove_all(KAFKA_BENCH_DIR "/data", ec);
  }
}

}  // namespace kafka_bench
