#include "stream/key_groups.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <utility>

namespace stream {

namespace {

status check_parallelism(std::uint32_t max_parallelism,
                         std::uint32_t parallelism) {
  if (max_parallelism < 1 || max_parallelism > max_max_parallelism) {
    return {errc::invalid_argument, "max parallelism must be in 1.." +
                                        std::to_string(max_max_parallelism) +
                                        ", got " +
                                        std::to_string(max_parallelism)};
  }
  if (parallelism < 1 || parallelism > max_parallelism) {
    return {errc::invalid_argument,
            "parallelism must be in 1..max parallelism (" +
                std::to_string(max_parallelism) + "), got " +
                std::to_string(parallelism)};
  }
  return status::success();
}

}  // namespace

key_group_set::key_group_set(std::vector<key_group_range> runs) {
  std::erase_if(runs, [](const key_group_range& r) { return r.empty(); });
  std::sort(runs.begin(), runs.end(),
            [](const key_group_range& a, const key_group_range& b) {
              return a.start < b.start;
            });
  for (const key_group_range& run : runs) {
    // Overlapping or touching the last run: extend it.
    if (!runs_.empty() && run.start <= runs_.back().end) {
      runs_.back().end = std::max(runs_.back().end, run.end);
    } else {
      runs_.push_back(run);
    }
  }
}

std::uint32_t key_group_set::size() const noexcept {
  std::uint32_t n = 0;
  for (const key_group_range& run : runs_) n += run.size();
  return n;
}

bool key_group_set::contains(key_group kg) const noexcept {
  return intersects(key_group_range{kg, kg + 1});
}

bool key_group_set::intersects(key_group_range range) const noexcept {
  if (range.empty()) return false;
  // The first run that ends after the range starts.
  auto it = std::upper_bound(
      runs_.begin(), runs_.end(), range.start,
      [](key_group kg, const key_group_range& run) { return kg < run.end; });
  return it != runs_.end() && it->start < range.end;
}

bool key_group_set::intersects(const key_group_set& other) const noexcept {
  auto a = runs_.begin();
  auto b = other.runs_.begin();
  while (a != runs_.end() && b != other.runs_.end()) {
    if (a->start < b->end && b->start < a->end) return true;
    if (a->end <= b->end) {
      ++a;
    } else {
      ++b;
    }
  }
  return false;
}

std::string key_group_set::to_string() const {
  if (runs_.empty()) return "none";
  std::string out;
  for (const key_group_range& run : runs_) {
    if (!out.empty()) out += ',';
    out += std::to_string(run.start);
    if (run.size() > 1) out += "-" + std::to_string(run.end - 1);
  }
  return out;
}

key_group_table::key_group_table(std::vector<std::uint16_t> owners,
                                 std::uint32_t parallelism,
                                 std::uint64_t version)
    : owners_(std::move(owners)),
      parallelism_(parallelism),
      version_(version),
      assign_(static_cast<std::uint32_t>(owners_.size())) {
  assert(!owners_.empty() && owners_.size() <= max_max_parallelism);
  assert(parallelism_ >= 1 && parallelism_ <= owners_.size());
}

result<key_group_table> key_group_table::contiguous(
    std::uint32_t max_parallelism, std::uint32_t parallelism,
    std::uint64_t version) {
  if (status checked = check_parallelism(max_parallelism, parallelism);
      !checked.ok()) {
    return checked;
  }
  std::vector<std::uint16_t> owners(max_parallelism);
  for (std::uint32_t subtask = 0; subtask < parallelism; ++subtask) {
    const key_group_range range =
        range_for_subtask(max_parallelism, parallelism, subtask);
    for (key_group kg = range.start; kg < range.end; ++kg) {
      owners[kg] = static_cast<std::uint16_t>(subtask);
    }
  }
  return key_group_table{std::move(owners), parallelism, version};
}

result<key_group_table> key_group_table::from_owners(
    std::vector<std::uint32_t> owners, std::uint32_t parallelism,
    std::uint64_t version) {
  if (owners.empty() || owners.size() > max_max_parallelism) {
    return status{errc::invalid_argument,
                  "a key group table needs 1.." +
                      std::to_string(max_max_parallelism) +
                      " owners (one per key group), got " +
                      std::to_string(owners.size())};
  }
  const auto max_parallelism = static_cast<std::uint32_t>(owners.size());
  if (status checked = check_parallelism(max_parallelism, parallelism);
      !checked.ok()) {
    return checked;
  }
  std::vector<std::uint16_t> narrow(owners.size());
  for (std::size_t kg = 0; kg < owners.size(); ++kg) {
    if (owners[kg] >= parallelism) {
      return status{errc::invalid_argument,
                    "key group " + std::to_string(kg) +
                        " is owned by subtask " + std::to_string(owners[kg]) +
                        ", but parallelism is " + std::to_string(parallelism)};
    }
    // Fits: owners[kg] < parallelism <= max_max_parallelism = 1 << 15.
    narrow[kg] = static_cast<std::uint16_t>(owners[kg]);
  }
  return key_group_table{std::move(narrow), parallelism, version};
}

std::vector<std::uint32_t> key_group_table::owners() const {
  return {owners_.begin(), owners_.end()};
}

std::vector<key_group> key_group_table::owned_by(std::uint32_t subtask) const {
  assert(subtask < parallelism_);
  std::vector<key_group> groups;
  for (std::size_t kg = 0; kg < owners_.size(); ++kg) {
    if (owners_[kg] == subtask) groups.push_back(static_cast<key_group>(kg));
  }
  return groups;
}

std::vector<key_group_range> key_group_table::ranges_of(
    std::uint32_t subtask) const {
  assert(subtask < parallelism_);
  std::vector<key_group_range> ranges;
  const auto size = static_cast<std::uint32_t>(owners_.size());
  for (std::uint32_t kg = 0; kg < size; ++kg) {
    if (owners_[kg] != subtask) continue;
    // Ranges are appended in ascending order, so only the last can grow.
    if (!ranges.empty() && ranges.back().end == kg) {
      ranges.back().end = kg + 1;
    } else {
      ranges.push_back({kg, kg + 1});
    }
  }
  return ranges;
}

std::string key_group_table::to_string() const {
  std::string out = "v" + std::to_string(version_);
  const std::size_t size = owners_.size();
  std::size_t start = 0;
  while (start < size) {
    std::size_t last = start;
    while (last + 1 < size && owners_[last + 1] == owners_[start]) ++last;
    out += " [" + std::to_string(start);
    if (last != start) out += "-" + std::to_string(last);
    out += "]->" + std::to_string(owners_[start]);
    start = last + 1;
  }
  return out;
}

}  // namespace stream
