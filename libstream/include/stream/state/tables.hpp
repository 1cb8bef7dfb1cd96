#pragma once

// Keyed state storage of one operator instance. A `table<K, N, V>` maps
// (key group, key, namespace) to a value; the namespace is the window of
// window state, or `void_namespace`. Two backends implement it:
// - memory: one hash map per key group, values stored as objects;
// - leveldb: one database per operator instance, keys
//   [key group u16 big-endian][state id u16 big-endian][key][namespace]
//   (codec encoding), so one key-group range of one state is one contiguous
//   scan; decoded values are cached and written back in batches.
// Both offer what checkpoints and rescaling need: visit or drop exactly one
// key-group range.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "stream/checkpoint/snapshot.hpp"
#include "stream/codec.hpp"
#include "stream/detail/flat_map.hpp"
#include "stream/event_time.hpp"
#include "stream/key_groups.hpp"
#include "stream/options.hpp"
#include "stream/state/kv_store.hpp"
#include "stream/status.hpp"

namespace stream {

STREAM_FIELDS(time_window, start, end);

}  // namespace stream

namespace stream::state {

/// The namespace of state that is not scoped to a window.
struct void_namespace {
  std::uint8_t unused = 0;
  friend bool operator==(const void_namespace&,
                         const void_namespace&) = default;
};
STREAM_FIELDS(void_namespace, unused);

/// Hash of a namespace, mixed into the key hash of the memory backend.
inline std::uint64_t namespace_hash(const void_namespace&) { return 0; }
inline std::uint64_t namespace_hash(const time_window& w) {
  return static_cast<std::uint64_t>(w.end) * 0x9E3779B97F4A7C15ULL ^
         static_cast<std::uint64_t>(w.start);
}
inline std::uint64_t namespace_hash(std::int64_t v) {
  return static_cast<std::uint64_t>(v) * 0x9E3779B97F4A7C15ULL;
}

/// A storage failure inside an operator (disk full, corrupt database); fails
/// the task with the message.
class state_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The type-independent part of a table: what checkpoints need.
class table_base {
 public:
  virtual ~table_base() = default;

  /// Checkpoint, synchronous phase of a memory table: encodes every entry
  /// of `owned` into `out` as state `state`. Persistent tables are
  /// snapshotted by the backend instead (`collect_dirty` plus a database
  /// snapshot), so they keep this no-op.
  virtual void snapshot_to(checkpoint::snapshot_builder& /*out*/,
                           std::uint32_t /*state*/,
                           const key_group_set& /*owned*/) {}

  /// Restore: adds one entry encoded as in a checkpoint (key: codec of the
  /// key then of the namespace; value: codec of the value).
  virtual status load(key_group kg, std::string_view key,
                      std::string_view value) = 0;

  /// Makes every change durable in the backend (no-op in memory).
  virtual void flush() {}

  /// Entries changed in memory and not yet in the database, by database
  /// key: the new value, or none when erased. Persistent tables only.
  using overrides = std::map<std::string, std::optional<std::string>>;
  virtual void collect_dirty(overrides& /*out*/) const {}
};

/// Keyed values of one state of one operator instance.
template <class K, class N, class V>
class table : public table_base {
 public:
  using visitor = std::function<void(key_group, const K&, const N&, const V&)>;

  /// The value, or null when absent. Valid until the next call on the table.
  virtual const V* find(key_group kg, const K& key, const N& ns) = 0;

  /// The value for modification, default-constructed (and `created` set)
  /// when absent. Valid until the next call on the table.
  virtual V& upsert(key_group kg, const K& key, const N& ns, bool& created) = 0;

  /// Removes the value if present.
  virtual void erase(key_group kg, const K& key, const N& ns) = 0;

  /// Calls `fn` for every entry whose key group lies in `range`; `fn` must
  /// not modify the table.
  virtual void for_each(key_group_range range, const visitor& fn) = 0;

