// The example binaries as a user runs them: wordcount against a reference
// count, the command line's exit codes, graceful stop on SIGTERM, and the
// /metrics endpoint against the reference table in README.md.

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "process.hpp"
#include "scrape.hpp"
#include "windowed_process.hpp"

namespace stream {
namespace {

using stream::testing::child_process;
using stream::testing::http_get;
using stream::testing::parse_samples;
using stream::testing::run_command;

const std::string examples = STREAM_EXAMPLES_DIR;

std::string temp_file(const std::string& name) {
  return ::testing::TempDir() + "/" + name + "-" + std::to_string(::getpid());
}

// An independent reference: split on bytes outside [A-Za-z0-9] and lower
// the letters by arithmetic.
std::map<std::string, std::uint64_t> reference_count(const std::string& text) {
  std::map<std::string, std::uint64_t> counts;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) ++counts[word];
    word.clear();
  };
  for (unsigned char c : text) {
    if (c >= 'A' && c <= 'Z')
      word += static_cast<char>(c - 'A' + 'a');
    else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
      word += c;
    else
      flush();
  }
  flush();
  return counts;
}

// Tens of thousands of words with mixed case, digits, punctuation, tabs,
// UTF-8 bytes, CRLF line ends and empty lines.
std::string make_text(std::uint32_t seed, int lines) {
  static const char* const vocab[] = {
      "Stream", "actor", "BATCH", "credit", "key42", "Group", "window",
      "state",  "x",     "sink",  "Source", "r2d2",  "event", "barrier",
      "Time",   "naïve", "café",  "2026",   "a",     "Zebra"};
  static const char* const seps[] = {" ", "  ", ", ", ".", "!", "\t", "-",
                                     "'", "(",  ")",  ";", "/", "\"", " -- "};
  std::mt19937 rng{seed};
  std::ostringstream out;
  for (int l = 0; l < lines; ++l) {
    int words = static_cast<int>(rng() % 14);
    for (int w = 0; w < words; ++w) {
      out << vocab[rng() % 20] << seps[rng() % 14];
    }
    out << (rng() % 5 == 0 ? "\r\n" : "\n");
  }
  return out.str();
}

std::map<std::string, std::uint64_t> last_counts(const std::string& output,
                                                 std::uint64_t* lines) {
  std::map<std::string, std::uint64_t> last;
  std::istringstream in{output};
  std::string line;
  *lines = 0;
  while (std::getline(in, line)) {
    ++*lines;
    auto tab = line.find('\t');
    EXPECT_NE(tab, std::string::npos) << line;
    if (tab == std::string::npos) continue;
    auto word = line.substr(0, tab);
    auto count = std::stoull(line.substr(tab + 1));
    // Every update is emitted, in order: each word counts up by one.
    EXPECT_EQ(count, last[word] + 1) << word;
    last[word] = count;
  }
  return last;
}

class wordcount : public ::testing::TestWithParam<int> {};

TEST_P(wordcount, last_line_per_word_equals_a_straightforward_count) {
  auto input = temp_file("words.txt");
  auto output = temp_file("counts.tsv") + "-p" + std::to_string(GetParam());
  auto text = make_text(7, 8000);
  std::ofstream{input} << text;
  auto expected = reference_count(text);
  std::uint64_t total_words = 0;
  for (const auto& [w, n] : expected) total_words += n;
  ASSERT_GT(total_words, 40000U);
  std::printf("measured: %llu words, %zu distinct, parallelism %d\n",
              static_cast<unsigned long long>(total_words), expected.size(),
              GetParam());

  std::string err;
  int rc = run_command({examples + "/wordcount", "--input", input, "--output",
                        output, "--parallelism", std::to_string(GetParam()),
                        "--metrics-port", "0", "--batch-size", "256"},
                       nullptr, &err);
  ASSERT_EQ(rc, 0) << err;
  std::ifstream in{output};
  std::stringstream got;
  got << in.rdbuf();
  std::uint64_t lines = 0;
  EXPECT_EQ(last_counts(got.str(), &lines), expected);
  EXPECT_EQ(lines, total_words);
  std::remove(input.c_str());
  std::remove(output.c_str());
}

INSTANTIATE_TEST_SUITE_P(parallelism, wordcount, ::testing::Values(1, 2, 4));

