// The LevelDB implementation of `kv_store`, reached only through
// `open_leveldb` so that no LevelDB header leaks into the public API.

#include <leveldb/cache.h>
#include <leveldb/db.h>
#include <leveldb/filter_policy.h>
#include <leveldb/iterator.h>
#include <leveldb/options.h>
#include <leveldb/write_batch.h>

#include <cassert>
#include <filesystem>
#include <system_error>
#include <utility>

#include "stream/state/kv_store.hpp"

namespace stream::state {
namespace {

// Keys are arbitrary bytes (NUL, 0xFF): always pass sizes, never c_str().
leveldb::Slice to_slice(std::string_view bytes) {
  return {bytes.data(), bytes.size()};
}

std::string_view to_view(const leveldb::Slice& bytes) {
  return {bytes.data(), bytes.size()};
}

status leveldb_error(std::string_view what, const std::string& path,
                     const leveldb::Status& s) {
  std::string message{"leveldb "};
  message += what;
  message += " '";
  message += path;
  message += "': ";
  message += s.ToString();
  return {errc::io_error, std::move(message)};
}

// Keys per WriteBatch in erase_range: bounds the memory of one batch and the
// memtable growth of one write, while amortising the per-write cost.
constexpr int erase_batch_keys = 1000;

// Bloom filter bits per key (about 1% false positives): keyed state often
// looks up keys it has never seen, and the filter saves a table read per
// level for each such miss.
constexpr int bloom_bits_per_key = 10;

// The open database and what it uses, shared by the store and its
// snapshots: the last owner closes it (and deletes it when asked to).
struct database {
  std::string path;
  // Declared before db so that they are destroyed after it: the database
  // uses both until it is closed.
  std::unique_ptr<leveldb::Cache> cache;
  std::unique_ptr<const leveldb::FilterPolicy> filter;
  std::unique_ptr<leveldb::DB> db;
  bool destroy_on_close = false;

