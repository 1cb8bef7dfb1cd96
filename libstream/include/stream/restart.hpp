#pragma once

// Restart strategies: whether, and after how long, a failed job is restarted
// from its latest checkpoint. A pure function of the failure times, so it is
// unit tested without a job.

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "stream/options.hpp"

namespace stream {

class restart_policy {
 public:
  using clock = std::chrono::steady_clock;

  /// The strategy of `options` ("auto" resolved by whether checkpoints are
  /// enabled). `options` must have passed `validate()`.
  explicit restart_policy(const job_options& options);

  /// A failure happened at `now`: the delay before restarting, or nothing
  /// when the strategy gives up (then `reason()` says why).
  std::optional<std::chrono::milliseconds> on_failure(clock::time_point now);

  /// Why the last `on_failure` gave up, e.g. "restart strategy
  /// fixed-delay: 3 restarts used".
  const std::string& reason() const noexcept { return reason_; }

  /// The resolved strategy name ("none", "fixed-delay", ...).
  const std::string& name() const noexcept { return name_; }

  /// Restarts granted so far.
  std::uint32_t restarts() const noexcept { return restarts_; }

 private:
  std::string name_;
  std::uint32_t attempts_;
  std::chrono::milliseconds delay_;
  std::chrono::milliseconds max_delay_;
  double multiplier_;
  std::chrono::milliseconds interval_;
  std::uint32_t restarts_ = 0;
  std::uint32_t streak_ = 0;  ///< Exponential: failures since the reset.
  std::optional<clock::time_point> last_failure_;
  std::deque<clock::time_point> recent_;  ///< Failure-rate window.
  std::string reason_;
};

}  // namespace stream
