#include "stream/options.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "stream/key_groups.hpp"

namespace stream {

namespace {

status out_of_range(const char* option, std::uint64_t value, std::uint64_t lo,
                    std::uint64_t hi) {
  return status{errc::invalid_config,
                std::string{"--"} + option + " must be between " +
                    std::to_string(lo) + " and " + std::to_string(hi) +
                    ", got " + std::to_string(value)};
}

// A value as quoted in an error: a config line may be megabytes long.
std::string shown(const std::string& text) {
  constexpr std::size_t limit = 80;
  if (text.size() <= limit) return text;
  return text.substr(0, limit) + "... (" + std::to_string(text.size()) +
         " characters)";
}

// A job name becomes a folder name under --checkpoint-dir and --state-dir
// and a metric label: path separators or a leading dot could leave those
// folders, and control characters would break logs and labels.
status check_job_name(const std::string& name) {
  constexpr std::size_t max_length = 128;
  if (name.empty())
    return status{errc::invalid_config, "--job-name must not be empty"};
  if (name.size() > max_length)
    return status{errc::invalid_config,
                  "--job-name '" + shown(name) + "' is longer than " +
                      std::to_string(max_length) + " characters"};
  bool allowed = std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.';
  });
  if (!allowed || name.front() == '.')
    return status{errc::invalid_config,
                  "--job-name '" + shown(name) +
                      "' may hold only letters, digits, '-', '_' and '.', "
                      "and may not start with '.': it names the job's "
                      "folders under --checkpoint-dir and --state-dir"};
  return {};
}

}  // namespace

