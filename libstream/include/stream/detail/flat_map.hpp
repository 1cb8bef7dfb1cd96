#pragma once

// An open-addressing hash map (linear probing, backward-shift deletion) for
// keyed state: one probe sequence in one array instead of a bucket array and
// a node per entry, so a lookup costs one cache miss where std::unordered_map
// costs two or three. References are invalidated by any insertion or
// erasure.

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace stream::detail {

template <class Key, class Value, class Hash>
class flat_map {
 public:
  struct slot {
    Key key{};
    Value value{};
    std::uint64_t hash = 0;
    bool used = false;
  };

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  /// The value of `key`, or null.
  Value* find(const Key& key) {
    if (size_ == 0) return nullptr;
    auto h = hash_of(key);
    for (auto i = index(h);; i = (i + 1) & mask_) {
      auto& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.hash == h && s.key == key) return &s.value;
    }
  }

  /// The value of `key`, value-initialised and `created` set when absent.
  Value& try_emplace(const Key& key, bool& created) {
    if ((size_ + 1) * 8 > slots_.size() * 7) grow();
    auto h = hash_of(key);
    for (auto i = index(h);; i = (i + 1) & mask_) {
      auto& s = slots_[i];
      if (!s.used) {
        s.key = key;
        s.value = Value{};
        s.hash = h;
        s.used = true;
        ++size_;
        created = true;
        return s.value;
      }
      if (s.hash == h && s.key == key) {
        created = false;
        return s.value;
      }
    }
  }

  /// Removes `key` if present.
  void erase(const Key& key) {
    if (size_ == 0) return;
    auto h = hash_of(key);
    auto i = index(h);
    for (;; i = (i + 1) & mask_) {
      auto& s = slots_[i];
      if (!s.used) return;
      if (s.hash == h && s.key == key) break;
    }
    // Backward shift: pull later entries of the cluster into the hole
    // unless that would move them before their home slot.
    auto hole = i;
    for (auto j = (hole + 1) & mask_; slots_[j].used; j = (j + 1) & mask_) {
      auto home = index(slots_[j].hash);
      bool movable = hole <= j ? (home <= hole || home > j)
                               : (home <= hole && home > j);
      if (!movable) continue;
      slots_[hole] = std::move(slots_[j]);
      hole = j;
    }
    slots_[hole] = slot{};
    --size_;
  }

  /// Calls fn(key, value) for every entry.
  template <class F>
  void for_each(F&& fn) const {
    for (const auto& s : slots_) {
      if (s.used) fn(s.key, s.value);
    }
  }

 private:
  static std::uint64_t hash_of(const Key& key) {
    // Multiply to spread the hash into the high bits used by index().
    return static_cast<std::uint64_t>(Hash{}(key)) * 0x9E3779B97F4A7C15ULL;
  }
  std::size_t index(std::uint64_t h) const noexcept {
    return static_cast<std::size_t>(h >> shift_);
  }

  void grow() {
    auto capacity = slots_.empty() ? 16 : slots_.size() * 2;
    std::vector<slot> old(capacity);
    old.swap(slots_);
    mask_ = capacity - 1;
    shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(capacity));
    size_ = 0;
    for (auto& s : old) {
      if (!s.used) continue;
      auto i = index(s.hash);
      while (slots_[i].used) i = (i + 1) & mask_;
      slots_[i] = std::move(s);
      ++size_;
    }
  }

  std::vector<slot> slots_;
  std::size_t size_ = 0;
  std::size_t mask_ = 0;
  unsigned shift_ = 64;
};

}  // namespace stream::detail
