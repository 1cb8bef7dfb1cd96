#pragma once

// Key groups: the unit of keyed state and of keyed routing.
//
// A key is hashed with murmur3_32 (seed 0) over the bytes that `hash_key`
// documents; its key group is that hash modulo the job's max parallelism M.
// Which subtask owns a key group is decided by an explicit, versioned
// `key_group_table`. The initial table is contiguous ranges, the same ranges
// as Flink's KeyGroupRangeAssignment; rescaling may produce any table.
//
// Wire-level contract: every process of a job must route a key to the same
// key group, so the bytes hashed for a key type, the seed and M must never
// differ between processes or change between a checkpoint and its restore.

#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "stream/status.hpp"

namespace stream {

/// A key group id in [0, max_parallelism).
using key_group = std::uint32_t;

/// Number of key groups when a job does not set its max parallelism.
inline constexpr std::uint32_t default_max_parallelism = 128;

/// Largest allowed max parallelism (Flink's bound, 1 << 15). It also bounds
/// parallelism, so a subtask index always fits in 16 bits.
inline constexpr std::uint32_t max_max_parallelism = 32768;

/// MurmurHash3_x86_32 (Austin Appleby's reference), bit-identical to it on a
/// little-endian host: 4-byte blocks are read little-endian, the tail is
/// mixed byte by byte and `size` is mixed in modulo 2^32.
///
/// `data` may be null only when `size` is 0; it needs no alignment. Pure and
/// thread-safe.
inline std::uint32_t murmur3_32(const void* data, std::size_t size,
                                std::uint32_t seed = 0) noexcept;

namespace detail {

inline constexpr std::uint32_t murmur_c1 = 0xcc9e2d51;
inline constexpr std::uint32_t murmur_c2 = 0x1b873593;

constexpr std::uint32_t murmur_mix_k1(std::uint32_t k1) noexcept {
  k1 *= murmur_c1;
  k1 = std::rotl(k1, 15);
  return k1 * murmur_c2;
}

constexpr std::uint32_t murmur_fmix32(std::uint32_t h) noexcept {
  h ^= h >> 16;
  h *= 0x85ebca6b;
  h ^= h >> 13;
  h *= 0xc2b2ae35;
  h ^= h >> 16;
  return h;
}

}  // namespace detail

// Inline: keys are a few bytes, and with the size known at the call site
// the compiler unrolls the loop; out of line it was 30% of a keyed job.
inline std::uint32_t murmur3_32(const void* data, std::size_t size,
                                std::uint32_t seed) noexcept {
  assert(data != nullptr || size == 0);
  const auto* bytes = static_cast<const unsigned char*>(data);
  const std::size_t block_count = size / 4;
  std::uint32_t h1 = seed;
  for (std::size_t i = 0; i < block_count; ++i) {
    // memcpy: blocks may be unaligned; the host is little-endian (asserted in
    // hash_key), which is the byte order the reference's values assume.
    std::uint32_t k1 = 0;
    std::memcpy(&k1, bytes + i * 4, sizeof(k1));
    h1 ^= detail::murmur_mix_k1(k1);
    h1 = std::rotl(h1, 13);
    h1 = h1 * 5 + 0xe6546b64;
  }
  const unsigned char* tail = bytes + block_count * 4;
  std::uint32_t k1 = 0;
  switch (size & 3) {
    case 3:
      k1 ^= std::uint32_t{tail[2]} << 16;
      [[fallthrough]];
    case 2:
      k1 ^= std::uint32_t{tail[1]} << 8;
      [[fallthrough]];
    case 1:
      k1 ^= std::uint32_t{tail[0]};
      h1 ^= detail::murmur_mix_k1(k1);
      break;
    default:
      break;
  }
  // The reference takes an int length; modulo 2^32 matches it for every size
  // it accepts.
  h1 ^= static_cast<std::uint32_t>(size);
  return detail::murmur_fmix32(h1);
}

/// Returns the key group of a key whose `hash_key` is `key_hash`:
/// `key_hash % max_parallelism`.
///
/// Unlike Flink, which re-hashes Java's `hashCode()` and folds it to a
/// non-negative int, the hash here is murmur3_32 of the key's bytes and the
/// whole 32-bit range is used. Requires 1 <= max_parallelism (asserted).
constexpr key_group assign_key_group(std::uint32_t key_hash,
                                     std::uint32_t max_parallelism) noexcept {
  assert(max_parallelism >= 1);
  return key_hash % max_parallelism;
}

namespace detail {
__extension__ typedef unsigned __int128 uint128;
}  // namespace detail

/// `assign_key_group` for one max parallelism, without a division: a
/// hardware divide on the per-record path made keyed operators about 40%
/// slower. Uses Lemire, Kaser and Kurz's direct remainder ("Faster remainder
/// by direct computation", 2019), exact for every 32-bit hash and divisor.
/// Cheap to copy; thread-safe.
class key_group_assigner {
 public:
  explicit key_group_assigner(std::uint32_t max_parallelism) noexcept
      : divisor_(max_parallelism),
        // Wraps to 0 for a divisor of 1, which yields 0: still exact.
        magic_(UINT64_MAX / max_parallelism + 1) {
    assert(max_parallelism >= 1);
  }