  /// Removes every entry whose key group lies in `range`.
  virtual void drop(key_group_range range) = 0;
};

/// Splits an encoded checkpoint key into the key and the namespace.
template <class K, class N>
status decode_entry_key(std::string_view bytes, std::size_t skip, K& key,
                        N& ns) {
  detail::reader in(
      {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()},
      skip);
  auto st = codec<K>::decode(in, key);
  if (st.ok()) st = codec<N>::decode(in, ns);
  if (st.ok()) st = in.expect_end("state key");
  return st;
}

/// Key of an entry in an in-memory map: the user key and the namespace.
template <class K, class N>
struct entry_key {
  K key;
  N ns;
  friend bool operator==(const entry_key&, const entry_key&) = default;
};

template <class K, class N>
struct entry_hash {
  std::size_t operator()(const entry_key<K, N>& e) const {
    return static_cast<std::size_t>(hash_key(e.key) ^ namespace_hash(e.ns));
  }
};

/// Hash of a user key inside one key group's map: std::hash where it
/// exists (cheap for integers; flat_map spreads it), else the key-group hash.
template <class K>
struct key_hash {
  std::size_t operator()(const K& key) const {
    if constexpr (requires { std::hash<K>{}(key); })
      return std::hash<K>{}(key);
    else
      return hash_key(key);
  }
};

/// In-memory backend. Per key group, the namespaces in use (windows are few
/// at a time), each with an open-addressing map of keys: entries carry no
/// namespace, and a lookup is one short scan plus one probe. Entries of one
/// key group are few, so a vector of namespaces beats a second hash map.
template <class K, class N, class V>
class memory_table final : public table<K, N, V> {
 public:
  using map_type = detail::flat_map<K, V, key_hash<K>>;

  explicit memory_table(std::uint32_t max_parallelism)
      : groups_(max_parallelism) {}

  const V* find(key_group kg, const K& key, const N& ns) override {
    auto* m = map_of(kg, ns);
    return m == nullptr ? nullptr : m->find(key);
  }

  V& upsert(key_group kg, const K& key, const N& ns, bool& created) override {
    auto* m = map_of(kg, ns);
    if (m == nullptr) {
      auto& g = groups_[kg];
      g.push_back({ns, {}});
      m = &g.back().map;
    }
    return m->try_emplace(key, created);
  }

  void erase(key_group kg, const K& key, const N& ns) override {
    auto& g = groups_[kg];
    for (auto it = g.begin(); it != g.end(); ++it) {
      if (!(it->ns == ns)) continue;
      it->map.erase(key);
      if (it->map.empty()) g.erase(it);
      return;
    }
  }

  void for_each(key_group_range range,
                const typename table<K, N, V>::visitor& fn) override {
    for (auto kg = range.start; kg < range.end && kg < groups_.size(); ++kg) {
      for (const auto& m : groups_[kg])
        m.map.for_each([&](const K& k, const V& v) { fn(kg, k, m.ns, v); });
    }
  }

  void drop(key_group_range range) override {
    for (auto kg = range.start; kg < range.end && kg < groups_.size(); ++kg)
      groups_[kg] = {};
  }

  void snapshot_to(checkpoint::snapshot_builder& out, std::uint32_t state,
                   const key_group_set& owned) override {
    owned.for_each([&](key_group kg) {
      if (kg >= groups_.size()) return;
      for (const auto& m : groups_[kg]) {
        m.map.for_each([&](const K& k, const V& v) {
          out.add_entry(state, kg, k, m.ns, v);
        });
      }
    });
  }

  status load(key_group kg, std::string_view key,
              std::string_view value) override {
    if (kg >= groups_.size())
      return {errc::malformed_data, "checkpointed key group " +
                                        std::to_string(kg) +
                                        " is beyond the max parallelism " +
                                        std::to_string(groups_.size())};
    K k{};
    N ns{};
    if (auto st = decode_entry_key(key, 0, k, ns); !st.ok()) return st;
    bool created = false;
    auto& v = upsert(kg, k, ns, created);
    return checkpoint::decode_all(value, v);
  }

 private:
  struct ns_map {
    N ns;
    map_type map;
  };

  map_type* map_of(key_group kg, const N& ns) {
    for (auto& m : groups_[kg]) {
      if (m.ns == ns) return &m.map;
    }
    return nullptr;
  }

  /// Per key group, the namespaces in use with their maps.
  std::vector<std::vector<ns_map>> groups_;
};

/// Bytes of the LevelDB key prefix: key group and state id, big-endian.
inline void append_prefix(std::string& out, key_group kg, std::uint16_t id) {
  out.push_back(static_cast<char>((kg >> 8) & 0xff));
  out.push_back(static_cast<char>(kg & 0xff));
  out.push_back(static_cast<char>(id >> 8));
  out.push_back(static_cast<char>(id & 0xff));
}

/// LevelDB backend: entries encoded with the codec; a bounded write-back
/// cache of decoded values absorbs repeated access to hot keys (the cache is
/// written back in one batch when full, on `flush` and before scans).
template <class K, class N, class V>
class leveldb_table final : public table<K, N, V> {
 public:
  leveldb_table(kv_store& store, std::uint16_t id, std::size_t cache_entries)
      : store_(&store), id_(id), capacity_(cache_entries) {}

