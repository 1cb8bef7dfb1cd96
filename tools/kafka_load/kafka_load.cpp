// kafka_load: writes keyed page views into a Kafka topic at a given rate,
// in the record format of the windowed_process example (key = user id,
// value = "user,page,ts", message timestamp = ts). Exit codes: 0 every
// record was delivered, 1 the broker failed or refused, 2 usage error.

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <thread>

#include "kafka_client.hpp"
#include "windowed_process.hpp"

namespace po = boost::program_options;
using std::chrono::steady_clock;

namespace kafka_load {
namespace {

/// A bad command line: printed with a hint, exit code 2.
struct usage_error {
  std::string message;
};

struct settings {
  std::string brokers;
  std::string topic;
  int partitions = 0;         // 0: use the topic as it is
  std::uint64_t records = 0;  // 0: until SIGINT/SIGTERM
  std::uint64_t first = 0;    // index of the first view
  double rate = 0;            // records per second; 0: unpaced
  std::uint64_t users = 1000;
  std::uint64_t views_per_second = 1000;
  bool wall_clock_time = false;       // --event-time now
  std::uint64_t malformed_every = 0;  // 0: never
  acks_mode acks = acks_mode::all;
  bool quiet = false;
};

// Set by SIGINT/SIGTERM; the write loop stops and flushes.
volatile std::sig_atomic_t stop_requested = 0;
extern "C" void request_stop(int) { stop_requested = 1; }

/// `value` as a count that must be at least `min`; boost would wrap
/// negative numbers into huge unsigned ones, so parse signed and check.
std::uint64_t count_option(const po::variables_map& vm, const char* name,
                           std::int64_t min) {
  auto value = vm[name].as<std::int64_t>();
  if (value < min)
    throw usage_error{std::string{"--"} + name + " must be at least " +
                      std::to_string(min) + ", not " + std::to_string(value)};
  return static_cast<std::uint64_t>(value);
}

po::options_description describe_options() {
  const char* env_brokers = std::getenv("STREAM_KAFKA_BROKERS");
  po::options_description desc{"Usage: kafka_load --topic NAME [options]"};
  desc.add_options()("help", "print this help")(
      "brokers",
      po::value<std::string>()->default_value(
          env_brokers != nullptr ? env_brokers : "127.0.0.1:9092"),
      "bootstrap brokers HOST:PORT[,...] (env STREAM_KAFKA_BROKERS)")(
      "topic", po::value<std::string>(), "topic to write (required)")(
      "partitions", po::value<std::int64_t>()->default_value(0),
      "0: use the existing topic; N: create it with N partitions if missing")(
      "records", po::value<std::int64_t>()->default_value(0),
      "records to write; 0: until SIGINT/SIGTERM")(
      "first", po::value<std::int64_t>()->default_value(0),
      "index of the first view (to continue an earlier run's sequence)")(
      "rate", po::value<double>()->default_value(0),
      "records per second; 0: as fast as possible")(
      "users", po::value<std::int64_t>()->default_value(1000),
      "distinct user ids (keys)")(
      "views-per-second", po::value<std::int64_t>()->default_value(1000),
      "event-time density: views per second of event time")(
      "event-time", po::value<std::string>()->default_value("generated"),
      "generated: the views' own timestamps; now: wall-clock ms at write")(
      "malformed-every", po::value<std::int64_t>()->default_value(0),
      "K: every K-th record's value is 'malformed view #<i>'; 0: never")(
      "acks", po::value<std::string>()->default_value("all"),
      "all (idempotent producer) or 1")("quiet", "print nothing but errors");
  return desc;
}

/// The settings, or nullopt after printing --help.
std::optional<settings> parse(int argc, char** argv) {
  auto desc = describe_options();
  po::variables_map vm;
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    throw usage_error{e.what()};
  }
  if (vm.count("help") != 0) {
    std::cout << desc << '\n';
    return std::nullopt;
  }
  settings s;
  s.brokers = vm["brokers"].as<std::string>();
  if (s.brokers.empty()) throw usage_error{"--brokers must not be empty"};
  if (vm.count("topic") == 0) throw usage_error{"--topic is required"};
  s.topic = vm["topic"].as<std::string>();
  if (s.topic.empty()) throw usage_error{"--topic must not be empty"};
  auto partitions = count_option(vm, "partitions", 0);
  if (partitions > 100'000) throw usage_error{"--partitions is too large"};
  s.partitions = static_cast<int>(partitions);
  s.records = count_option(vm, "records", 0);
  s.first = count_option(vm, "first", 0);
  s.rate = vm["rate"].as<double>();
  if (!(s.rate >= 0) || s.rate > 1e9)
    throw usage_error{"--rate must be between 0 and 1e9 records/s"};
  s.users = count_option(vm, "users", 1);
  s.views_per_second = count_option(vm, "views-per-second", 1);
  auto event_time = vm["event-time"].as<std::string>();
  if (event_time != "generated" && event_time != "now")
    throw usage_error{"--event-time must be 'generated' or 'now', not '" +
                      event_time + "'"};
  s.wall_clock_time = event_time == "now";
  s.malformed_every = count_option(vm, "malformed-every", 0);
  auto acks = vm["acks"].as<std::string>();
  if (acks != "all" && acks != "1")
    throw usage_error{"--acks must be 'all' or '1', not '" + acks + "'"};
  s.acks = acks == "all" ? acks_mode::all : acks_mode::leader;
  s.quiet = vm.count("quiet") != 0;
  return s;
}

std::int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Writes and paces the records; owns the counters the summary reports.
class writer {
 public:
  writer(const settings& s, rd_kafka_t* rk, delivery_stats& stats)
      : s_{s}, rk_{rk}, stats_{stats} {}