status job_options::validate() const {
  if (auto st = check_job_name(job_name); !st.ok()) return st;
  if (max_parallelism < 1 || max_parallelism > max_max_parallelism)
    return out_of_range("max-parallelism", max_parallelism, 1,
                        max_max_parallelism);
  if (parallelism < 1 || parallelism > max_parallelism)
    return out_of_range("parallelism", parallelism, 1, max_parallelism);
  if (rescale_plan != "minimal" && rescale_plan != "ranges")
    return status{errc::invalid_config,
                  "--rescale-plan must be minimal or ranges, got '" +
                      shown(rescale_plan) + "'"};
  if (batch_size < 1 || batch_size > 65536)
    return out_of_range("batch-size", batch_size, 1, 65536);
  if (channel_credits < 1 || channel_credits > 4096)
    return out_of_range("channel-credits", channel_credits, 1, 4096);
  if (threads > 1024) return out_of_range("threads", threads, 0, 1024);
  if (flush_timeout < std::chrono::microseconds{100} ||
      flush_timeout > std::chrono::minutes{1})
    return status{errc::invalid_config,
                  "--flush-timeout must be between 100us and 1m"};
  if (stop_after.count() < 0)
    return status{errc::invalid_config, "--stop-after must be >= 0"};
  if (status_interval.count() < 0)
    return status{errc::invalid_config, "--status-interval must be >= 0"};
  if (watermark_interval.count() < 0 ||
      watermark_interval > std::chrono::minutes{1})
    return status{errc::invalid_config,
                  "--watermark-interval must be between 0 and 1m"};
  if (state_backend != "memory" && state_backend != "leveldb")
    return status{errc::invalid_config,
                  "--state-backend must be 'memory' or 'leveldb', not '" +
                      shown(state_backend) + "'"};
  if (state_dir.empty())
    return status{errc::invalid_config, "--state-dir must not be empty"};
  if (state_cache_entries > (1u << 26))
    return out_of_range("state-cache-entries", state_cache_entries, 0,
                        1u << 26);
  if (checkpoint_interval.count() < 0)
    return status{errc::invalid_config, "--checkpoint-interval must be >= 0"};
  if (checkpoint_interval.count() > 0 &&
      checkpoint_interval < std::chrono::milliseconds{10})
    return status{errc::invalid_config,
                  "--checkpoint-interval must be 0 (off) or at least 10ms"};
  if (checkpoint_timeout < std::chrono::milliseconds{10})
    return status{errc::invalid_config,
                  "--checkpoint-timeout must be at least 10ms"};
  if (checkpoint_min_pause.count() < 0)
    return status{errc::invalid_config, "--checkpoint-min-pause must be >= 0"};
  if (stop_timeout < std::chrono::milliseconds{100} ||
      stop_timeout > std::chrono::hours{1})
    return status{errc::invalid_config,
                  "--stop-timeout must be between 100ms and 1h"};
  if (checkpoint_dir.empty())
    return status{errc::invalid_config, "--checkpoint-dir must not be empty"};
  if (checkpoints_retained < 1 || checkpoints_retained > 1000)
    return out_of_range("checkpoints-retained", checkpoints_retained, 1, 1000);
  if (restart_strategy != "auto" && restart_strategy != "none" &&
      restart_strategy != "fixed-delay" && restart_strategy != "exponential" &&
      restart_strategy != "failure-rate")
    return status{errc::invalid_config,
                  "--restart-strategy must be auto, none, fixed-delay, "
                  "exponential or failure-rate, not '" +
                      shown(restart_strategy) + "'"};
  if (restart_delay.count() < 0 || restart_max_delay < restart_delay)
    return status{
        errc::invalid_config,
        "--restart-delay must be >= 0 and at most --restart-max-delay"};
  if (!(restart_backoff_multiplier >= 1.0 && restart_backoff_multiplier <= 100))
    return status{errc::invalid_config,
                  "--restart-backoff-multiplier must be between 1 and 100"};
  if (restart_failure_interval < std::chrono::milliseconds{1})
    return status{errc::invalid_config,
                  "--restart-failure-interval must be at least 1ms"};
  if (role != "local" && role != "coordinator" && role != "worker")
    return status{errc::invalid_config,
                  "--role must be local, coordinator or worker, not '" +
                      shown(role) + "'"};
  if (role == "worker") {
    auto colon = coordinator.rfind(':');
    if (colon == std::string::npos || colon == 0 ||
        colon + 1 == coordinator.size() ||
        coordinator.find_first_not_of("0123456789", colon + 1) !=
            std::string::npos ||
        std::stoul(coordinator.substr(colon + 1).substr(0, 6)) > 65535)
      return status{
          errc::invalid_config,
          "--coordinator must be HOST:PORT, not '" + shown(coordinator) + "'"};
  }
  if (slots < 1 || slots > 1024) return out_of_range("slots", slots, 1, 1024);
  bool any_tls = !tls_cert.empty() || !tls_key.empty() || !tls_ca.empty();
  bool all_tls = !tls_cert.empty() && !tls_key.empty() && !tls_ca.empty();
  if (any_tls && !all_tls)
    return status{errc::invalid_config,
                  "TLS needs all of --tls-cert, --tls-key and --tls-ca"};
  if (heartbeat_interval.count() < 0 || peer_timeout.count() < 0)
    return status{errc::invalid_config,
                  "--heartbeat-interval and --peer-timeout must be >= 0"};
  if (peer_timeout.count() > 0 && (heartbeat_interval.count() == 0 ||
                                   peer_timeout < 2 * heartbeat_interval))
    return status{errc::invalid_config,
                  "--peer-timeout must be 0 (off) or at least twice "
                  "--heartbeat-interval"};
  if (restart_strategy == "failure-rate" && restart_attempts == 0)
    return status{errc::invalid_config,
                  "--restart-attempts must be at least 1 for failure-rate"};
  return {};
}

result<std::chrono::microseconds> parse_duration(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return status{errc::invalid_config,
                  "invalid duration '" + shown(text) + "': " + why};
  };
  std::uint64_t number = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, number);
  if (ec == std::errc::result_out_of_range) return bad("number too large");
  if (ec != std::errc{} || ptr == first)
    return bad("expected a number followed by a unit (us, ms, s, m, h)");
  std::string unit{ptr, last};
  if (unit.empty()) {
    if (number == 0) return std::chrono::microseconds{0};
    return bad("missing unit (us, ms, s, m, h)");
  }
  std::uint64_t scale = 0;
  if (unit == "us")
    scale = 1;
  else if (unit == "ms")
    scale = 1000;
  else if (unit == "s")
    scale = 1000 * 1000;
  else if (unit == "m")
    scale = 60ULL * 1000 * 1000;
  else if (unit == "h")
    scale = 3600ULL * 1000 * 1000;
  else
    return bad("unknown unit '" + unit + "' (use us, ms, s, m or h)");
  constexpr std::uint64_t limit = 1ULL << 62;
  if (number > limit / scale) return bad("too long");
  return std::chrono::microseconds{static_cast<std::int64_t>(number * scale)};
}

}  // namespace stream
