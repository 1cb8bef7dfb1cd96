#pragma once

#include <string>
#include <vector>

namespace stream::testing {

/// GET `url` with a 10 s timeout; a failed request fails the current test
/// and returns what arrived.
std::string http_get(const std::string& url);

/// One labelled sample of Prometheus text: `name{labels} value`.
struct sample {
  std::string name;
  std::string labels;  ///< As written, e.g. `job="x",operator="map"`.
  double value = 0;
};

/// Every labelled sample in a `/metrics` body (comments skipped).
std::vector<sample> parse_samples(const std::string& text);

/// Sum of the samples of `metric` whose labels contain `label` (e.g.
/// `operator="map"`).
double sum_of(const std::string& text, const std::string& metric,
              const std::string& label);

}  // namespace stream::testing