TEST(keyed_sum, a_bounded_job_ends_by_itself_with_exact_totals) {
  auto output = temp_file("totals.tsv");
  std::string err;
  int rc = run_command(
      {examples + "/keyed_sum", "--records", "300000", "--keys", "1000",
       "--parallelism", "2", "--output", output, "--metrics-port", "0"},
      nullptr, &err);
  ASSERT_EQ(rc, 0) << err;
  EXPECT_NE(err.find("300000 records from sources"), std::string::npos) << err;
  std::ifstream in{output};
  std::map<std::uint64_t, std::uint64_t> last_count;
  std::uint64_t auction = 0, count = 0, lines = 0;
  std::int64_t sum = 0;
  while (in >> auction >> sum >> count) {
    ++lines;
    last_count[auction] = count;
  }
  EXPECT_EQ(lines, 300000U);
  EXPECT_EQ(last_count.size(), 1000U);
  std::uint64_t total = 0;
  for (const auto& [a, c] : last_count) total += c;
  EXPECT_EQ(total, 300000U);
  std::remove(output.c_str());
}

TEST(keyed_sum, a_throttled_source_stops_promptly) {
  // At 0.1 records/s the next record is 10 s away; the stop must not wait
  // for it.
  auto start = std::chrono::steady_clock::now();
  std::string err;
  auto checkpoints = temp_file("throttled-checkpoints");
  int rc = run_command(
      {examples + "/keyed_sum", "--rate", "0.1", "--stop-after", "1s",
       "--metrics-address", "", "--checkpoint-dir", checkpoints},
      nullptr, &err);
  std::filesystem::remove_all(checkpoints);
  auto secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  EXPECT_EQ(rc, 0) << err;
  EXPECT_LT(secs, 5.0) << err;
  EXPECT_NE(err.find("job stopped"), std::string::npos) << err;
}

TEST(windowed_process, one_summary_per_user_and_window_equal_to_a_reference) {
  // 300,000 views at 1,000 per second of event time: 300 s, 30 windows.
  constexpr std::uint64_t n = 300000, users = 200, per_second = 1000;
  auto output = temp_file("windowed_process.txt");
  std::string err;
  int rc = run_command(
      {examples + "/windowed_process", "--records", std::to_string(n),
       "--users", std::to_string(users), "--views-per-second",
       std::to_string(per_second), "--parallelism", "2", "--output", output,
       "--metrics-address", ""},
      nullptr, &err);
  ASSERT_EQ(rc, 0) << err;
  // Reference: bucket every view into its 10-second window directly.
  std::map<std::pair<std::uint64_t, std::int64_t>,
           std::pair<std::uint64_t, std::set<std::uint32_t>>>
      want;
  for (std::uint64_t i = 0; i < n; ++i) {
    auto v = windowed_process::make_view(i, users, per_second);
    auto start = v.ts - v.ts % 10000;
    auto& w = want[{v.user, start}];
    ++w.first;
    w.second.insert(v.page);
  }
  std::ifstream in{output};
  std::string line;
  std::size_t lines = 0;
  std::regex format{
      R"(^user=(\d+) window=\[(\d+),(\d+)\) views=(\d+) pages=(\d+)$)"};
  std::set<std::pair<std::uint64_t, std::int64_t>> seen;
  while (std::getline(in, line)) {
    ++lines;
    std::smatch m;
    ASSERT_TRUE(std::regex_match(line, m, format)) << line;
    auto user = std::stoull(m[1]);
    auto start = std::stoll(m[2]);
    EXPECT_EQ(std::stoll(m[3]) - start, 10000) << line;
    auto it = want.find({user, start});
    ASSERT_NE(it, want.end()) << line;
    EXPECT_EQ(std::stoull(m[4]), it->second.first) << line;
    EXPECT_EQ(std::stoull(m[5]), it->second.second.size()) << line;
    EXPECT_TRUE(seen.insert({user, start}).second) << "twice: " << line;
  }
  EXPECT_EQ(lines, want.size());
  std::remove(output.c_str());
}

