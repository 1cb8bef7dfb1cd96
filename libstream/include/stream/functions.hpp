#pragma once

#include <cstddef>
#include <unordered_map>
#include <utility>
#include <vector>

#include "stream/runtime/stage.hpp"

namespace stream {

/// Collects the output of a `flat_map` or keyed `process` function. Only
/// valid during the call that received it.
template <class T>
class emitter {
 public:
  emitter(std::vector<T>& buffer, runtime::consumer<T>* next, std::size_t limit)
      : buffer_(&buffer), next_(next), limit_(limit) {}

  /// Emits one record downstream.
  void emit(T value) {
    buffer_->push_back(std::move(value));
    // Bounded: a function that emits many records per input spills full
    // batches instead of growing the buffer without limit.
    if (buffer_->size() >= limit_) spill();
  }

  void operator()(T value) { emit(std::move(value)); }

  /// Hands the buffered records downstream now.
  void spill() {
    if (buffer_->empty()) return;
    next_->push(*buffer_);
    buffer_->clear();
    // A router may have taken the storage with the batch.
    buffer_->reserve(limit_);
  }

 private:
  std::vector<T>* buffer_;
  runtime::consumer<T>* next_;
  std::size_t limit_;
};

/// Per-key value state of a keyed `process` function, scoped to the key of
/// the record being processed. Only valid during that call.
template <class K, class S>
class value_state {
 public:
  using map_type = std::unordered_map<K, S>;

  value_state(map_type& map, const K& key) : map_(&map), key_(&key) {
    auto it = map.find(key);
    value_ = it == map.end() ? nullptr : &it->second;
  }

  /// True when the key has a value.
  bool has_value() const noexcept { return value_ != nullptr; }

  /// The value, default-constructed on first access.
  S& value() {
    if (value_ == nullptr) value_ = &(*map_)[*key_];
    return *value_;
  }

  /// Replaces the value.
  void update(S value) { this->value() = std::move(value); }

  /// Removes the value of this key.
  void clear() {
    if (value_ == nullptr) return;
    map_->erase(*key_);
    value_ = nullptr;
  }

 private:
  map_type* map_;
  const K* key_;
  S* value_;
};

}  // namespace stream
