#pragma once

// How operators hand their state to a checkpoint and get it back. A snapshot
// has two phases:
// - synchronous, in the task between two records: copy whatever may change
//   (memory tables are encoded, LevelDB takes a database snapshot);
// - deferred, on a background writer: the slow part (scanning a LevelDB
//   snapshot), then the file is written and fsynced.
// Processing goes on as soon as the synchronous phase returns.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stream/checkpoint/storage.hpp"
#include "stream/codec.hpp"
#include "stream/key_groups.hpp"

namespace stream::checkpoint {

/// Collects the state of one operator instance: keyed entries by key group
/// and state name, and the operator's own (non-keyed) bytes.
class snapshot_builder {
 public:
  /// The index of state `name`, registered on first use.
  std::uint32_t state_index(std::string_view name) {
    for (std::uint32_t i = 0; i < names_.size(); ++i) {
      if (names_[i] == name) return i;
    }
    names_.emplace_back(name);
    return static_cast<std::uint32_t>(names_.size() - 1);
  }

  /// Adds one keyed entry (key and value already encoded).
  void add(std::uint32_t state, key_group kg, std::string_view key,
           std::string_view value) {
    auto& g = groups_[kg];
    entry_writer{g.bytes}.add(state, key, value);
    ++g.entries;
  }

  /// Encodes an entry with the codec (key: `key` then `ns`) and adds it.
  template <class K, class N, class V>
  void add_entry(std::uint32_t state, key_group kg, const K& key, const N& ns,
                 const V& value) {
    scratch_.clear();
    codec<K>::encode(key, scratch_);
    codec<N>::encode(ns, scratch_);
    auto key_bytes = scratch_.size();
    codec<V>::encode(value, scratch_);
    std::string_view all{reinterpret_cast<const char*>(scratch_.data()),
                         scratch_.size()};
    add(state, kg, all.substr(0, key_bytes), all.substr(key_bytes));
  }

  /// The operator's non-keyed state.
  std::string operator_state;

  operator_snapshot finish(std::uint32_t operator_id, std::uint32_t subtask) {
    operator_snapshot s;
    s.operator_id = operator_id;
    s.subtask = subtask;
    s.state_names = std::move(names_);
    s.operator_state = std::move(operator_state);
    s.key_groups.reserve(groups_.size());
    for (auto& [kg, g] : groups_) {
      s.key_groups.push_back({kg, g.entries, std::move(g.bytes)});
    }
    groups_.clear();
    return s;
  }

 private:
  struct group {
    std::uint64_t entries = 0;
    std::string bytes;
  };
  std::vector<std::string> names_;
  std::map<key_group, group> groups_;
  byte_buffer scratch_;
};

/// One operator instance's part of a checkpoint, after the synchronous
/// phase.
struct pending_snapshot {
  std::uint32_t operator_id = 0;
  key_group_set owned;
  std::unique_ptr<snapshot_builder> data;
  /// Runs on the background writer before the file is written (may be
  /// empty): adds what the synchronous phase deferred.
  std::function<void(snapshot_builder&)> deferred;
};

/// The state restored into one operator instance: its key groups (from
/// whichever files held them) and its own operator state.
struct restored_state {
  std::int64_t checkpoint_id = 0;  ///< The checkpoint restored from.
  std::uint32_t operator_id = 0;
  /// The files read, each with only the key groups this instance owns now.
  std::vector<operator_snapshot> parts;
  /// This subtask's own operator state, when the parallelism is unchanged.
  std::string operator_state;
  bool has_operator_state = false;
  /// Set when the operator ran with another parallelism in the checkpoint:
  /// then `operator_state` is empty and this holds the operator state of
  /// every old subtask, in subtask order, for the operator to merge (a
  /// window operator takes the lowest watermark). Only operators whose
  /// non-keyed state can be merged may change parallelism; the job refuses
  /// the others (sources, sinks) at start-up.
  bool rescaled = false;
  std::vector<std::string> rescaled_operator_states;

  /// Calls fn(state name, key group, key bytes, value bytes) per entry.
  /// Errors: `errc::malformed_data` for a broken section.
  template <class F>
  status for_each(F&& fn) const {
    for (const auto& part : parts) {
      for (const auto& g : part.key_groups) {
        entry_reader in{g.bytes};
        std::uint32_t state = 0;
        std::string_view key, value;
        while (in.next(state, key, value)) {
          if (state >= part.state_names.size())
            return {
                errc::malformed_data,
                "state entry refers to unknown state " + std::to_string(state)};
          fn(part.state_names[state], g.group, key, value);
        }
        if (!in.error().ok()) return in.error();
      }
    }
    return {};
  }
};

/// Decodes `bytes` (a whole value) into `out`; malformed_data when they do
/// not decode exactly.
template <class T>
status decode_all(std::string_view bytes, T& out) {
  detail::reader in(
      {reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()});
  auto st = codec<T>::decode(in, out);
  if (st.ok()) st = in.expect_end("checkpointed state");
  return st;
}

/// Encodes a value as a string of codec bytes.
template <class T>
std::string encode_all(const T& value) {
  byte_buffer buf;
  codec<T>::encode(value, buf);
  return {reinterpret_cast<const char*>(buf.data()), buf.size()};
}

}  // namespace stream::checkpoint

namespace stream::checkpoint {

/// Reads what operator instance `subtask` of `operator_id`, now running
/// with `parallelism` and owning `owned`, restores from `point`: the key
/// groups of `owned` from every file that holds some, and the operator
/// state of the same subtask, or, when the operator ran with another
/// parallelism, the operator states of all its old subtasks (see
/// `restored_state::rescaled`). Null when the checkpoint has no state for
/// the operator. Errors: those of `read_state_file`.
result<std::shared_ptr<const restored_state>> load_operator_state(
    const restore_point& point, std::uint32_t operator_id,
    std::uint32_t subtask, std::uint32_t parallelism,
    const key_group_set& owned);

}  // namespace stream::checkpoint
