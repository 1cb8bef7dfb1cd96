#pragma once

// What the exactly_once job must output, computed straight from the
// readings without the runtime, and the output a run left behind.

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "exactly_once.hpp"
#include "line_diff.hpp"

namespace stream::testing {

/// Every line of the job over readings [0, readings), sorted.
inline std::vector<std::string> exactly_once_expected(std::uint64_t readings,
                                                      std::uint64_t sensors) {
  std::map<std::pair<std::int64_t, std::uint64_t>,
           std::pair<std::uint64_t, std::int64_t>>
      windows;
  std::map<std::uint64_t, std::pair<std::uint64_t, std::int64_t>> totals;
  std::vector<std::string> lines;
  for (std::uint64_t i = 0; i < readings; ++i) {
    auto r = exactly_once::make_reading(i, sensors);
    auto end = (r.ts / 1000) * 1000 + 1000;
    auto& w = windows[{end, r.sensor}];
    ++w.first;
    w.second += r.value;
    auto& t = totals[r.sensor];
    ++t.first;
    t.second += r.value;
    if (t.first % 50 == 0)
      lines.push_back("total sensor " + std::to_string(r.sensor) +
                      " readings " + std::to_string(t.first));
  }
  for (const auto& [sensor, t] : totals)
    lines.push_back("final sensor " + std::to_string(sensor) + " readings " +
                    std::to_string(t.first) + " sum " +
                    std::to_string(t.second));
  for (const auto& [k, v] : windows)
    lines.push_back("window " + std::to_string(k.first) + " sensor " +
                    std::to_string(k.second) + " count " +
                    std::to_string(v.first) + " sum " +
                    std::to_string(v.second));
  std::sort(lines.begin(), lines.end());
  return lines;
}

/// Every line of the committed (visible) part files under `dir`, sorted;
/// hidden in-progress and pending files are not output.
inline std::vector<std::string> committed_lines(const std::string& dir) {
  std::vector<std::string> lines;
  std::error_code ec;
  for (const auto& sub : {"windows", "totals"}) {
    auto path = std::filesystem::path{dir} / sub;
    if (!std::filesystem::exists(path, ec)) continue;
    for (const auto& f : std::filesystem::directory_iterator(path)) {
      if (f.path().filename().string().starts_with(".")) continue;
      std::ifstream in{f.path()};
      std::string line;
      while (std::getline(in, line)) lines.push_back(line);
    }
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

}  // namespace stream::testing
