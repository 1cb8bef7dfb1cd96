#include "stream/key_group_planner.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace stream {

namespace {

status check_target(const key_group_table& current, std::uint32_t parallelism) {
  if (parallelism < 1 || parallelism > current.max_parallelism()) {
    return {errc::invalid_argument,
            "parallelism must be in 1..max parallelism (" +
                std::to_string(current.max_parallelism()) + "), got " +
                std::to_string(parallelism)};
  }
  return status::success();
}

/// Key groups owned by each subtask below `parallelism` in `owners`; those of
/// removed subtasks are not counted.
std::vector<std::uint32_t> counts_below(
    const std::vector<std::uint32_t>& owners, std::uint32_t parallelism) {
  std::vector<std::uint32_t> counts(parallelism, 0);
  for (std::uint32_t owner : owners) {
    if (owner < parallelism) ++counts[owner];
  }
  return counts;
}

/// The balanced quota of each subtask: floor(M/p), plus one for the M mod p
/// subtasks that own the most key groups now (lower index first on a tie).
/// A subtask that owns more than the floor keeps one more key group when it
/// gets the larger quota, so this choice keeps the most.
std::vector<std::uint32_t> balanced_quotas(
    const std::vector<std::uint32_t>& counts, std::uint32_t max_parallelism) {
  const auto parallelism = static_cast<std::uint32_t>(counts.size());
  std::vector<std::uint32_t> order(parallelism);
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(
      order.begin(), order.end(),
      [&](std::uint32_t a, std::uint32_t b) { return counts[a] > counts[b]; });
  std::vector<std::uint32_t> quotas(parallelism, max_parallelism / parallelism);
  for (std::uint32_t i = 0; i < max_parallelism % parallelism; ++i) {
    ++quotas[order[i]];
  }
  return quotas;
}

double sum_moved(const std::vector<std::uint32_t>& before,
                 const std::vector<std::uint32_t>& after,
                 std::span<const double> weights) {
  double moved = 0;
  for (std::size_t kg = 0; kg < before.size(); ++kg) {
    if (before[kg] != after[kg]) moved += weights[kg];
  }
  return moved;
}

}  // namespace

std::uint32_t moved_key_groups(const key_group_table& from,
                               const key_group_table& to) {
  assert(from.max_parallelism() == to.max_parallelism());
  std::uint32_t moved = 0;
  for (key_group kg = 0; kg < from.max_parallelism(); ++kg) {
    if (from.owner(kg) != to.owner(kg)) ++moved;
  }
  return moved;
}

std::uint32_t minimum_moved_key_groups(const key_group_table& current,
                                       std::uint32_t parallelism) {
  assert(parallelism >= 1 && parallelism <= current.max_parallelism());
  const std::vector<std::uint32_t> counts =
      counts_below(current.owners(), parallelism);
  const std::vector<std::uint32_t> quotas =
      balanced_quotas(counts, current.max_parallelism());
  std::uint32_t kept = 0;
  for (std::uint32_t i = 0; i < parallelism; ++i) {
    kept += std::min(counts[i], quotas[i]);
  }
  return current.max_parallelism() - kept;
}

result<key_group_table> plan_balanced_table(const key_group_table& current,
                                            std::uint32_t parallelism,
                                            std::uint64_t version) {
  if (status checked = check_target(current, parallelism); !checked.ok()) {
    return checked;
  }
  std::vector<std::uint32_t> owners = current.owners();
  const std::vector<std::uint32_t> quotas = balanced_quotas(
      counts_below(owners, parallelism), current.max_parallelism());
  // Each subtask keeps its lowest key groups up to its quota; the rest, and
  // all of a removed subtask's, are handed out in ascending order.
  std::vector<std::uint32_t> held(parallelism, 0);
  std::vector<key_group> released;
  for (key_group kg = 0; kg < owners.size(); ++kg) {
    const std::uint32_t owner = owners[kg];
    if (owner < parallelism && held[owner] < quotas[owner]) {
      ++held[owner];
    } else {
      released.push_back(kg);
    }
  }
  std::size_t next = 0;
  for (std::uint32_t subtask = 0; subtask < parallelism; ++subtask) {
    for (; held[subtask] < quotas[subtask]; ++held[subtask]) {
      assert(next < released.size());
      owners[released[next++]] = subtask;
    }
  }
  assert(next == released.size());
  return key_group_table::from_owners(std::move(owners), parallelism, version);
}

