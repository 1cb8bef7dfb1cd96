#pragma once

// The ordered byte key/value store under keyed state: one store per operator
// instance, with a LevelDB implementation for state larger than memory and an
// in-memory one that serves as the reference model in tests.
//
// This header includes no LevelDB header: the LevelDB store is reached only
// through `open_leveldb`.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stream/status.hpp"

namespace stream::state {

/// One put or erase of a `kv_store::write` batch.
struct kv_write {
  /// What the write does to `key`.
  enum class op : std::uint8_t { put, erase } kind = op::put;
  std::string key;    ///< Any bytes, including NUL and 0xFF.
  std::string value;  ///< The new value of a put; ignored by an erase.
};

/// A consistent, read-only view of a store at one moment: later writes to
/// the store do not show in it. May be read from another thread than the
/// store's while the store goes on being written, and keeps what it needs
/// alive even when the store is destroyed first.
class kv_snapshot {
 public:
  virtual ~kv_snapshot() = default;
  /// Calls fn(key, value) for each key in [begin, end) in key order, as
  /// `kv_store::scan`.
  virtual status scan(
      std::string_view begin, std::string_view end,
      const std::function<bool(std::string_view, std::string_view)>& fn) = 0;
};

/// Ordered byte-string key/value store of one operator instance (keys compare
/// bytewise, unsigned, a shorter key before its extensions; the empty key is
/// the smallest and may be stored).
///
/// Not thread safe; used by one task. Ranges are half-open, [begin, end), and
/// an empty `end` means "to the end"; a range with a non-empty `end` <=
/// `begin` is empty. Failures of the storage are `errc::io_error` with the
/// store's path in the message; no exception escapes, except one thrown by a
/// `scan` callback.
class kv_store {
 public:
  virtual ~kv_store() = default;

  /// Looks `key` up: true and `value` replaced when found, false when absent;
  /// io_error on failure. `value` is unspecified unless true is returned.
  virtual result<bool> get(std::string_view key, std::string& value) = 0;

  /// Sets `key` to `value`, replacing any previous value.
  virtual status put(std::string_view key, std::string_view value) = 0;

  /// Removes `key`; succeeds when it is absent.
  virtual status erase(std::string_view key) = 0;

  /// Applies several puts/erases atomically (a LevelDB WriteBatch): after a
  /// failure none is visible. Later writes to the same key win.
  virtual status write(const std::vector<kv_write>& writes) = 0;

  /// Calls fn(key, value) for each key in [begin, end) in key order; an empty
  /// `end` means "to the end". Stops early when fn returns false. Views are
  /// valid only during the call; fn must not modify the store. The keys seen
  /// are those present when the scan started. An exception thrown by fn
  /// propagates to the caller.
  virtual status scan(
      std::string_view begin, std::string_view end,
      const std::function<bool(std::string_view, std::string_view)>& fn) = 0;

  /// Deletes every key in [begin, end) (empty end = to the end); returns the
  /// number deleted. Not atomic for large ranges: after an error, part of the
  /// range may be gone.
  virtual result<std::uint64_t> erase_range(std::string_view begin,
                                            std::string_view end) = 0;

  /// Approximate bytes on disk of [begin, end) (LevelDB
  /// GetApproximateSizes), for metrics. Data still in the write buffer is not
  /// counted by LevelDB; 0 when unknown.
  virtual std::uint64_t approximate_size(std::string_view begin,
                                         std::string_view end) = 0;

  /// The directory the store lives in; empty for a memory store.
  virtual const std::string& path() const noexcept = 0;

