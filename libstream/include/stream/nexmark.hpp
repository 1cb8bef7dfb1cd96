#pragma once

/// The Nexmark benchmark: its data model (people, auctions, bids), a
/// deterministic port of the standard event generator, and a JSON-lines
/// text format.
///
/// Generator: a port of the generator used by Apache Beam's Nexmark suite and
/// the Flink Nexmark benchmark (github nexmark/nexmark, module nexmark-flink,
/// package com.github.nexmark.flink.generator). Event `i` of a stream is a
/// pure function of (config, i): its type follows the proportions, its ids
/// follow from `i`, and everything random comes from a java.util.Random
/// seeded with `i` (as in Beam), so any position can be generated directly.
/// Bids carry the `channel` and `url` fields of the Flink variant.
///
/// JSON lines (one event per line, UTF-8, no embedded newline):
///   {"type":"person","id":1000,"name":"..","emailAddress":"..",
///    "creditCard":"..","city":"..","state":"..","dateTime":<ms>,"extra":".."}
///   {"type":"auction","id":1000,"itemName":"..","description":"..",
///    "initialBid":<int>,"reserve":<int>,"dateTime":<ms>,"expires":<ms>,
///    "seller":<int>,"category":<int>,"extra":".."}
///   {"type":"bid","auction":<int>,"bidder":<int>,"price":<int>,
///    "channel":"..","url":"..","dateTime":<ms>,"extra":".."}
/// Integers are JSON integers in int64 range; times are epoch milliseconds.
/// Writers emit `type` first and the fields in the order above, escaping `"`,
/// `\` and control characters (as \u00XX). Readers accept any key order,
/// ignore unknown keys and require every field listed for the type.
///
/// Everything here is thread safe: functions share only immutable tables.

#include <cstdint>
#include <string>
#include <string_view>

#include "stream/codec.hpp"
#include "stream/status.hpp"

namespace stream::nexmark {

/// A new person registering with the auction site.
struct person {
  std::int64_t id = 0;  ///< Primary key; the generator starts at 1000.
  std::string name;
  std::string email_address;
  std::string credit_card;
  std::string city;
  std::string state;
  std::int64_t date_time = 0;  ///< Event time, epoch milliseconds.
  std::string extra;           ///< Padding towards an average record size.
  bool operator==(const person&) const = default;
};
STREAM_FIELDS(person, id, name, email_address, credit_card, city, state,
              date_time, extra);

/// A new auction opened by `seller` (a person id).
struct auction {
  std::int64_t id = 0;  ///< Primary key; the generator starts at 1000.
  std::string item_name;
  std::string description;
  std::int64_t initial_bid = 0;  ///< Cents.
  std::int64_t reserve = 0;      ///< Cents.
  std::int64_t date_time = 0;    ///< Event time, epoch milliseconds.
  std::int64_t expires = 0;      ///< Epoch milliseconds; > date_time.
  std::int64_t seller = 0;       ///< A person id.
  std::int64_t category = 0;     ///< In [10, 10 + num_categories).
  std::string extra;             ///< Padding towards an average record size.
  bool operator==(const auction&) const = default;
};
STREAM_FIELDS(auction, id, item_name, description, initial_bid, reserve,
              date_time, expires, seller, category, extra);

/// A bid by `bidder` (a person id) on `auction` (an auction id).
struct bid {
  std::int64_t auction = 0;
  std::int64_t bidder = 0;
  std::int64_t price = 0;  ///< Cents.
  std::string channel;     ///< E.g. "Google" or "channel-42".
  std::string url;
  std::int64_t date_time = 0;  ///< Event time, epoch milliseconds.
  std::string extra;           ///< Padding towards an average record size.
  bool operator==(const bid&) const = default;
};
STREAM_FIELDS(bid, auction, bidder, price, channel, url, date_time, extra);

/// Which member of an `event` is active.
enum class event_type : std::uint8_t { person = 0, auction = 1, bid = 2 };

/// "person", "auction" or "bid".
std::string_view to_string(event_type type) noexcept;

/// One Nexmark event: the member named by `type` is the payload, the other
/// two stay default-constructed (so events compare and encode canonically).
struct event {
  event_type type = event_type::bid;
  person p;
  auction a;
  bid b;

  /// The date_time of the active member, epoch milliseconds.
  std::int64_t timestamp() const noexcept;

  bool operator==(const event&) const = default;
};
STREAM_FIELDS(event, type, p, a, b);

/// Parameters of a generated stream; the defaults are those of the Flink
/// Nexmark benchmark (NexmarkConfiguration) at 10,000 events/s.
struct generator_config {
  /// Mixed into every event's random seed; 0 gives the standard stream.
  std::uint64_t seed = 0;
  /// Event time of event 0, ms since epoch; fixed so streams are repeatable.
  std::int64_t base_time = 1'700'000'000'000;
  /// Event-time rate in events per second: event i is at
  /// base_time + trunc(i * (1e6 / events_per_second)) / 1000 (integer
  /// division), the reference's timestampForEvent.
  double events_per_second = 10'000;
  /// Out of every person+auction+bid proportion events, in this order.
  std::uint32_t person_proportion = 1;
  std::uint32_t auction_proportion = 3;
  std::uint32_t bid_proportion = 46;
  /// Bids go to a hot auction with probability 1 - 1/hot_auction_ratio;
  /// likewise auctions to hot sellers and bids from hot bidders.
  std::uint32_t hot_auction_ratio = 2;
  std::uint32_t hot_seller_ratio = 4;
  std::uint32_t hot_bidder_ratio = 4;
  /// Non-hot sellers and bidders are drawn from the latest this many people.
  std::uint32_t num_active_people = 1000;
  /// Non-hot bids go to one of the latest this many auctions; also sets the
  /// average auction length.
  std::uint32_t num_in_flight_auctions = 100;
  /// Average encoded sizes the `extra` padding aims at, in bytes.
  std::uint32_t avg_person_byte_size = 200;
  std::uint32_t avg_auction_byte_size = 500;
  std::uint32_t avg_bid_byte_size = 100;
  /// Auction categories are 10 .. 10 + num_categories - 1.
  std::uint32_t num_categories = 5;

  /// ok, or errc::invalid_argument naming the first field out of range.
  status validate() const;
};

/// The largest index `make_event` accepts (2^62 - 1), far beyond any run.
inline constexpr std::uint64_t max_event_index = (std::uint64_t{1} << 62) - 1;

/// Event number `index` (0-based) of the stream described by `config`.
/// A pure function of (config, index), so a source can resume from any
/// checkpointed position. Requires `config.validate().ok()` and
/// `index <= max_event_index`. Thread safe.
event make_event(const generator_config& config, std::uint64_t index);

/// One JSON object for `e`, without a trailing newline. Strings must be
/// valid UTF-8 for the line to parse again (generated ones are ASCII).
std::string to_json(const event& e);

/// Appends `to_json(e)` to `out` without building a temporary.
void append_json(const event& e, std::string& out);

/// Parses one line written by `append_json` (any key order, unknown keys
/// ignored, one trailing '\r' tolerated). Never throws; errc::malformed_data
/// naming the offending field, type or byte position otherwise.
result<event> parse_json(std::string_view line);

}  // namespace stream::nexmark
