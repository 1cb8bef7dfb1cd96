#pragma once

// Checkpoint storage: the on-disk format of checkpoints and savepoints (see
// libstream/src/checkpoint/FORMAT.md), independent of the actor runtime.
//
// A checkpoint is a folder `<root>/chk-<id>` (savepoints: `sp-<id>`) holding
// one state file per stateful operator instance and a `_metadata` file that
// is written last, atomically (temp file, fsync, rename, fsync of the
// folder). A folder without a valid `_metadata` is not a checkpoint. Every
// state file carries CRC32C checksums (per key-group section and whole
// file), and the metadata records each file's size and checksum, so
// corruption and truncation are detected before any state is loaded.
//
// Keyed state is stored by key group in a backend-independent encoding, so a
// restore may read any key-group range from any file (rescaling) and may
// switch state backends.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "stream/key_groups.hpp"
#include "stream/status.hpp"

namespace stream::checkpoint {

/// CRC32C (Castagnoli) of `data`, continuing from `crc` (0 to start).
std::uint32_t crc32c(std::span<const std::uint8_t> data,
                     std::uint32_t crc = 0) noexcept;
inline std::uint32_t crc32c(std::string_view data,
                            std::uint32_t crc = 0) noexcept {
  return crc32c(
      {reinterpret_cast<const std::uint8_t*>(data.data()), data.size()}, crc);
}

/// Appends the keyed entries of one key group to a section blob. An entry is
/// [state index: varint][key length: varint][key][value length: varint]
/// [value]; the state index refers to `operator_snapshot::state_names`.
class entry_writer {
 public:
  explicit entry_writer(std::string& out) : out_(&out) {}
  void add(std::uint32_t state, std::string_view key, std::string_view value);
  std::uint64_t count() const noexcept { return count_; }

 private:
  std::string* out_;
  std::uint64_t count_ = 0;
};

/// Iterates the entries of a section blob written by `entry_writer`.
class entry_reader {
 public:
  explicit entry_reader(std::string_view bytes) : rest_(bytes) {}
  /// The next entry; false at the end. A malformed blob is
  /// `errc::malformed_data` in `error()` and ends the iteration.
  bool next(std::uint32_t& state, std::string_view& key,
            std::string_view& value);
  const status& error() const noexcept { return error_; }

 private:
  std::string_view rest_;
  status error_;
};

/// The keyed entries of one key group.
struct key_group_section {
  key_group group = 0;
  std::uint64_t entries = 0;
  std::string bytes;  ///< Entries as written by `entry_writer`.
};

/// The state of one operator instance at a checkpoint.
struct operator_snapshot {
  std::uint32_t operator_id = 0;
  std::uint32_t subtask = 0;
  /// Names of the keyed states; entries refer to them by index.
  std::vector<std::string> state_names;
  /// Keyed entries, by ascending key group; groups without entries may be
  /// left out.
  std::vector<key_group_section> key_groups;
  /// State that is not keyed (a source's position, a sink's pending
  /// transactions, an operator's watermark): opaque bytes of the operator.
  std::string operator_state;
};

/// Where one operator instance's state file is, and what it must contain.
struct state_handle {
  std::uint32_t operator_id = 0;
  std::uint32_t subtask = 0;
  std::string file;  ///< Name inside the checkpoint folder.
  std::uint64_t bytes = 0;
  std::uint32_t crc32c = 0;  ///< Of the whole file.
  /// The key groups the instance owned; the file holds no others.
  key_group_set key_groups;
  std::uint64_t entries = 0;  ///< Keyed entries in the file.
};

/// Writes `snapshot` to `<folder>/op-<operator>-<subtask>.state`, fsyncs it
/// and returns its handle. Key groups outside `owned`, or not strictly
/// ascending, are a programming error (`errc::invalid_argument`). Errors:
/// `errc::io_error` naming the file; a failed write removes the partial
/// file.
result<state_handle> write_state_file(const std::string& folder,
                                      const operator_snapshot& snapshot,
                                      const key_group_set& owned);

/// Reads the state file of `handle` in `folder`, checking its size and
/// checksums against the handle first, and returns the key groups that lie
/// in `wanted` plus the operator state and state names. Sections outside
/// `wanted` are covered by the whole-file checksum only. Errors:
/// `errc::not_found` (file missing), `errc::malformed_data` (truncated,
/// checksum mismatch, bad structure; the message names the file and what
/// is wrong).
result<operator_snapshot> read_state_file(const std::string& folder,
                                          const state_handle& handle,
                                          const key_group_set& wanted);

/// What a checkpoint or savepoint is.
enum class snapshot_kind : std::uint8_t { checkpoint, savepoint };

/// The `_metadata` of a checkpoint: what was taken, of which job, and where
/// every operator instance's state is.
struct metadata {
  /// 2: key groups as runs; 1 (still read): one range per subtask.
  static constexpr std::uint32_t current_format = 2;
  std::uint32_t format = current_format;
  std::string job;
  /// Identifies the topology (operators, ids, edges): a checkpoint of
  /// another topology is refused.
  std::string fingerprint;
  std::int64_t id = 0;
  snapshot_kind kind = snapshot_kind::checkpoint;
  std::int64_t created_ms = 0;  ///< Wall clock, ms since the epoch.
  std::uint32_t max_parallelism = 128;
  /// True for the checkpoint taken after every input ended: restoring it
  /// has nothing left to process.
  bool final = false;
  /// True for a final checkpoint whose input was ended by a stop request
  /// (drain), not by reaching its end: the sources stopped mid-input and
  /// every window already fired, so continuing from it would drop the
  /// rest of the input as late.
  bool drained = false;

