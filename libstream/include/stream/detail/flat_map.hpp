#pragma once

// An open-addressing hash map (linear probing, backward-shift deletion) for
// keyed state. A one-byte control array (empty, or 7 bits of the hash) is
// probed first and slots hold only key and value, so a lookup touches one
// slot where std::unordered_map chases a bucket and a node, and the map is
// about a third smaller: state that fits the cache stays there. References
// are invalidated by any insertion or erasure.

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace stream::detail {

template <class Key, class Value, class Hash>
class flat_map {
 public:
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  /// The value of `key`, or null.
  Value* find(const Key& key) {
    if (size_ == 0) return nullptr;
    auto h = hash_of(key);
    auto tag = tag_of(h);
    for (auto i = index(h);; i = (i + 1) & mask_) {
      auto c = ctrl_[i];
      if (c == 0) return nullptr;
      if (c == tag && slots_[i].key == key) return &slots_[i].value;
    }
  }

  /// The value of `key`, value-initialised and `created` set when absent.
  Value& try_emplace(const Key& key, bool& created) {
    if ((size_ + 1) * 8 > ctrl_.size() * 7) grow();
    auto h = hash_of(key);
    auto tag = tag_of(h);
    for (auto i = index(h);; i = (i + 1) & mask_) {
      auto c = ctrl_[i];
      if (c == 0) {
        ctrl_[i] = tag;
        slots_[i].key = key;
        slots_[i].value = Value{};
        ++size_;
        created = true;
        return slots_[i].value;
      }
      if (c == tag && slots_[i].key == key) {
        created = false;
        return slots_[i].value;
      }
    }
  }

  /// Removes `key` if present.
  void erase(const Key& key) {
    if (size_ == 0) return;
    auto h = hash_of(key);
    auto tag = tag_of(h);
    auto i = index(h);
    for (;; i = (i + 1) & mask_) {
      auto c = ctrl_[i];
      if (c == 0) return;
      if (c == tag && slots_[i].key == key) break;
    }
    // Backward shift: pull later entries of the cluster into the hole
    // unless that would move them before their home slot.
    auto hole = i;
    for (auto j = (hole + 1) & mask_; ctrl_[j] != 0; j = (j + 1) & mask_) {
      auto home = index(hash_of(slots_[j].key));
      bool movable =
          hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
      if (!movable) continue;
      ctrl_[hole] = ctrl_[j];
      slots_[hole] = std::move(slots_[j]);
      hole = j;
    }
    ctrl_[hole] = 0;
    slots_[hole] = slot{};
    --size_;
  }

  /// Calls fn(key, value) for every entry.
  template <class F>
  void for_each(F&& fn) const {
    for (std::size_t i = 0; i < ctrl_.size(); ++i) {
      if (ctrl_[i] != 0) fn(slots_[i].key, slots_[i].value);
    }
  }

 private:
  struct slot {
    Key key{};
    Value value{};
  };

  static std::uint64_t hash_of(const Key& key) {
    // Multiply to spread the hash into the high bits used by index().
    return static_cast<std::uint64_t>(Hash{}(key)) * 0x9E3779B97F4A7C15ULL;
  }
  /// Never 0 (empty): the top bit is set; the rest are low hash bits, which
  /// index() does not use.
  static std::uint8_t tag_of(std::uint64_t h) noexcept {
    return static_cast<std::uint8_t>(0x80 | (h & 0x7f));
  }
  std::size_t index(std::uint64_t h) const noexcept {
    return static_cast<std::size_t>(h >> shift_);
  }

  void grow() {
    auto capacity = ctrl_.empty() ? 16 : ctrl_.size() * 2;
    std::vector<std::uint8_t> old_ctrl(capacity, 0);
    std::vector<slot> old_slots(capacity);
    old_ctrl.swap(ctrl_);
    old_slots.swap(slots_);
    mask_ = capacity - 1;
    shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(capacity));
    for (std::size_t k = 0; k < old_ctrl.size(); ++k) {
      if (old_ctrl[k] == 0) continue;
      auto i = index(hash_of(old_slots[k].key));
      while (ctrl_[i] != 0) i = (i + 1) & mask_;
      ctrl_[i] = old_ctrl[k];
      slots_[i] = std::move(old_slots[k]);
    }
  }

  std::vector<std::uint8_t> ctrl_;
  std::vector<slot> slots_;
  std::size_t size_ = 0;
  std::size_t mask_ = 0;
  unsigned shift_ = 64;
};

}  // namespace stream::detail
