#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <typeindex>
#include <vector>

namespace stream::runtime {

/// A type-erased batch of records, the unit that crosses a channel. Within
/// one process a batch is handed over by pointer and never copied.
class batch_base {
 public:
  virtual ~batch_base() = default;

  /// Number of records in the batch.
  virtual std::size_t size() const noexcept = 0;

  /// Type of the records, used to check wiring in debug builds.
  virtual std::type_index record_type() const noexcept = 0;
};

/// A batch of records of type `T`.
template <class T>
class batch final : public batch_base {
 public:
  batch() = default;
  explicit batch(std::vector<T> records) : records(std::move(records)) {}

  std::size_t size() const noexcept override { return records.size(); }
  std::type_index record_type() const noexcept override { return typeid(T); }

  std::vector<T> records;
};

/// Shared ownership only so that it fits a copyable actor message; exactly
/// one task uses a batch at a time.
using batch_ptr = std::shared_ptr<batch_base>;

/// The control events that travel in-band, in order with the data.
enum class event_kind : std::uint8_t {
  watermark,     ///< value: event time in milliseconds since the epoch
  barrier,       ///< value: checkpoint id
  end_of_input,  ///< value unused
  idle,          ///< value unused: the sender has no data for now and holds
                 ///< no watermark back until it sends a record or watermark
  savepoint,     ///< value: savepoint id; aligned like a checkpoint barrier
};

/// True for the events that start a snapshot (checkpoint or savepoint).
constexpr bool is_barrier(event_kind kind) noexcept {
  return kind == event_kind::barrier || kind == event_kind::savepoint;
}

/// A control event on a channel.
struct control_event {
  event_kind kind = event_kind::watermark;
  std::int64_t value = 0;

  friend bool operator==(const control_event&, const control_event&) = default;
};

/// The smallest watermark: nothing has been promised yet.
inline constexpr std::int64_t min_watermark = INT64_MIN;
/// The watermark that a finished input promises.
inline constexpr std::int64_t max_watermark = INT64_MAX;

}  // namespace stream::runtime