  /// Equals `assign_key_group(key_hash, max_parallelism())`.
  key_group operator()(std::uint32_t key_hash) const noexcept {
    const std::uint64_t low = magic_ * key_hash;
    return static_cast<key_group>((detail::uint128{low} * divisor_) >> 64);
  }

  std::uint32_t max_parallelism() const noexcept { return divisor_; }

  friend bool operator==(const key_group_assigner&,
                         const key_group_assigner&) = default;

 private:
  std::uint32_t divisor_;
  std::uint64_t magic_;
};

/// A half-open range of key groups [start, end).
struct key_group_range {
  std::uint32_t start = 0;  ///< First key group in the range.
  std::uint32_t end = 0;    ///< One past the last key group (exclusive).

  /// Number of key groups in the range; 0 when empty.
  constexpr std::uint32_t size() const noexcept {
    return end > start ? end - start : 0;
  }
  /// True when the range holds no key group.
  constexpr bool empty() const noexcept { return end <= start; }
  /// True when `kg` lies in [start, end).
  constexpr bool contains(key_group kg) const noexcept {
    return kg >= start && kg < end;
  }

  friend constexpr bool operator==(const key_group_range&,
                                   const key_group_range&) = default;
};

/// A set of key groups held as its maximal runs: what one subtask of a
/// keyed operator owns under a key-group table. The runs are ascending,
/// non-empty and non-adjacent, so equal sets have equal runs. A value type;
/// thread-safe for concurrent reads.
class key_group_set {
 public:
  /// The empty set.
  key_group_set() = default;

  /// The key groups of `runs`, which may be empty, overlap, touch or come in
  /// any order.
  explicit key_group_set(std::vector<key_group_range> runs);

  /// The key groups of one range; empty for an empty range. Implicit: a
  /// range is a set.
  key_group_set(key_group_range range)  // NOLINT(google-explicit-constructor)
      : key_group_set(std::vector<key_group_range>{range}) {}

  /// The key groups of one range, spelled out.
  static key_group_set of(key_group_range range) { return {range}; }

  /// The maximal runs, ascending and non-adjacent.
  const std::vector<key_group_range>& runs() const noexcept { return runs_; }

  /// True when the set holds no key group.
  bool empty() const noexcept { return runs_.empty(); }

  /// Number of key groups in the set.
  std::uint32_t size() const noexcept;

  /// True when `kg` is in the set; O(log runs).
  bool contains(key_group kg) const noexcept;

  /// True when some key group of `range` is in the set; O(log runs).
  bool intersects(key_group_range range) const noexcept;

  /// True when the two sets share a key group; O(runs of both).
  bool intersects(const key_group_set& other) const noexcept;

  /// Calls `fn(kg)` for every key group, ascending.
  template <class Fn>
  void for_each(Fn&& fn) const {
    for (const key_group_range& run : runs_) {
      for (key_group kg = run.start; kg < run.end; ++kg) fn(kg);
    }
  }

  /// Renders the runs with inclusive bounds, e.g. "0-63,70,72-80"; "none"
  /// when empty. For logs, REST answers and messages.
  std::string to_string() const;

  friend bool operator==(const key_group_set&, const key_group_set&) = default;

