#pragma once

// kafka_bench's set-up: what its steps share (paths, names, the commands
// for the report), bounded waits for its child processes, topics, and the
// broker it starts itself.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kafka_bench.hpp"
#include "process.hpp"

namespace kafka_bench {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Every wait is bounded; these are the limits that do not scale with the
// input (those that do are computed where they are used).
inline constexpr seconds broker_start_limit{
    600};  // a cold start downloads jars
inline constexpr seconds broker_stop_limit{60};
inline constexpr seconds job_ready_limit{60};
inline constexpr seconds read_limit{120};
inline constexpr milliseconds poll_period{20};

/// Everything a step needs: paths, names, and the commands for the report.
struct context {
  settings s;
  std::string brokers;
  std::string dir;  ///< temporary: logs, checkpoints
  std::string tag;  ///< kafka-bench-<pid>: the prefix of every topic
  std::string job = STREAM_EXAMPLES_DIR "/windowed_process_kafka";
  std::string loader = KAFKA_LOAD_PATH;
  std::string dead_letters;
  std::vector<std::string> topics;    ///< to delete from a given broker
  std::vector<std::string> commands;  ///< for the report
};

seconds secs(std::uint64_t n);

/// The 1-minute load average, -1 if unknown.
double load_average();

/// The last lines of `text`, for error messages.
std::string tail(const std::string& text, std::size_t lines = 20);

/// `program` and its flags with their values.
std::vector<std::string> command(
    const std::string& program,
    const std::vector<std::pair<std::string, std::string>>& flags);

/// Notes `argv` for the report (the first of each `what`), the temporary
/// folder written `$DIR` and the topic prefix `kafka-bench-$PID`.
void note_command(context& c, const std::string& what,
                  const std::vector<std::string>& argv);

/// Starts `argv`, its output logged to `<dir>/<log>.{out,err}`.
std::unique_ptr<stream::testing::child_process> start(
    const context& c, const std::vector<std::string>& argv,
    const std::string& log);

/// Waits for `p`'s exit and throws unless it exited with 0.
std::string expect_success(stream::testing::child_process& p,
                           const std::string& what, seconds limit);

/// Creates `topics` with 4 partitions, kept forever: the views carry
/// event times of 2023, which the broker's 7-day time retention would
/// delete at its next check (every 5 minutes), in the middle of a run.
void create_topics(context& c, const std::vector<std::string>& topics);

/// A broker started with tools/kafka-broker and stopped (its data removed
/// after a successful run) when this goes out of scope.
class own_broker {
 public:
  explicit own_broker(context& c);
  ~own_broker();
  own_broker(const own_broker&) = delete;
  own_broker& operator=(const own_broker&) = delete;
  void succeeded() { succeeded_ = true; }

 private:
  void start_broker();
  void stop_broker();

  context& c_;
  bool succeeded_ = false;
};

}  // namespace kafka_bench
