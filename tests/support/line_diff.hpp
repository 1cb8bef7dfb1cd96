#pragma once

// The difference of two sorted line lists, for failure messages of tests
// that compare a job's output with a reference.

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <string>
#include <vector>

namespace stream::testing {

/// How many lines of sorted `expected` are missing from sorted `actual`
/// and how many are extra (duplicates or unexpected), with the first five
/// of each.
inline std::string line_diff(const std::vector<std::string>& expected,
                             const std::vector<std::string>& actual) {
  std::vector<std::string> missing;
  std::vector<std::string> extra;
  std::set_difference(expected.begin(), expected.end(), actual.begin(),
                      actual.end(), std::back_inserter(missing));
  std::set_difference(actual.begin(), actual.end(), expected.begin(),
                      expected.end(), std::back_inserter(extra));
  std::string out = std::to_string(missing.size()) + " missing, " +
                    std::to_string(extra.size()) +
                    " extra (duplicates or unexpected)\n";
  for (std::size_t i = 0; i < std::min<std::size_t>(5, missing.size()); ++i)
    out += "  missing: " + missing[i] + "\n";
  for (std::size_t i = 0; i < std::min<std::size_t>(5, extra.size()); ++i)
    out += "  extra:   " + extra[i] + "\n";
  return out;
}

}  // namespace stream::testing
