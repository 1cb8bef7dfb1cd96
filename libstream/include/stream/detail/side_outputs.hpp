#pragma once

// Side outputs of one operator instance: records emitted under a tag go to
// the consumers of that tag (or nowhere when nobody reads it), in batches;
// flushes, watermarks and the end of input reach every side consumer.

#include <cassert>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "stream/runtime/stage.hpp"

namespace stream::detail {

class side_output_set {
 public:
  explicit side_output_set(const runtime::stage_context& ctx)
      : batch_size_(ctx.batch_size) {
    for (const auto& [tag, stage] : ctx.side_outputs) {
      auto* c = dynamic_cast<runtime::consumer_base*>(stage);
      assert(c != nullptr && "a side output is not a consumer");
      links_.push_back({tag, c, nullptr});
    }
  }

  /// Emits `value` under `tag`; dropped when nobody consumes the tag.
  template <class U>
  void emit(const std::string& tag, U value) {
    auto* l = find(tag);
    if (l == nullptr) return;
    if (!l->buffer) {
      auto* c = dynamic_cast<runtime::consumer<U>*>(l->target);
      assert(c != nullptr && "side output type differs from its tag's type");
      l->buffer = std::make_unique<buffer<U>>(c, batch_size_);
    }
    static_cast<buffer<U>&>(*l->buffer).add(std::move(value));
  }

  /// Hands buffered records downstream (end of every batch).
  void spill() {
    for (auto& l : links_) {
      if (l.buffer) l.buffer->spill();
    }
  }
  void flush() {
    spill();
    for (auto& l : links_) l.target->flush();
  }
  void finish() {
    spill();
    for (auto& l : links_) l.target->finish();
  }
  void on_control(const runtime::control_event& e) {
    spill();
    for (auto& l : links_) l.target->on_control(e);
  }

 private:
  struct buffer_base {
    virtual ~buffer_base() = default;
    virtual void spill() = 0;
  };

  template <class U>
  struct buffer final : buffer_base {
    buffer(runtime::consumer<U>* t, std::size_t limit)
        : target(t), limit(limit) {}
    void add(U value) {
      records.push_back(std::move(value));
      if (records.size() >= limit) spill();
    }
    void spill() override {
      if (records.empty()) return;
      target->push(records);
      records.clear();
    }
    runtime::consumer<U>* target;
    std::size_t limit;
    std::vector<U> records;
  };

  struct link {
    std::string tag;
    runtime::consumer_base* target;
    std::unique_ptr<buffer_base> buffer;
  };

  link* find(const std::string& tag) {
    for (auto& l : links_) {
      if (l.tag == tag) return &l;
    }
    return nullptr;
  }

  std::size_t batch_size_;
  std::vector<link> links_;
};

}  // namespace stream::detail