  ~leveldb_table() override {
    // Best effort: a destroyed operator's state is gone with its database
    // unless a checkpoint flushed it before.
    try {
      flush();
    } catch (const state_error&) {  // NOLINT(bugprone-empty-catch)
    }
  }

  const V* find(key_group kg, const K& key, const N& ns) override {
    auto& s = slot(kg, key, ns);
    return s.present ? &s.value : nullptr;
  }

  V& upsert(key_group kg, const K& key, const N& ns, bool& created) override {
    auto& s = slot(kg, key, ns);
    created = !s.present;
    if (created) {
      s.value = V{};
      s.present = true;
    }
    s.dirty = true;
    return s.value;
  }

  void erase(key_group kg, const K& key, const N& ns) override {
    auto& s = slot(kg, key, ns);
    if (!s.stored) {
      // Never written to the database: forgetting it is enough.
      cache_.erase(entry_key<K, N>{key, ns});
      return;
    }
    s.present = false;
    s.value = V{};
    s.dirty = true;
  }

  void for_each(key_group_range range,
                const typename table<K, N, V>::visitor& fn) override {
    flush();
    for (auto kg = range.start; kg < range.end; ++kg) {
      std::string lo, hi;
      append_prefix(lo, kg, id_);
      append_prefix(hi, kg, static_cast<std::uint16_t>(id_ + 1));
      K key{};
      N ns{};
      V value{};
      auto st =
          store_->scan(lo, hi, [&](std::string_view k, std::string_view v) {
            decode_key(k, key, ns);
            decode(v, value);
            fn(kg, key, ns, value);
            return true;
          });
      check(st);
    }
  }

  void drop(key_group_range range) override {
    flush();
    cache_.clear();
    for (auto kg = range.start; kg < range.end; ++kg) {
      std::string lo, hi;
      append_prefix(lo, kg, id_);
      append_prefix(hi, kg, static_cast<std::uint16_t>(id_ + 1));
      auto n = store_->erase_range(lo, hi);
      if (!n.ok()) check(n.error());
    }
  }

  void collect_dirty(table_base::overrides& out) const override {
    for (const auto& [key, s] : cache_) {
      if (!s.dirty) continue;
      if (s.present)
        out[s.encoded_key] = encode(s.value);
      else
        out[s.encoded_key] = std::nullopt;
    }
  }

  status load(key_group kg, std::string_view key,
              std::string_view value) override {
    // Checkpoint bytes are the database's bytes: no decoding needed.
    std::string k;
    k.reserve(4 + key.size());
    append_prefix(k, kg, id_);
    k.append(key);
    cache_.clear();
    return store_->put(k, value);
  }

  void flush() override {
    std::vector<kv_write> writes;
    for (auto it = cache_.begin(); it != cache_.end();) {
      auto& s = it->second;
      if (!s.dirty) {
        ++it;
        continue;
      }
      kv_write w;
      w.key = s.encoded_key;
      if (s.present) {
        w.kind = kv_write::op::put;
        w.value = encode(s.value);
      } else {
        w.kind = kv_write::op::erase;
      }
      writes.push_back(std::move(w));
      s.dirty = false;
      s.stored = s.present;
      // A deleted entry need not stay cached.
      it = s.present ? std::next(it) : cache_.erase(it);
    }
    if (!writes.empty()) check(store_->write(writes));
  }

 private:
  struct cache_slot {
    V value{};
    bool present = false;
    bool dirty = false;
    bool stored = false;  ///< The database may hold the key.
    std::string encoded_key;
  };

  cache_slot& slot(key_group kg, const K& key, const N& ns) {
    entry_key<K, N> ek{key, ns};
    if (auto it = cache_.find(ek); it != cache_.end()) return it->second;
    if (cache_.size() >= capacity_) {
      // Epoch eviction: write everything back and start over. Simple, and
      // with a working set below the capacity it never happens.
      flush();
      cache_.clear();
    }
    cache_slot s;
    s.encoded_key = encode_key(kg, key, ns);
    std::string bytes;
    auto found = store_->get(s.encoded_key, bytes);
    if (!found.ok()) check(found.error());
    if (*found) {
      decode(bytes, s.value);
      s.present = true;
      s.stored = true;
    }
    return cache_.emplace(std::move(ek), std::move(s)).first->second;
  }