  /// A snapshot of the store as it is now (LevelDB: `GetSnapshot`, cheap;
  /// the memory store copies its map).
  virtual std::unique_ptr<kv_snapshot> snapshot() = 0;
};

/// Options of `open_leveldb`, with their defaults.
struct leveldb_options {
  /// Delete any existing database at `path` first (no restore yet).
  bool wipe = true;
  /// Bytes of the memtable before it is written to a level-0 file (LevelDB
  /// clamps it to at least 64 KiB).
  std::size_t write_buffer_bytes = 16 << 20;
  /// Bytes of the LRU cache of uncompressed blocks, private to the store.
  std::size_t block_cache_bytes = 32 << 20;
  /// fsync every write (off: checkpoints will sync explicitly).
  bool sync = false;
  /// Delete the database once the store and every snapshot of it are gone:
  /// working state whose durable copy lives in checkpoints.
  bool destroy_on_close = false;
};

/// Opens (creating parent directories as needed) a LevelDB database in
/// directory `path`. The store owns the database and closes it when
/// destroyed; at most one open store per directory.
///
/// Errors: io_error with the path and LevelDB's message (e.g. the directory is
/// not writable, or is locked by another open store); invalid_argument when
/// `path` is empty.
result<std::unique_ptr<kv_store>> open_leveldb(
    const std::string& path, const leveldb_options& options = {});

/// Removes a store's directory and everything in it (no error when absent).
/// Fails with io_error, removing nothing, while a store is open on `path`;
/// invalid_argument when `path` is empty.
status destroy_leveldb(const std::string& path);

/// A `kv_store` in a `std::map`: the reference model of the LevelDB store in
/// tests, and a store for state that fits in memory. Never fails.
/// `approximate_size` is the sum of key and value sizes in the range.
class memory_kv_store final : public kv_store {
 public:
  result<bool> get(std::string_view key, std::string& value) override {
    const auto it = map_.find(key);
    if (it == map_.end()) return false;
    value = it->second;
    return true;
  }

  status put(std::string_view key, std::string_view value) override {
    const auto it = map_.lower_bound(key);
    if (it != map_.end() && it->first == key) {
      it->second = value;
    } else {
      map_.emplace_hint(it, key, value);
    }
    return {};
  }

  status erase(std::string_view key) override {
    const auto it = map_.find(key);
    if (it != map_.end()) map_.erase(it);
    return {};
  }

  status write(const std::vector<kv_write>& writes) override {
    for (const kv_write& w : writes) {
      const status s =
          w.kind == kv_write::op::put ? put(w.key, w.value) : erase(w.key);
      if (!s.ok()) return s;
    }
    return {};
  }

  status scan(std::string_view begin, std::string_view end,
              const std::function<bool(std::string_view, std::string_view)>& fn)
      override {
    const auto [first, last] = bounds(begin, end);
    for (auto it = first; it != last; ++it) {
      if (!fn(it->first, it->second)) break;
    }
    return {};
  }

  result<std::uint64_t> erase_range(std::string_view begin,
                                    std::string_view end) override {
    const auto [first, last] = bounds(begin, end);
    std::uint64_t count = 0;
    for (auto it = first; it != last; ++it) ++count;
    map_.erase(first, last);
    return count;
  }

  std::uint64_t approximate_size(std::string_view begin,
                                 std::string_view end) override {
    const auto [first, last] = bounds(begin, end);
    std::uint64_t bytes = 0;
    for (auto it = first; it != last; ++it) {
      bytes += it->first.size() + it->second.size();
    }
    return bytes;
  }

  const std::string& path() const noexcept override { return path_; }

  std::unique_ptr<kv_snapshot> snapshot() override {
    return std::make_unique<copy_snapshot>(map_);
  }

 private:
  using map_type = std::map<std::string, std::string, std::less<>>;

  std::pair<map_type::iterator, map_type::iterator> bounds(
      std::string_view begin, std::string_view end) {
    const auto first = map_.lower_bound(begin);
    if (end.empty()) return {first, map_.end()};
    if (end <= begin) return {first, first};
    return {first, map_.lower_bound(end)};
  }

  class copy_snapshot final : public kv_snapshot {
   public:
    explicit copy_snapshot(map_type map) : map_(std::move(map)) {}
    status scan(std::string_view begin, std::string_view end,
                const std::function<bool(std::string_view, std::string_view)>&
                    fn) override {
      auto first = map_.lower_bound(begin);
      auto last = end.empty() ? map_.end() : map_.lower_bound(end);
      if (!end.empty() && end <= begin) return {};
      for (auto it = first; it != last; ++it) {
        if (!fn(it->first, it->second)) break;
      }
      return {};
    }

   private:
    map_type map_;
  };

  map_type map_;
  std::string path_;  ///< Always empty.
};

/// Returns an empty `memory_kv_store`.
inline std::unique_ptr<kv_store> make_memory_kv_store() {
  return std::make_unique<memory_kv_store>();
}

}  // namespace stream::state
