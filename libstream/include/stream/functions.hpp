#pragma once

#include <cstddef>
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

}  // namespace stream