  /// The version of the job's plan the checkpoint was taken with (format
  /// 2; 1 when absent).
  std::uint64_t plan_version = 1;

  struct operator_entry {
    std::uint32_t id = 0;
    std::string name;
    std::uint32_t parallelism = 1;
    std::vector<state_handle> subtasks;  ///< Ordered by subtask.
    /// The version of the key-group table the subtasks owned their key
    /// groups by (format 2; 1 when absent).
    std::uint64_t table_version = 1;
  };
  std::vector<operator_entry> operators;

  /// Total bytes of the state files.
  std::uint64_t state_bytes() const noexcept;
  const operator_entry* find(std::uint32_t operator_id) const noexcept;
};

/// Writes `<folder>/_metadata` atomically: a temp file, fsync, rename, fsync
/// of the folder. The file is JSON with a CRC32C of its content.
status write_metadata(const std::string& folder, const metadata& meta);

/// Reads and checks `<folder>/_metadata`. Errors: `errc::not_found` ("no
/// _metadata in ..."), `errc::malformed_data` (not JSON, checksum mismatch,
/// missing fields, unknown format version).
result<metadata> read_metadata(const std::string& folder);

/// Checks that every state file listed in `meta` exists in `folder` with the
/// recorded size and whole-file checksum. Reads every byte once.
status verify(const std::string& folder, const metadata& meta);

/// A checkpoint that can be restored.
struct restore_point {
  std::string folder;
  metadata meta;
};

/// The checkpoints and savepoints of one job: `<checkpoint_dir>/<job>`, with
/// savepoints in `savepoint_dir` (which may be the same directory).
class storage {
 public:
  storage(std::string checkpoint_dir, std::string savepoint_dir,
          std::string job);

  /// `<checkpoint_dir>/<job>`.
  const std::string& root() const noexcept { return root_; }
  /// The folder of checkpoint `id` or savepoint `id`.
  std::string folder(std::int64_t id, snapshot_kind kind) const;

  /// Creates the (empty) folder of `id`; an existing folder of that id is
  /// removed first (a leftover of an attempt that never completed).
  result<std::string> create(std::int64_t id, snapshot_kind kind) const;

  /// Removes a folder and everything in it (an aborted checkpoint).
  status discard(const std::string& folder) const;

  /// The highest checkpoint or savepoint id found under either directory,
  /// complete or not; 0 when none. New ids start above it.
  std::int64_t highest_id() const;

  /// Keeps the newest `keep` complete checkpoints of the root and removes
  /// older ones, and any incomplete folder older than the newest complete
  /// one. Savepoints are never removed. Returns the folders removed.
  /// Complete means a readable `_metadata` (state files are not read here);
  /// a `keep` of 0 counts as 1, so a restore always has a checkpoint.
  std::vector<std::string> retain(std::uint32_t keep) const;

  /// The newest checkpoint or savepoint of the job (checkpoints in the
  /// root, savepoints in the savepoint root; ids are shared, so the newest
  /// is the one with the highest id) that passes `read_metadata`, `verify`
  /// and `check_compatible`; every one skipped is described in `skipped`.
  /// `errc::not_found` when none is usable, `errc::invalid_config` when
  /// every one was refused as another job's.
  result<restore_point> latest(const std::string& fingerprint,
                               std::vector<std::string>& skipped) const;

 private:
  std::string checkpoint_dir_;
  std::string savepoint_dir_;
  std::string job_;
  std::string root_;
};

/// Checks that `meta` belongs to job `job` with topology `fingerprint`:
/// `errc::invalid_config` with a message naming both jobs otherwise.
status check_compatible(const metadata& meta, const std::string& job,
                        const std::string& fingerprint);

/// Resolves `--restore PATH`: a checkpoint or savepoint folder (must be valid
/// itself), or a folder of checkpoint and savepoint folders such as a job's
/// root (the newest valid one, falling back past broken ones, each
/// described in `skipped`). Checks compatibility with `job` and
/// `fingerprint`: `errc::invalid_config` for another job's checkpoint. A
/// folder named `chk-<id>` or `sp-<id>` whose metadata says another id or
/// kind is `errc::malformed_data`.
result<restore_point> resolve(const std::string& path, const std::string& job,
                              const std::string& fingerprint,
                              std::vector<std::string>& skipped);

/// Whether a job may continue from `point`. A final checkpoint (taken after
/// the input ended, or was drained by a stop) is refused with
/// `errc::invalid_config` and a message that says what happened and what to
/// do, unless `allow_final`: then it is accepted and `warning` says what
/// the restore will do. `warning` is cleared otherwise.
status check_resumable(const restore_point& point, bool allow_final,
                       std::string& warning);

}  // namespace stream::checkpoint