 private:
  std::vector<key_group_range> runs_;
};

/// Returns the contiguous key groups of `subtask` out of `parallelism`:
/// [ceil(i*M/p), ceil((i+1)*M/p)), the same groups as Flink's
/// `KeyGroupRangeAssignment.computeKeyGroupRangeForOperatorIndex`.
///
/// The ranges of subtasks 0..p-1 partition [0, M) in order, and their sizes
/// differ by at most 1. Requires 1 <= parallelism <= max_parallelism <=
/// max_max_parallelism and subtask < parallelism (asserted).
constexpr key_group_range range_for_subtask(std::uint32_t max_parallelism,
                                            std::uint32_t parallelism,
                                            std::uint32_t subtask) noexcept {
  assert(parallelism >= 1 && parallelism <= max_parallelism);
  assert(max_parallelism <= max_max_parallelism && subtask < parallelism);
  // 64-bit so that the products cannot wrap even for out-of-contract input.
  const std::uint64_t m = max_parallelism;
  const std::uint64_t p = parallelism;
  const std::uint64_t i = subtask;
  return {static_cast<std::uint32_t>((i * m + p - 1) / p),
          static_cast<std::uint32_t>(((i + 1) * m + p - 1) / p)};
}

/// Returns the subtask whose `range_for_subtask` holds `kg`:
/// `kg * parallelism / max_parallelism`, as Flink's
/// `computeOperatorIndexForKeyGroup`. Requires 1 <= parallelism <=
/// max_parallelism and kg < max_parallelism (asserted).
constexpr std::uint32_t subtask_for_key_group(std::uint32_t max_parallelism,
                                              std::uint32_t parallelism,
                                              key_group kg) noexcept {
  assert(parallelism >= 1 && parallelism <= max_parallelism);
  assert(kg < max_parallelism);
  return static_cast<std::uint32_t>(std::uint64_t{kg} * parallelism /
                                    max_parallelism);
}

/// Appends the bytes of `value` in the wire encoding to `out`. Declared here
/// only as the customisation point of `hash_key`; `stream/codec.hpp` defines
/// it. A key type may instead provide its own `encode_value(const K&,
/// std::vector<std::uint8_t>&)` overload, found by argument-dependent lookup.
template <class T>
void encode_value(const T& value, std::vector<std::uint8_t>& out);

namespace detail {

template <class K>
inline constexpr bool is_string_key_v =
    std::is_same_v<K, std::string> || std::is_same_v<K, std::string_view> ||
    std::is_same_v<std::decay_t<K>, const char*> ||
    std::is_same_v<std::decay_t<K>, char*>;

template <class K>
inline constexpr bool is_pointer_key_v =
    !is_string_key_v<K> &&
    (std::is_pointer_v<K> || std::is_member_pointer_v<K> ||
     std::is_null_pointer_v<K>);

template <class K>
inline constexpr bool is_byte_key_v =
    (std::is_trivially_copyable_v<K> &&
     std::has_unique_object_representations_v<K>);

/// Scratch buffer of `hash_key`'s encode path, one per thread.
inline std::vector<std::uint8_t>& key_scratch() {
  thread_local std::vector<std::uint8_t> buffer;
  return buffer;
}

/// A larger scratch buffer is released after use, so one huge key does not
/// pin its memory on the thread forever.
inline constexpr std::size_t key_scratch_retained_bytes =
    std::size_t{64} * 1024;

}  // namespace detail

/// Returns murmur3_32 (seed 0) of the bytes that identify `key`. These bytes
/// are part of the wire contract, by kind of key, first match wins:
///
/// 1. `std::string`, `std::string_view`, `const char*`, `char*` and char
///    arrays: the characters, without length prefix or terminator (a C string
///    up to its first NUL, which must exist; a null pointer is asserted
///    against). So `hash_key("ab") == hash_key(std::string{"ab"})`.
/// 2. `float`, `double`: the IEEE-754 object bytes, little-endian, with -0.0
///    hashed as +0.0 because the two compare equal. NaN payloads are hashed as
///    they are; NaN keys never compare equal, so do not use them.
///    `long double` is rejected at compile time (padding bytes).
/// 3. Pointers are rejected at compile time: an address means nothing in
///    another process.
/// 4. Other trivially copyable types with unique object representations
///    (integers, `bool`, enums, `std::byte`, padding-free structs of these):
///    the object bytes in memory, which on the little-endian hosts we support
///    is the little-endian encoding of each field. `std::uint64_t{1}` hashes
///    the 8 bytes `01 00 00 00 00 00 00 00`; an enum hashes as its underlying
///    type. This takes precedence over an `encode_value` overload.
/// 5. Anything else: the bytes that `encode_value(key, buffer)` appends to an
///    empty buffer, found by argument-dependent lookup or as
///    `stream::encode_value` from `stream/codec.hpp`.
///
/// Thread-safe. Case 5 uses a thread_local scratch buffer, so an
/// `encode_value` must not call `hash_key` itself.
template <class K>
std::uint32_t hash_key(const K& key) {
  // Object bytes are hashed as they lie in memory; a big-endian host would
  // route keys differently from a little-endian one.
  static_assert(std::endian::native == std::endian::little,
                "key hashing assumes a little-endian host");
  if constexpr (detail::is_string_key_v<K>) {
    if constexpr (std::is_same_v<K, std::string> ||
                  std::is_same_v<K, std::string_view>) {
      return murmur3_32(key.data(), key.size());
    } else {
      const char* chars = key;
      assert(chars != nullptr);
      return murmur3_32(chars, std::char_traits<char>::length(chars));
    }
  } else if constexpr (std::is_floating_point_v<K>) {
    static_assert(!std::is_same_v<K, long double>,
                  "long double has padding bytes; convert the key to double");
    const K normalized = key == K{} ? K{} : key;
    return murmur3_32(&normalized, sizeof(normalized));
  } else if constexpr (detail::is_pointer_key_v<K>) {
    static_assert(!detail::is_pointer_key_v<K>,
                  "pointers cannot be keys: an address differs per process");
    return 0;
  } else if constexpr (detail::is_byte_key_v<K>) {
    return murmur3_32(&key, sizeof(K));
  } else {
    std::vector<std::uint8_t>& buffer = detail::key_scratch();
    buffer.clear();
    encode_value(key, buffer);
    const std::uint32_t hash = murmur3_32(buffer.data(), buffer.size());
    if (buffer.capacity() > detail::key_scratch_retained_bytes) {
      std::vector<std::uint8_t>{}.swap(buffer);
    }
    return hash;
  }
}

/// An explicit, versioned ownership table: key group -> subtask.
///
/// Invariants: 1 <= parallelism <= max_parallelism <= max_max_parallelism and
/// every owner < parallelism. A subtask may own no key group. The version is
/// the caller's: tables are compared and replaced by version during
/// rescaling. Immutable after construction, so it may be shared between
/// threads (e.g. through a `shared_ptr<const key_group_table>`).
class key_group_table {
 public:
  /// Builds the initial table: subtask i owns `range_for_subtask(M, p, i)`.
  /// Fails with `errc::invalid_argument` unless 1 <= parallelism <=
  /// max_parallelism <= max_max_parallelism.
  static result<key_group_table> contiguous(std::uint32_t max_parallelism,
                                            std::uint32_t parallelism,
                                            std::uint64_t version = 1);

