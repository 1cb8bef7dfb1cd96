#include "stream/metrics.hpp"

#include <prometheus/check_names.h>
#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <cassert>
#include <cmath>

namespace stream {

namespace {

// Sorting makes {a,b} and {b,a} the same series, as Prometheus treats them.
metric_labels normalized(const metric_labels& labels) {
  metric_labels sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    assert(prometheus::CheckLabelName(sorted[i].first) &&
           "label name breaks the Prometheus rules");
    assert((i == 0 || sorted[i - 1].first != sorted[i].first) &&
           "label name repeated within one series");
  }
  return sorted;
}

template <class Metric>
Metric& find_or_add(std::map<metric_labels, std::unique_ptr<Metric>>& series,
                    const metric_labels& labels, double unit_scale) {
  auto [it, inserted] = series.try_emplace(normalized(labels));
  if (inserted) it->second = std::make_unique<Metric>(unit_scale);
  return *it->second;
}

double exposed_value(const counter& c) { return c.value(); }
double exposed_value(const gauge& g) { return g.scaled_value(); }

template <class Metric>
void append_samples(
    const std::string& name,
    const std::map<metric_labels, std::unique_ptr<Metric>>& series,
    std::vector<metrics_registry::sample>& out) {
  out.reserve(series.size());
  for (const auto& [labels, metric] : series) {
    out.push_back({name, labels, exposed_value(*metric)});
  }
}

// The exposition format wants `\` and line feeds escaped in HELP, and
// prometheus-cpp (1.0.1 and later) writes help verbatim, so a multi-line help
// would otherwise corrupt the whole scrape.
std::string escaped_help(const std::string& help) {
  std::string out;
  out.reserve(help.size());
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

namespace detail {

// Shared with metrics_server.cpp, which declares it too: the conversion must
// stay private to the library because its signature names prometheus-cpp.
std::vector<prometheus::MetricFamily> to_prometheus_families(
    const std::vector<metrics_registry::family>& families) {
  std::vector<prometheus::MetricFamily> out;
  out.reserve(families.size());
  for (const auto& f : families) {
    prometheus::MetricFamily& pf = out.emplace_back();
    pf.name = f.name;
    pf.help = escaped_help(f.help);
    const bool is_counter = f.type == metrics_registry::family::kind::counter;
    pf.type = is_counter ? prometheus::MetricType::Counter
                         : prometheus::MetricType::Gauge;
    pf.metric.reserve(f.samples.size());
    for (const auto& s : f.samples) {
      prometheus::ClientMetric& m = pf.metric.emplace_back();
      m.label.reserve(s.labels.size());
      for (const auto& [name, value] : s.labels) {
        m.label.push_back({name, value});
      }
      (is_counter ? m.counter.value : m.gauge.value) = s.value;
    }
  }
  return out;
}

}  // namespace detail

// Invariant: exactly one of the two maps is used, chosen by `type`, and it
// holds at least one series once the family exists.
struct metrics_registry::family_entry {
  std::string help;
  family::kind type = family::kind::counter;
  double unit_scale = 1.0;
  std::map<metric_labels, std::unique_ptr<counter>> counters;
  std::map<metric_labels, std::unique_ptr<gauge>> gauges;
};

metrics_registry::metrics_registry() = default;
metrics_registry::~metrics_registry() = default;

metrics_registry::family_entry& metrics_registry::family_for(
    std::string_view name, std::string_view help, family::kind type,
    double unit_scale) {
  assert(prometheus::CheckMetricName(std::string{name}) &&
         "metric name breaks the Prometheus rules");
  assert(unit_scale > 0.0 && std::isfinite(unit_scale) &&
         "unit scale must be positive and finite");
  auto it = families_.find(name);
  if (it == families_.end()) {
    auto entry = std::make_unique<family_entry>();
    entry->help = help;
    entry->type = type;
    entry->unit_scale = unit_scale;
    it = families_.emplace(std::string{name}, std::move(entry)).first;
  }
  family_entry& entry = *it->second;
  assert(entry.type == type && "metric name already used for another kind");
  assert(entry.help == help && "metric name already used with another help");
  assert(entry.unit_scale == unit_scale &&
         "metric name already used with another unit scale");
  return entry;
}

counter& metrics_registry::get_counter(std::string_view name,
                                       std::string_view help,
                                       const metric_labels& labels,
                                       double unit_scale) {
  std::lock_guard lock{mutex_};
  family_entry& entry =
      family_for(name, help, family::kind::counter, unit_scale);
  return find_or_add(entry.counters, labels, unit_scale);
}

gauge& metrics_registry::get_gauge(std::string_view name, std::string_view help,
                                   const metric_labels& labels,
                                   double unit_scale) {
  std::lock_guard lock{mutex_};
  family_entry& entry = family_for(name, help, family::kind::gauge, unit_scale);
  return find_or_add(entry.gauges, labels, unit_scale);
}

std::vector<metrics_registry::family> metrics_registry::snapshot() const {
  std::lock_guard lock{mutex_};
  std::vector<family> out;
  out.reserve(families_.size());
  for (const auto& [name, entry] : families_) {
    family& f = out.emplace_back();
    f.name = name;
    f.help = entry->help;
    f.type = entry->type;
    if (entry->type == family::kind::counter) {
      append_samples(name, entry->counters, f.samples);
    } else {
      append_samples(name, entry->gauges, f.samples);
    }
  }
  return out;
}

std::string metrics_registry::to_prometheus_text() const {
  return prometheus::TextSerializer{}.Serialize(
      detail::to_prometheus_families(snapshot()));
}

}  // namespace stream
