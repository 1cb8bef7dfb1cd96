#include <filesystem>

#include "stream/state/tables.hpp"

namespace stream::state {

namespace {

// Entries per LevelDB write batch on restore.
constexpr std::size_t restore_batch = 4096;

std::uint16_t be16(std::string_view bytes, std::size_t at) {
  return static_cast<std::uint16_t>(
      (static_cast<std::uint8_t>(bytes[at]) << 8) |
      static_cast<std::uint8_t>(bytes[at + 1]));
}

}  // namespace

result<std::unique_ptr<keyed_backend>> keyed_backend::open(
    const job_options& options, const std::string& instance) {
  std::unique_ptr<keyed_backend> b{new keyed_backend()};
  b->max_parallelism_ = options.max_parallelism;
  b->cache_entries_ = options.state_cache_entries;
  if (options.state_backend == "memory") return b;
  if (options.state_backend != "leveldb")
    return status{errc::invalid_config,
                  "unknown state backend '" + options.state_backend + "'"};
  auto path =
      std::filesystem::path{options.state_dir} / options.job_name / instance;
  leveldb_options lo;
  lo.destroy_on_close = true;
  auto store = open_leveldb(path.string(), lo);
  if (!store.ok()) return store.error();
  b->store_ = std::move(*store);
  return b;
}

keyed_backend::~keyed_backend() = default;

std::uint16_t keyed_backend::slot_of(std::string_view name) {
  for (std::size_t i = 0; i < states_.size(); ++i) {
    if (states_[i].name == name) return static_cast<std::uint16_t>(i);
  }
  if (states_.size() >= 0xffff)
    throw state_error{"too many keyed states in one operator"};
  states_.push_back({std::string{name}, nullptr, false, {}});
  return static_cast<std::uint16_t>(states_.size() - 1);
}

std::uint16_t keyed_backend::register_state(const std::string& name) {
  auto id = slot_of(name);
  if (states_[id].claimed)
    throw state_error{"keyed state '" + name + "' is declared twice"};
  states_[id].claimed = true;
  return id;
}

void keyed_backend::load_pending(std::uint16_t id) {
  auto& slot = states_[id];
  for (const auto& e : slot.pending) {
    if (auto st = slot.table->load(e.kg, e.key, e.value); !st.ok())
      throw state_error{"restoring keyed state '" + slot.name +
                        "': " + st.message()};
  }
  slot.pending = {};
}

void keyed_backend::snapshot(checkpoint::pending_snapshot& out) {
  auto& b = *out.data;
  if (!store_) {
    for (const auto& slot : states_) {
      auto index = b.state_index(slot.name);
      if (slot.table != nullptr) slot.table->snapshot_to(b, index, out.owned);
      for (const auto& e : slot.pending) b.add(index, e.kg, e.key, e.value);
    }
    return;
  }
  // LevelDB: the write-back caches are copied as they are (only their
  // changed entries, a bounded amount) instead of being written to the
  // database, which would turn every short-lived entry into a write and a
  // delete; the database itself is read through a snapshot. The slow part,
  // the merged scan, runs on the background writer while the task goes on.
  auto dirty = std::make_shared<table_base::overrides>();
  for (const auto& slot : states_) {
    if (slot.table != nullptr) slot.table->collect_dirty(*dirty);
  }
  std::shared_ptr<kv_snapshot> snap = store_->snapshot();
  std::vector<std::string> names;
  for (const auto& slot : states_) names.push_back(slot.name);
  out.deferred = [snap, dirty, names = std::move(names), owned = out.owned,
                  prev = std::move(out.deferred)](
                     checkpoint::snapshot_builder& builder) {
    if (prev) prev(builder);
    std::vector<std::uint32_t> index;
    for (const auto& n : names) index.push_back(builder.state_index(n));
    auto add = [&](std::string_view k, std::string_view v) {
      if (k.size() < 4) throw state_error{"state key shorter than its prefix"};
      auto id = be16(k, 2);
      if (id >= index.size())
        throw state_error{"state key of unknown state " + std::to_string(id)};
      builder.add(index[id], be16(k, 0), k.substr(4), v);
    };
    // Merge the database (in key order) with the cached changes (in key
    // order); a cached change wins, an erased one hides the stored value.
    auto next = dirty->begin();
    auto emit_dirty_below = [&](std::string_view k) {
      for (; next != dirty->end() && std::string_view{next->first} < k;
           ++next) {
        if (next->second) add(next->first, *next->second);
      }
    };
    // Only the owned key groups, as the memory backend: keys start with the
    // key group (16 bits, big-endian), so each run is one key range.
    for (const key_group_range& run : owned.runs()) {
      std::string lo;
      std::string hi;
      append_prefix(lo, run.start, 0);
      append_prefix(hi, run.end, 0);
      // Cached changes below the run belong to key groups not owned.
      for (; next != dirty->end() && std::string_view{next->first} < lo;)
        ++next;
      auto st = snap->scan(lo, hi, [&](std::string_view k, std::string_view v) {
        emit_dirty_below(k);
        if (next != dirty->end() && next->first == k) {
          if (next->second) add(k, *next->second);
          ++next;
        } else {
          add(k, v);
        }
        return true;
      });
      if (!st.ok())
        throw state_error{"snapshot of keyed state: " + st.message()};
      emit_dirty_below(hi);
    }
  };
}

status keyed_backend::restore(const checkpoint::restored_state& in) {
  status failed;
  std::vector<kv_write> batch;
  auto write_batch = [&] {
    if (batch.empty() || !failed.ok()) return;
    failed = store_->write(batch);
    batch.clear();
  };
  auto st = in.for_each([&](const std::string& name, key_group kg,
                            std::string_view key, std::string_view value) {
    if (!failed.ok() || name.starts_with("__")) return;
    if (kg >= max_parallelism_) {
      failed = {errc::malformed_data, "checkpointed key group " +
                                          std::to_string(kg) +
                                          " is beyond the max parallelism " +
                                          std::to_string(max_parallelism_)};
      return;
    }
    auto id = slot_of(name);
    auto& slot = states_[id];
    if (store_) {
      kv_write w;
      append_prefix(w.key, kg, id);
      w.key.append(key);
      w.value.assign(value);
      batch.push_back(std::move(w));
      if (batch.size() >= restore_batch) write_batch();
    } else if (slot.table != nullptr) {
      failed = slot.table->load(kg, key, value);
      if (!failed.ok())
        failed = {failed.code(),
                  "restoring keyed state '" + name + "': " + failed.message()};
    } else {
      slot.pending.push_back({kg, std::string{key}, std::string{value}});
    }
  });
  if (!st.ok()) return st;
  write_batch();
  return failed;
}

}  // namespace stream::state