  /// Writes until --records or a stop signal or a delivery failure, then
  /// waits for the deliveries (30 s at most).
  void run();

  std::uint64_t written() const { return written_; }
  std::uint64_t malformed() const { return malformed_; }
  double seconds() const { return seconds_; }

 private:
  /// Queues record `index`; false when the producer is failing instead.
  bool write(std::uint64_t index);
  void report_progress(steady_clock::time_point now);
  bool failing() const;

  const settings& s_;
  rd_kafka_t* rk_;
  delivery_stats& stats_;
  std::uint64_t written_ = 0;
  std::uint64_t malformed_ = 0;
  double seconds_ = 0;
  steady_clock::time_point last_report_;
  std::uint64_t written_at_last_report_ = 0;
};

bool writer::write(std::uint64_t index) {
  auto view = windowed_process::make_view(index, s_.users, s_.views_per_second);
  if (s_.wall_clock_time) view.ts = wall_clock_ms();
  const auto key = std::to_string(view.user);
  const bool bad =
      s_.malformed_every > 0 && (index + 1) % s_.malformed_every == 0;
  const auto value = bad ? "malformed view #" + std::to_string(index)
                         : windowed_process::to_csv(view);
  for (;;) {
    auto err = rd_kafka_producev(
        rk_, RD_KAFKA_V_TOPIC(s_.topic.c_str()),
        RD_KAFKA_V_KEY(key.data(), key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_TIMESTAMP(view.ts),
        RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
      throw failure{"cannot write record #" + std::to_string(index) + ": " +
                    rd_kafka_err2str(err)};
    // The local queue is full: serve delivery reports until there is room.
    // Bounded: queued messages fail after message.timeout.ms (30 s).
    rd_kafka_poll(rk_, 10);
    if (failing() || stop_requested != 0) return false;
  }
  ++written_;
  if (bad) ++malformed_;
  return true;
}

bool writer::failing() const {
  return stats_.failed > 0 ||
         rd_kafka_fatal_error(rk_, nullptr, 0) != RD_KAFKA_RESP_ERR_NO_ERROR;
}

void writer::report_progress(steady_clock::time_point now) {
  constexpr std::chrono::seconds interval{5};
  if (now - last_report_ < interval) return;
  if (!s_.quiet) {
    auto secs = std::chrono::duration<double>(now - last_report_).count();
    std::fprintf(stderr,
                 "kafka_load: %llu records written, %llu delivered, "
                 "%.0f records/s over the last %.0f s\n",
                 static_cast<unsigned long long>(written_),
                 static_cast<unsigned long long>(stats_.delivered),
                 static_cast<double>(written_ - written_at_last_report_) / secs,
                 secs);
  }
  last_report_ = now;
  written_at_last_report_ = written_;
}

void writer::run() {
  const auto start = steady_clock::now();
  last_report_ = start;
  // Pacing sleeps once per ~1 ms worth of records, not per record.
  const auto chunk = s_.rate > 0
                         ? std::max<std::uint64_t>(
                               1, static_cast<std::uint64_t>(s_.rate / 1000))
                         : std::uint64_t{1000};
  while (stop_requested == 0 && (s_.records == 0 || written_ < s_.records)) {
    auto n = s_.records == 0 ? chunk : std::min(chunk, s_.records - written_);
    for (std::uint64_t k = 0; k < n; ++k)
      if (!write(s_.first + written_)) break;
    rd_kafka_poll(rk_, 0);
    if (failing()) break;
    if (s_.rate > 0) {
      auto due = start + std::chrono::duration_cast<steady_clock::duration>(
                             std::chrono::duration<double>(
                                 static_cast<double>(written_) / s_.rate));
      std::this_thread::sleep_until(due);
    }
    report_progress(steady_clock::now());
  }
  // Once deliveries fail (the broker is gone or refuses), the rest would
  // only time out one by one: drop them, so the failure is reported now.
  // They count as not delivered.
  if (failing())
    rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  constexpr int flush_timeout_ms = 30'000;
  rd_kafka_flush(rk_, flush_timeout_ms);
  seconds_ = std::chrono::duration<double>(steady_clock::now() - start).count();
}

/// Throws failure unless every written record was delivered.
void check_delivered(rd_kafka_t* rk, const writer& w,
                     const delivery_stats& stats) {
  char fatal[512] = {};
  if (rd_kafka_fatal_error(rk, fatal, sizeof fatal) !=
      RD_KAFKA_RESP_ERR_NO_ERROR)
    throw failure{std::string{"the producer failed: "} + fatal};
  if (stats.failed > 0)
    throw failure{std::to_string(stats.failed) + " of " +
                  std::to_string(w.written()) +
                  " records were not delivered: " + stats.first_error};
  if (auto left = rd_kafka_outq_len(rk); left > 0)
    throw failure{std::to_string(left) +
                  " records were still undelivered after 30 s"};
}

int run(const settings& s) {
  delivery_stats stats;
  auto rk = make_producer(s.brokers, s.acks, stats);
  prepare_topic(rk.get(), s.brokers, s.topic, s.partitions);
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  writer w{s, rk.get(), stats};
  w.run();
  check_delivered(rk.get(), w, stats);
  if (!s.quiet) {
    std::printf(
        "kafka_load: wrote %llu records (%llu malformed) to %s in %.2f s "
        "(%.0f records/s)\n",
        static_cast<unsigned long long>(w.written()),
        static_cast<unsigned long long>(w.malformed()), s.topic.c_str(),
        w.seconds(),
        w.seconds() > 0 ? static_cast<double>(w.written()) / w.seconds() : 0.0);
  }
  return 0;
}

}  // namespace
}  // namespace kafka_load

int main(int argc, char** argv) {
  try {
    auto s = kafka_load::parse(argc, argv);
    if (!s) return 0;
    return kafka_load::run(*s);
  } catch (const kafka_load::usage_error& e) {
    std::cerr << "kafka_load: " << e.message
              << "\nTry 'kafka_load --help' for more information.\n";
    return 2;
  } catch (const kafka_load::failure& e) {
    std::cerr << "kafka_load: " << e.message << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "kafka_load: " << e.what() << '\n';
    return 1;
  }
}