TEST(command_line, help_lists_every_option) {
  std::string out;
  ASSERT_EQ(run_command({examples + "/keyed_sum", "--help"}, &out, nullptr), 0);
  for (const char* option :
       {"--help", "--config", "--job-name", "--parallelism",
        "--max-parallelism", "--batch-size", "--flush-timeout",
        "--channel-credits", "--threads", "--metrics-address", "--metrics-port",
        "--stop-after", "--status-interval", "--no-chaining", "--records",
        "--keys", "--rate", "--output", "STREAM_"}) {
    EXPECT_NE(out.find(option), std::string::npos) << option;
  }
}

struct bad_invocation {
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::string expected_in_message;
};

TEST(command_line, bad_flags_and_values_exit_2_naming_the_problem) {
  auto config = temp_file("bad.ini");
  std::ofstream{config} << "parallelism = 2\nno-such-option = 1\n";
  std::vector<bad_invocation> cases = {
      {{"--no-such-flag"}, {}, "no-such-flag"},
      {{"--parallelism", "abc"}, {}, "--parallelism"},
      {{"--parallelism", "0"}, {}, "--parallelism"},
      {{"--max-parallelism", "99999"}, {}, "--max-parallelism"},
      {{"--flush-timeout", "10"}, {}, "--flush-timeout"},
      {{"--stop-after", "500us"}, {}, "--stop-after"},
      {{"--records", "-5"}, {}, "--records"},
      {{"--rate", "fast"}, {}, "--rate"},
      {{"--parallelism", "300"}, {}, "--parallelism"},
      {{"--config", "/nonexistent.ini"}, {}, "/nonexistent.ini"},
      {{"--config", config}, {}, "no-such-option"},
      {{}, {{"STREAM_PARALLELISM", "many"}}, "--parallelism"},
      {{"stray"}, {}, "stray"},
      // Values that used to crash, run or escape their folder.
      {{"--keys", "0"}, {}, "invalid value '0' for --keys: must be at least 1"},
      {{"--rate", "-1"},
       {},
       "invalid value '-1' for --rate: must be at least 0"},
      {{"--config", ::testing::TempDir()}, {}, "is not a regular file"},
      {{"--job-name", "../../x"}, {}, "--job-name '../../x' may hold only"},
      {{"--stop-timeout", "10ms"}, {}, "--stop-timeout"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv{examples + "/keyed_sum"};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    std::string err;
    int rc = run_command(argv, nullptr, &err, c.env);
    EXPECT_EQ(rc, 2) << c.expected_in_message << ": " << err;
    EXPECT_NE(err.find(c.expected_in_message), std::string::npos) << err;
  }
  std::remove(config.c_str());
}

TEST(command_line, a_huge_config_value_is_not_echoed_whole) {
  auto config = temp_file("huge.ini");
  std::ofstream{config} << "batch-size = " << std::string(2 << 20, '7') << "\n"
                        << "state-backend = " << std::string(2 << 20, 'x')
                        << "\n";
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"--config", config},
           // A single argument is limited to 128 KiB by the kernel.
           {"--state-backend", std::string(100'000, 'x')}}) {
    std::vector<std::string> argv{examples + "/keyed_sum"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string err;
    EXPECT_EQ(run_command(argv, nullptr, &err), 2) << err.substr(0, 500);
    EXPECT_LT(err.size(), 1000U) << err.substr(0, 500);
    EXPECT_NE(err.find("characters)"), std::string::npos) << err.substr(0, 500);
  }
  std::remove(config.c_str());
}

TEST(command_line, folders_that_cannot_be_written_are_refused_at_start) {
  // Unbounded input: a check made only after the input would never come.
  auto plain = temp_file("plain-file");
  std::ofstream{plain} << "x";
  std::vector<bad_invocation> cases = {
      {{"--checkpoint-interval", "1s", "--checkpoint-dir", plain + "/ckpt"},
       {},
       "--checkpoint-dir '" + plain + "/ckpt/keyed_sum' cannot be written"},
      {{"--savepoint-dir", "/proc/savepoints"},
       {},
       "--savepoint-dir '/proc/savepoints/keyed_sum' cannot be written"},
      {{"--output", plain + "/out.txt"}, {}, "operator 'output': output file"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> argv{examples + "/keyed_sum", "--records", "0",
                                  "--metrics-address", ""};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    std::string err;
    auto start = std::chrono::steady_clock::now();
    int rc = run_command(argv, nullptr, &err, c.env);
    auto secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    EXPECT_EQ(rc, 2) << err;
    EXPECT_NE(err.find(c.expected_in_message), std::string::npos) << err;
    EXPECT_LT(secs, 10.0) << err;
  }
  std::remove(plain.c_str());
}

TEST(command_line, config_file_and_environment_set_options) {
  auto config = temp_file("good.ini");
  std::ofstream{config} << "records = 1000\nkeys = 10\n";
  std::string err;
  int rc = run_command(
      {examples + "/keyed_sum", "--config", config, "--metrics-port", "0"},
      nullptr, &err, {{"STREAM_PARALLELISM", "2"}});
  EXPECT_EQ(rc, 0) << err;
  EXPECT_NE(err.find("1000 records from sources"), std::string::npos) << err;
  std::remove(config.c_str());
}

/// Metric names of the first reference table in README.md: the metrics
/// every job has. (The next table, event time and state, is checked by the
/// tests of those features.)
std::vector<std::string> reference_metrics() {
  std::ifstream in{std::string{STREAM_SOURCE_DIR} + "/README.md"};
  std::vector<std::string> names;
  std::string line;
  std::regex row{R"(^\| `(stream_[a-z_]+)` \|)"};
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_search(line, m, row))
      names.push_back(m[1]);
    else if (!names.empty())
      break;  // the end of the first table
  }
  return names;
}

TEST(metrics_endpoint, serves_every_reference_metric_with_live_values) {
  auto names = reference_metrics();
  ASSERT_GE(names.size(), 8U) << "metrics table not found in README.md";
  auto checkpoints = temp_file("metrics-checkpoints");
  child_process job{{examples + "/keyed_sum", "--parallelism", "2",
                     "--metrics-address", "127.0.0.1", "--metrics-port", "0",
                     "--stop-after", "60s", "--checkpoint-dir", checkpoints}};
  ASSERT_TRUE(job.wait_for_err("/metrics", std::chrono::seconds(20)))
      << job.err();
  std::smatch m;
  auto err = job.err();
  ASSERT_TRUE(std::regex_search(err, m, std::regex{R"(:(\d+)/metrics)"}));
  auto url = "http://127.0.0.1:" + m[1].str() + "/metrics";

  // Scrape until every metric had a non-zero sample (gauges move), bounded.
  std::set<std::string> nonzero;
  std::string last;
  for (int i = 0; i < 40 && nonzero.size() < names.size(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    last = http_get(url);
    for (const auto& s : parse_samples(last)) {
      if (s.value != 0) nonzero.insert(s.name);
    }
  }
  for (const auto& name : names) {
    EXPECT_NE(last.find("# TYPE " + name + " "), std::string::npos) << name;
    EXPECT_TRUE(nonzero.count(name)) << name << " never non-zero";
  }
  // Per running operator: records flow in and out, subtasks are busy.
  auto samples = parse_samples(last);
  auto value_of = [&](const std::string& metric, const std::string& op,
                      const std::string& subtask) {
    for (const auto& s : samples) {
      if (s.name == metric &&
          s.labels.find("operator=\"" + op + "\"") != std::string::npos &&
          s.labels.find("subtask=\"" + subtask + "\"") != std::string::npos)
        return s.value;
    }
    return -1.0;
  };
  for (std::string sub : {"0", "1"}) {
    for (const char* op : {"bids", "to_euro", "sum_per_auction"})
      EXPECT_GT(value_of("stream_records_out_total", op, sub), 0) << op;
    for (const char* op : {"to_euro", "sum_per_auction", "output"})
      EXPECT_GT(value_of("stream_records_in_total", op, sub), 0) << op;
    for (const char* op : {"bids", "sum_per_auction"})
      EXPECT_GT(value_of("stream_busy_seconds_total", op, sub), 0) << op;
  }

  job.signal(SIGTERM);
  EXPECT_EQ(job.wait(std::chrono::seconds(15)), 0) << job.err();
  EXPECT_NE(job.err().find("job stopped"), std::string::npos) << job.err();
  EXPECT_NE(job.err().find("last savepoint: " + checkpoints), std::string::npos)
      << "a stop takes a savepoint: " << job.err();
  std::filesystem::remove_all(checkpoints);
}

}  // namespace
}  // namespace stream