  ~database() {
    db.reset();
    if (!destroy_on_close) return;
    // Best effort: working state; its durable copy is in checkpoints.
    leveldb::DestroyDB(path, leveldb::Options{});
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

class leveldb_snapshot final : public kv_snapshot {
 public:
  explicit leveldb_snapshot(std::shared_ptr<database> db)
      : db_(std::move(db)), snapshot_(db_->db->GetSnapshot()) {}
  ~leveldb_snapshot() override { db_->db->ReleaseSnapshot(snapshot_); }
  leveldb_snapshot(const leveldb_snapshot&) = delete;
  leveldb_snapshot& operator=(const leveldb_snapshot&) = delete;

  status scan(std::string_view begin, std::string_view end,
              const std::function<bool(std::string_view, std::string_view)>& fn)
      override {
    if (!end.empty() && end <= begin) return {};
    leveldb::ReadOptions options;
    options.fill_cache = false;
    options.snapshot = snapshot_;
    const std::unique_ptr<leveldb::Iterator> it{db_->db->NewIterator(options)};
    it->Seek(to_slice(begin));
    for (; it->Valid() && (end.empty() || it->key().compare(to_slice(end)) < 0);
         it->Next()) {
      if (!fn(to_view(it->key()), to_view(it->value()))) return {};
    }
    if (!it->status().ok())
      return leveldb_error("snapshot scan in", db_->path, it->status());
    return {};
  }

 private:
  std::shared_ptr<database> db_;
  const leveldb::Snapshot* snapshot_;
};

class leveldb_store final : public kv_store {
 public:
  leveldb_store(std::shared_ptr<database> db, bool sync)
      : path_(db->path), holder_(std::move(db)), db_(holder_->db.get()) {
    assert(db_ != nullptr);
    write_options_.sync = sync;
  }

  std::unique_ptr<kv_snapshot> snapshot() override {
    return std::make_unique<leveldb_snapshot>(holder_);
  }

  result<bool> get(std::string_view key, std::string& value) override {
    // Default ReadOptions fill the block cache: keyed state reads the same
    // hot keys again and again.
    const leveldb::Status s =
        db_->Get(leveldb::ReadOptions{}, to_slice(key), &value);
    if (s.ok()) return true;
    if (s.IsNotFound()) return false;
    return leveldb_error("get in", path_, s);
  }

  status put(std::string_view key, std::string_view value) override {
    return check("put in",
                 db_->Put(write_options_, to_slice(key), to_slice(value)));
  }

  status erase(std::string_view key) override {
    return check("erase in", db_->Delete(write_options_, to_slice(key)));
  }

  status write(const std::vector<kv_write>& writes) override {
    leveldb::WriteBatch batch;
    for (const kv_write& w : writes) {
      if (w.kind == kv_write::op::put) {
        batch.Put(to_slice(w.key), to_slice(w.value));
      } else {
        batch.Delete(to_slice(w.key));
      }
    }
    return check("write batch in", db_->Write(write_options_, &batch));
  }

  status scan(std::string_view begin, std::string_view end,
              const std::function<bool(std::string_view, std::string_view)>& fn)
      override {
    if (!end.empty() && end <= begin) return {};
    const std::unique_ptr<leveldb::Iterator> it = range_iterator(begin);
    for (; it->Valid() && in_range(it->key(), end); it->Next()) {
      if (!fn(to_view(it->key()), to_view(it->value()))) return {};
    }
    return check("scan in", it->status());
  }

  result<std::uint64_t> erase_range(std::string_view begin,
                                    std::string_view end) override {
    if (!end.empty() && end <= begin) return std::uint64_t{0};
    // The iterator reads a snapshot, so deleting behind it is safe.
    const std::unique_ptr<leveldb::Iterator> it = range_iterator(begin);
    leveldb::WriteBatch batch;
    int batched = 0;
    std::uint64_t erased = 0;
    const auto flush = [&] {
      const status s =
          check("erase_range in", db_->Write(write_options_, &batch));
      batch.Clear();
      batched = 0;
      return s;
    };
    for (; it->Valid() && in_range(it->key(), end); it->Next()) {
      batch.Delete(it->key());  // Copies the key.
      ++erased;
      if (++batched < erase_batch_keys) continue;
      if (status s = flush(); !s.ok()) return s;
    }
    if (status s = check("erase_range in", it->status()); !s.ok()) return s;
    if (batched > 0) {
      if (status s = flush(); !s.ok()) return s;
    }
    return erased;
  }

  std::uint64_t approximate_size(std::string_view begin,
                                 std::string_view end) override {
    std::string limit{end};
    if (end.empty()) {
      // No key sorts after every key; the last stored key plus a NUL is the
      // tightest exclusive limit that still covers it.
      const std::unique_ptr<leveldb::Iterator> it{
          db_->NewIterator(scan_options())};
      it->SeekToLast();
      if (!it->Valid()) return 0;
      limit.assign(it->key().data(), it->key().size());
      limit.push_back('\0');
    }
    if (limit <= begin) return 0;
    const leveldb::Range range{to_slice(begin), to_slice(limit)};
    std::uint64_t bytes = 0;
    db_->GetApproximateSizes(&range, 1, &bytes);
    return bytes;
  }

  const std::string& path() const noexcept override { return path_; }

 private:
  // Scans touch each block once; keeping them out of the block cache keeps
  // the blocks that point lookups reuse.
  static leveldb::ReadOptions scan_options() {
    leveldb::ReadOptions options;
    options.fill_cache = false;
    return options;
  }

  std::unique_ptr<leveldb::Iterator> range_iterator(std::string_view begin) {
    std::unique_ptr<leveldb::Iterator> it{db_->NewIterator(scan_options())};
    it->Seek(to_slice(begin));
    return it;
  }

  static bool in_range(const leveldb::Slice& key, std::string_view end) {
    return end.empty() || key.compare(to_slice(end)) < 0;
  }

  status check(std::string_view what, const leveldb::Status& s) const {
    if (s.ok()) return {};
    return leveldb_error(what, path_, s);
  }

  std::string path_;
  std::shared_ptr<database> holder_;
  leveldb::DB* db_;
  leveldb::WriteOptions write_options_;
};

status empty_path_error() {
  return {errc::invalid_argument, "leveldb store path is empty"};
}

}  // namespace

result<std::unique_ptr<kv_store>> open_leveldb(const std::string& path,
                                               const leveldb_options& options) {
  if (path.empty()) return empty_path_error();
  if (options.wipe) {
    // DestroyDB takes the LOCK first, so it refuses to wipe a store that is
    // open, and it deletes only LevelDB's own files.
    const leveldb::Status s = leveldb::DestroyDB(path, leveldb::Options{});
    if (!s.ok()) return leveldb_error("wipe", path, s);
  }
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    return status{errc::io_error,
                  "leveldb create directory '" + path + "': " + ec.message()};
  }
  std::unique_ptr<leveldb::Cache> cache{
      leveldb::NewLRUCache(options.block_cache_bytes)};
  std::unique_ptr<const leveldb::FilterPolicy> filter{
      leveldb::NewBloomFilterPolicy(bloom_bits_per_key)};
  leveldb::Options db_options;
  db_options.create_if_missing = true;
  db_options.write_buffer_size = options.write_buffer_bytes;
  db_options.block_cache = cache.get();
  db_options.filter_policy = filter.get();
  leveldb::DB* raw_db = nullptr;
  const leveldb::Status s = leveldb::DB::Open(db_options, path, &raw_db);
  auto db = std::make_shared<database>();
  db->path = path;
  db->cache = std::move(cache);
  db->filter = std::move(filter);
  db->db.reset(raw_db);
  if (!s.ok()) return leveldb_error("open", path, s);
  db->destroy_on_close = options.destroy_on_close;
  std::unique_ptr<kv_store> store =
      std::make_unique<leveldb_store>(std::move(db), options.sync);
  return store;
}

status destroy_leveldb(const std::string& path) {
  if (path.empty()) return empty_path_error();
  // DestroyDB first: it fails while the store is open (LOCK held), before
  // anything is removed.
  const leveldb::Status s = leveldb::DestroyDB(path, leveldb::Options{});
  if (!s.ok()) return leveldb_error("destroy", path, s);
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) {
    return {errc::io_error, "leveldb destroy '" + path + "': " + ec.message()};
  }
  return {};
}

}  // namespace stream::state