  /// Builds a table where key group kg is owned by `owners[kg]`, so the max
  /// parallelism is `owners.size()`. Fails with `errc::invalid_argument`
  /// unless 1 <= owners.size() <= max_max_parallelism, 1 <= parallelism <=
  /// owners.size(), and every owner < parallelism.
  static result<key_group_table> from_owners(std::vector<std::uint32_t> owners,
                                             std::uint32_t parallelism,
                                             std::uint64_t version);

  /// Returns the subtask that owns `kg`. Hot path; requires kg <
  /// max_parallelism() (asserted).
  std::uint32_t owner(key_group kg) const noexcept {
    assert(kg < owners_.size());
    return owners_[kg];
  }

  /// Returns the subtask that owns the key whose `hash_key` is `key_hash`:
  /// `owner(assign_key_group(key_hash, max_parallelism()))`.
  std::uint32_t route(std::uint32_t key_hash) const noexcept {
    return owner(assign_(key_hash));
  }

  /// Number of key groups, M.
  std::uint32_t max_parallelism() const noexcept {
    return static_cast<std::uint32_t>(owners_.size());
  }
  /// Number of subtasks, p.
  std::uint32_t parallelism() const noexcept { return parallelism_; }
  /// The version given at construction.
  std::uint64_t version() const noexcept { return version_; }

  /// Returns the owner of every key group, indexed by key group; feeding it
  /// back to `from_owners` rebuilds an equal table.
  std::vector<std::uint32_t> owners() const;

  /// Returns the key groups owned by `subtask`, ascending; empty when it owns
  /// none. Requires subtask < parallelism() (asserted).
  std::vector<key_group> owned_by(std::uint32_t subtask) const;

  /// Returns the maximal contiguous runs of key groups owned by `subtask`,
  /// ascending and non-adjacent. Requires subtask < parallelism() (asserted).
  std::vector<key_group_range> ranges_of(std::uint32_t subtask) const;

  /// Returns the key groups owned by `subtask` as a set. Requires subtask <
  /// parallelism() (asserted).
  key_group_set owned_set(std::uint32_t subtask) const {
    return key_group_set{ranges_of(subtask)};
  }

  /// Renders the table compactly with inclusive bounds, run by run in key
  /// group order, e.g. "v1 [0-63]->0 [64-127]->1"; a run of one key group is
  /// "[5]->2". For logs and test failures, not for parsing.
  std::string to_string() const;

  /// Tables are equal when version, parallelism and every owner are equal.
  friend bool operator==(const key_group_table&,
                         const key_group_table&) = default;

 private:
  key_group_table(std::vector<std::uint16_t> owners, std::uint32_t parallelism,
                  std::uint64_t version);

  // Indexed by key group; 16 bits suffice since parallelism <= 32768.
  std::vector<std::uint16_t> owners_;
  std::uint32_t parallelism_ = 0;
  std::uint64_t version_ = 0;
  key_group_assigner assign_;  ///< Derived from owners_.size().
};

}  // namespace stream