namespace {

/// Mutable state of one weighted plan: owners and per-subtask loads.
struct weighted_state {
  std::vector<std::uint32_t> owners;
  std::vector<double> loads;
  std::span<const double> weights;

  void assign(key_group kg, std::uint32_t subtask) {
    owners[kg] = subtask;
    loads[subtask] += weights[kg];
  }

  /// Key groups owned by `subtask`, lightest first (lower id on a tie).
  std::vector<key_group> owned_lightest_first(std::uint32_t subtask) const {
    std::vector<key_group> groups;
    for (key_group kg = 0; kg < owners.size(); ++kg) {
      if (owners[kg] == subtask) groups.push_back(kg);
    }
    std::stable_sort(
        groups.begin(), groups.end(),
        [&](key_group a, key_group b) { return weights[a] < weights[b]; });
    return groups;
  }

  /// Removes from `subtask` key groups whose weights add up to at least
  /// `excess`, with little weight to spare. Two candidates, the lighter
  /// wins: the lightest single key group that covers the excess, or the
  /// heaviest key group below what is left, again and again, closed if
  /// need be by the lightest remaining one that covers the rest.
  void shed(std::uint32_t subtask, double excess,
            std::vector<key_group>& released) {
    const std::vector<key_group> groups = owned_lightest_first(subtask);
    // First index in groups[0, end) whose weight is >= w.
    auto first_at_least = [&](double w, std::size_t end) {
      return static_cast<std::size_t>(
          std::lower_bound(
              groups.begin(), groups.begin() + static_cast<long>(end), w,
              [&](key_group kg, double v) { return weights[kg] < v; }) -
          groups.begin());
    };
    std::vector<bool> taken(groups.size(), false);
    std::vector<std::size_t> piecemeal;
    double left = excess;
    double piecemeal_weight = 0;
    auto take = [&](std::size_t i) {
      taken[i] = true;
      piecemeal.push_back(i);
      piecemeal_weight += weights[groups[i]];
      left -= weights[groups[i]];
    };
    // Taken indices only decrease, so everything below `end` is untaken.
    for (std::size_t end = groups.size(); left > 0;) {
      const std::size_t below = first_at_least(left, end);
      if (below == 0) break;
      take(below - 1);
      end = below - 1;
    }
    if (left > 0) {
      std::size_t cover = first_at_least(left, groups.size());
      while (cover < groups.size() && taken[cover]) ++cover;
      if (cover < groups.size()) take(cover);
    }
    const std::size_t single = first_at_least(excess, groups.size());
    std::vector<std::size_t> chosen = piecemeal;
    if (single < groups.size() &&
        (left > 0 || weights[groups[single]] < piecemeal_weight)) {
      chosen = {single};
    }
    for (std::size_t i : chosen) {
      loads[subtask] -= weights[groups[i]];
      released.push_back(groups[i]);
    }
  }

  std::uint32_t lightest() const {
    return static_cast<std::uint32_t>(
        std::min_element(loads.begin(), loads.end()) - loads.begin());
  }
  std::uint32_t heaviest() const {
    return static_cast<std::uint32_t>(
        std::max_element(loads.begin(), loads.end()) - loads.begin());
  }

