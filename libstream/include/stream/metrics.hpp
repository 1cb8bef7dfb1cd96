#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stream {

/// The labels of one series as (name, value) pairs, e.g.
/// `{{"operator", "map"}, {"subtask", "0"}}`. Order does not matter: the
/// registry sorts them by name. Names follow the Prometheus label rules
/// (`[a-zA-Z_][a-zA-Z0-9_]*`, no leading `__`) and appear at most once; values
/// are any UTF-8 text.
using metric_labels = std::vector<std::pair<std::string, std::string>>;

/// A monotonically increasing count, e.g. records processed or nanoseconds
/// spent busy.
///
/// The count is an integer in the counter's own unit; `value()` converts it to
/// the exposed base unit (a seconds counter kept in nanoseconds has unit scale
/// 1e-9). Thread safety: every member may be called from any thread at any
/// time; updates are single relaxed atomic operations, so they never block
/// and never order other memory. The count wraps at 2^64.
///
/// Occupies a cache line of its own, so that series updated by different
/// threads do not slow each other through false sharing. Usually obtained
/// from `metrics_registry`, which owns it; a standalone counter works but is
/// exposed nowhere.
class alignas(64) counter {
 public:
  /// Creates a zero counter. `unit_scale` must be positive and finite.
  explicit counter(double unit_scale = 1.0) noexcept
      : unit_scale_(unit_scale) {}

  counter(const counter&) = delete;
  counter& operator=(const counter&) = delete;

  /// Adds `n` units. Lock-free, wait-free on common hardware.
  void add(std::uint64_t n = 1) noexcept {
    raw_.fetch_add(n, std::memory_order_relaxed);
  }

  /// The count in the counter's own unit.
  std::uint64_t raw() const noexcept {
    return raw_.load(std::memory_order_relaxed);
  }

  /// The count in the exposed unit: `raw() * unit_scale()`. Exact up to 2^53
  /// units.
  double value() const noexcept {
    return static_cast<double>(raw()) * unit_scale_;
  }

  /// The factor from the counter's unit to the exposed unit.
  double unit_scale() const noexcept { return unit_scale_; }

 private:
  std::atomic<std::uint64_t> raw_{0};
  const double unit_scale_;
};

/// A value that goes up and down, e.g. a queue length or the current
/// watermark lag.
///
/// Like `counter`, the value is an integer in the gauge's own unit and
/// `scaled_value()` is the exposed value. Thread safety: every member may be
/// called from any thread at any time; updates are single relaxed atomic
/// operations. `add` wraps on overflow (two's complement), never traps.
/// Occupies a cache line of its own, as `counter` does.
class alignas(64) gauge {
 public:
  /// Creates a zero gauge. `unit_scale` must be positive and finite.
  explicit gauge(double unit_scale = 1.0) noexcept : unit_scale_(unit_scale) {}

  gauge(const gauge&) = delete;
  gauge& operator=(const gauge&) = delete;

  /// Replaces the value with `v` units.
  void set(std::int64_t v) noexcept {
    value_.store(v, std::memory_order_relaxed);
  }

  /// Adds `d` units; `d` may be negative.
  void add(std::int64_t d) noexcept {
    value_.fetch_add(d, std::memory_order_relaxed);
  }

  /// The value in the gauge's own unit.
  std::int64_t value() const noexcept {
    return value_.load(std::memory_order_relaxed);
  }

  /// The value in the exposed unit: `value() * unit_scale()`.
  double scaled_value() const noexcept {
    return static_cast<double>(value()) * unit_scale_;
  }

  /// The factor from the gauge's unit to the exposed unit.
  double unit_scale() const noexcept { return unit_scale_; }

 private:
  std::atomic<std::int64_t> value_{0};
  const double unit_scale_;
};

/// The metrics of one process: named families of counters and gauges, each
/// series identified by its labels.
///
/// Thread safety: all members may be called concurrently. Creating a series
/// and taking a snapshot lock a mutex; updating a series never does, so hot
/// paths look a series up once and keep the reference. Returned references
/// stay valid for the registry's lifetime. Nothing is ever removed.
///
/// Programmer errors, checked by assertions: a metric or label name that
/// breaks the Prometheus rules, a repeated label name, a name reused with a
/// different kind, help text or unit scale, a unit scale that is not positive
/// and finite.
class metrics_registry {
 public:
  /// One series at the moment of a snapshot.
  struct sample {
    /// The family name (the exposed series name).
    std::string name;
    /// Labels sorted by name.
    metric_labels labels;
    /// The value in the exposed unit (unit scale applied).
    double value = 0.0;
  };

  /// All series of one metric name at the moment of a snapshot.
  struct family {
    /// The kind of every series of a family.
    enum class kind { counter, gauge };

    std::string name;
    std::string help;
    kind type = kind::counter;
    /// Sorted by labels.
    std::vector<sample> samples;
  };

  /// Creates an empty registry.
  metrics_registry();
  ~metrics_registry();

  metrics_registry(const metrics_registry&) = delete;
  metrics_registry& operator=(const metrics_registry&) = delete;

  /// Returns the counter `name{labels}`, creating it at zero on first use.
  /// The first call for `name` fixes the family's help and unit scale; later
  /// calls must pass the same (assertion). By convention `name` ends in
  /// `_total` and names a base unit (`_seconds_total`, `_bytes_total`).
  counter& get_counter(std::string_view name, std::string_view help,
                       const metric_labels& labels, double unit_scale = 1.0);

  /// Returns the gauge `name{labels}`, creating it at zero on first use. Same
  /// contract as `get_counter`.
  gauge& get_gauge(std::string_view name, std::string_view help,
                   const metric_labels& labels, double unit_scale = 1.0);

  /// Copies every family and series with its current value, families sorted
  /// by name. Values are read one by one with relaxed loads, so a snapshot is
  /// not an atomic cut across series.
  std::vector<family> snapshot() const;

  /// Renders a snapshot in the Prometheus text exposition format 0.0.4, the
  /// body that `GET /metrics` returns.
  std::string to_prometheus_text() const;

 private:
  struct family_entry;

  /// Finds or creates the family `name`; `mutex_` must be held.
  family_entry& family_for(std::string_view name, std::string_view help,
                           family::kind type, double unit_scale);

  mutable std::mutex mutex_;
  /// Guarded by `mutex_`. Entries are boxed so that series references stay
  /// stable while the map grows.
  std::map<std::string, std::unique_ptr<family_entry>, std::less<>> families_;
};

}  // namespace stream