  std::string encode_key(key_group kg, const K& key, const N& ns) const {
    byte_buffer buf;
    codec<K>::encode(key, buf);
    codec<N>::encode(ns, buf);
    std::string out;
    out.reserve(4 + buf.size());
    append_prefix(out, kg, id_);
    out.append(reinterpret_cast<const char*>(buf.data()), buf.size());
    return out;
  }

  static std::span<const std::uint8_t> bytes_of(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
  }

  void decode_key(std::string_view k, K& key, N& ns) const {
    detail::reader in(bytes_of(k), 4);
    auto st = codec<K>::decode(in, key);
    if (st.ok()) st = codec<N>::decode(in, ns);
    if (st.ok()) st = in.expect_end("state key");
    check(st);
  }

  static std::string encode(const V& value) {
    byte_buffer buf;
    codec<V>::encode(value, buf);
    return {reinterpret_cast<const char*>(buf.data()), buf.size()};
  }

  static void decode(std::string_view bytes, V& value) {
    detail::reader in(bytes_of(bytes));
    auto st = codec<V>::decode(in, value);
    if (st.ok()) st = in.expect_end("state value");
    check(st);
  }

  static void check(const status& st) {
    if (!st.ok()) throw state_error{"keyed state: " + st.to_string()};
  }

  kv_store* store_;
  std::uint16_t id_;
  std::size_t capacity_;
  std::unordered_map<entry_key<K, N>, cache_slot, entry_hash<K, N>> cache_;
};

/// The keyed state of one operator instance: creates its tables in the
/// configured backend, snapshots them for checkpoints and restores them.
class keyed_backend {
 public:
  /// Opens the backend of `options.state_backend`; for LevelDB a fresh
  /// database in `<state_dir>/<job>/<instance>`, deleted again when the
  /// backend (and any snapshot still being written) is gone: it is working
  /// state, checkpoints hold the durable copy.
  static result<std::unique_ptr<keyed_backend>> open(
      const job_options& options, const std::string& instance);

  ~keyed_backend();

  bool persistent() const noexcept { return store_ != nullptr; }

  /// Creates the table of the state named `name` (names are unique per
  /// operator, at most 65535 of them). Restored entries of that name are
  /// loaded into it. Throws `state_error` on a duplicate name or restored
  /// entries that do not decode as this table's types. The table must not
  /// outlive the backend.
  template <class K, class N, class V>
  std::unique_ptr<table<K, N, V>> make_table(const std::string& name) {
    auto id = register_state(name);
    std::unique_ptr<table<K, N, V>> t;
    if (!store_)
      t = std::make_unique<memory_table<K, N, V>>(max_parallelism_);
    else
      t = std::make_unique<leveldb_table<K, N, V>>(*store_, id, cache_entries_);
    states_[id].table = t.get();
    load_pending(id);
    return t;
  }

  /// Checkpoint, synchronous phase: memory tables are encoded into
  /// `out.data`; LevelDB writes its caches back and takes a database
  /// snapshot that `out.deferred` scans on the background writer.
  void snapshot(checkpoint::pending_snapshot& out);

  /// Loads the keyed entries of `in` (state names starting with "__" are
  /// operators' own and skipped). Entries of states that no table was made
  /// for yet wait for `make_table`, and are kept in snapshots until then.
  status restore(const checkpoint::restored_state& in);

 private:
  struct raw_entry {
    key_group kg;
    std::string key;
    std::string value;
  };
  struct state_slot {
    std::string name;
    table_base* table = nullptr;
    bool claimed = false;  ///< A table was made (restore only reserves).
    std::vector<raw_entry> pending;  ///< Memory: restored, no table yet.
  };

  keyed_backend() = default;
  std::uint16_t register_state(const std::string& name);
  std::uint16_t slot_of(std::string_view name);
  void load_pending(std::uint16_t id);

  std::uint32_t max_parallelism_ = 128;
  std::size_t cache_entries_ = 0;
  std::unique_ptr<kv_store> store_;
  std::vector<state_slot> states_;
};

}  // namespace stream::state