  /// Lowers the heaviest subtask against the lightest, by moving one key
  /// group or swapping two, whichever leaves the larger of the two lowest;
  /// false when nothing lowers it. A swap of a (heaviest) for b (lightest)
  /// shifts w(a) - w(b): the best shift is half the gap between them.
  bool improve_once() {
    const std::uint32_t from = heaviest();
    const std::uint32_t to = lightest();
    if (from == to) return false;
    const std::vector<key_group> givers = owned_lightest_first(from);
    const std::vector<key_group> takers = owned_lightest_first(to);
    const double gap = loads[from] - loads[to];
    double best_peak = loads[from];
    key_group give = 0;
    std::optional<key_group> take;
    auto consider = [&](key_group a, std::optional<key_group> b) {
      const double shift = weights[a] - (b ? weights[*b] : 0.0);
      if (shift <= 0 || shift >= gap) return;
      const double peak = std::max(loads[from] - shift, loads[to] + shift);
      if (peak < best_peak) {
        best_peak = peak;
        give = a;
        take = b;
      }
    };
    for (key_group a : givers) {
      consider(a, std::nullopt);
      // The taker whose weight is nearest w(a) - gap / 2, from either side.
      auto near = std::lower_bound(
          takers.begin(), takers.end(), weights[a] - gap / 2,
          [&](key_group kg, double w) { return weights[kg] < w; });
      if (near != takers.end()) consider(a, *near);
      if (near != takers.begin()) consider(a, *(near - 1));
    }
    if (best_peak >= loads[from]) return false;
    loads[from] -= weights[give];
    assign(give, to);
    if (take) {
      loads[to] -= weights[*take];
      assign(*take, from);
    }
    return true;
  }
};

status check_weights(const key_group_table& current,
                     std::span<const double> weights, double tolerance) {
  if (weights.size() != current.max_parallelism()) {
    return {errc::invalid_argument,
            "expected one weight per key group (" +
                std::to_string(current.max_parallelism()) + "), got " +
                std::to_string(weights.size())};
  }
  for (std::size_t kg = 0; kg < weights.size(); ++kg) {
    if (!std::isfinite(weights[kg]) || weights[kg] < 0) {
      return {errc::invalid_argument, "the weight of key group " +
                                          std::to_string(kg) +
                                          " must be finite and >= 0, got " +
                                          std::to_string(weights[kg])};
    }
  }
  if (!std::isfinite(tolerance) || tolerance < 0) {
    return {errc::invalid_argument, "tolerance must be finite and >= 0, got " +
                                        std::to_string(tolerance)};
  }
  return status::success();
}

}  // namespace

result<weighted_plan> plan_weighted_table(const key_group_table& current,
                                          std::span<const double> weights,
                                          std::uint32_t parallelism,
                                          std::uint64_t version,
                                          double tolerance) {
  if (status checked = check_target(current, parallelism); !checked.ok()) {
    return checked;
  }
  if (status checked = check_weights(current, weights, tolerance);
      !checked.ok()) {
    return checked;
  }
  const std::vector<std::uint32_t> before = current.owners();
  const double total = std::accumulate(weights.begin(), weights.end(), 0.0);
  const double heaviest_group =
      *std::max_element(weights.begin(), weights.end());
  const double bound = std::max(total / parallelism, heaviest_group);
  if (total <= 0) {
    result<key_group_table> table =
        plan_balanced_table(current, parallelism, version);
    if (!table) return table.error();
    const std::uint32_t moved = moved_key_groups(current, *table);
    return weighted_plan{std::move(*table), 0, 0, 0, 0, moved};
  }
  weighted_state state{before, std::vector<double>(parallelism, 0), weights};
  std::vector<key_group> released;
  for (key_group kg = 0; kg < before.size(); ++kg) {
    if (before[kg] < parallelism) {
      state.loads[before[kg]] += weights[kg];
    } else {
      released.push_back(kg);
    }
  }
  const double cap = bound * (1 + tolerance);
  for (std::uint32_t subtask = 0; subtask < parallelism; ++subtask) {
    if (state.loads[subtask] > cap) {
      state.shed(subtask, state.loads[subtask] - cap, released);
    }
  }
  // Heaviest first to the lightest subtask (longest processing time first).
  std::stable_sort(
      released.begin(), released.end(),
      [&](key_group a, key_group b) { return weights[a] > weights[b]; });
  for (key_group kg : released) state.assign(kg, state.lightest());
  // Each step lowers the maximum, so this ends; the bound keeps it cheap.
  for (std::uint32_t step = 0; step < before.size(); ++step) {
    if (state.loads[state.heaviest()] <= cap || !state.improve_once()) break;
  }
  const double moved_weight = sum_moved(before, state.owners, weights);
  const double heaviest_load = state.loads[state.heaviest()];
  result<key_group_table> table =
      key_group_table::from_owners(state.owners, parallelism, version);
  if (!table) return table.error();
  const std::uint32_t moved = moved_key_groups(current, *table);
  return weighted_plan{std::move(*table), total, heaviest_load, bound,
                       moved_weight,      moved};
}

}  // namespace stream
