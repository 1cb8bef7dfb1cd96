#pragma once

// What the benchmarks share: a measured run, flags, and the markdown table
// that compares every run with the first (the hand-written loop).

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace bench {

/// printf into a std::string.
inline std::string format(const char* fmt, ...)
    __attribute__((format(printf, 1, 2)));
inline std::string format(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  va_list again;
  va_copy(again, args);
  auto n = std::vsnprintf(nullptr, 0, fmt, args);
  va_end(args);
  std::string out(static_cast<std::size_t>(std::max(n, 0)), '\0');
  std::vsnprintf(out.data(), out.size() + 1, fmt, again);
  va_end(again);
  return out;
}

struct measurement {
  std::string name;
  std::uint64_t records = 0;
  double seconds = 0;
  double rate() const { return static_cast<double>(records) / seconds; }
};

/// The value after `name` on the command line, or `fallback`.
inline std::string flag(int argc, char** argv, const char* name,
                        std::string fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return fallback;
}

inline std::uint64_t number_flag(int argc, char** argv, const char* name,
                                 std::uint64_t fallback) {
  auto text = flag(argc, argv, name, "");
  return text.empty() ? fallback : std::strtoull(text.c_str(), nullptr, 10);
}

/// "| run | records | seconds | records/s | vs hand loop |" rows, the
/// first run being the hand loop.
inline std::string table(const std::vector<measurement>& runs) {
  std::string out = "| run | records | seconds | records/s | vs hand loop |\n";
  out += "|---|---:|---:|---:|---:|\n";
  const double limit = runs.front().rate();
  for (const auto& r : runs) {
    char line[256];
    std::snprintf(line, sizeof line, "| %s | %llu | %.3f | %.0f | %.1f%% |\n",
                  r.name.c_str(), static_cast<unsigned long long>(r.records),
                  r.seconds, r.rate(), 100.0 * r.rate() / limit);
    out += line;
  }
  return out;
}

/// Prints `text` and writes it to `path` when not empty.
inline void publish(const std::string& text, const std::string& path) {
  std::fputs(text.c_str(), stdout);
  if (!path.empty()) std::ofstream{path} << text;
}

}  // namespace bench
