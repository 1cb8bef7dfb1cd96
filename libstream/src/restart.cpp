#include "stream/restart.hpp"

#include <algorithm>
#include <cmath>

namespace stream {

restart_policy::restart_policy(const job_options& options)
    : name_(options.restart_strategy),
      attempts_(options.restart_attempts),
      delay_(options.restart_delay),
      max_delay_(options.restart_max_delay),
      multiplier_(options.restart_backoff_multiplier),
      interval_(options.restart_failure_interval) {
  if (name_ == "auto")
    name_ = options.checkpoint_interval.count() > 0 ? "exponential" : "none";
}

std::optional<std::chrono::milliseconds> restart_policy::on_failure(
    clock::time_point now) {
  auto give_up = [&](std::string why) {
    reason_ = "restart strategy " + name_ + ": " + std::move(why);
    return std::nullopt;
  };
  if (name_ == "none") return give_up("no restarts");
  if (name_ == "fixed-delay") {
    if (restarts_ >= attempts_)
      return give_up(std::to_string(attempts_) + " restarts used");
    ++restarts_;
    return delay_;
  }
  if (name_ == "failure-rate") {
    recent_.push_back(now);
    while (!recent_.empty() && now - recent_.front() > interval_)
      recent_.pop_front();
    if (recent_.size() > attempts_)
      return give_up(std::to_string(recent_.size()) + " failures within " +
                     std::to_string(interval_.count()) + " ms (at most " +
                     std::to_string(attempts_) + " allowed)");
    ++restarts_;
    return delay_;
  }
  // Exponential backoff: the delay doubles (by the multiplier) per failure
  // up to the cap, and starts over after a quiet interval.
  if (last_failure_ && now - *last_failure_ > interval_) streak_ = 0;
  last_failure_ = now;
  if (attempts_ > 0 && restarts_ >= attempts_)
    return give_up(std::to_string(attempts_) + " restarts used");
  auto factor = std::pow(multiplier_, static_cast<double>(streak_));
  auto ms = std::min(static_cast<double>(delay_.count()) * factor,
                     static_cast<double>(max_delay_.count()));
  ++streak_;
  ++restarts_;
  return std::chrono::milliseconds{static_cast<std::int64_t>(ms)};
}

}  // namespace stream
