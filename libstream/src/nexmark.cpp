#include "stream/nexmark.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

// A port of the Nexmark generator of github nexmark/nexmark (nexmark-flink,
// com.github.nexmark.flink.generator) and Apache Beam
// (org.apache.beam.sdk.nexmark.sources.generator). Comments name the Java
// member each constant or function mirrors. Where the two differ:
//  - randomness: Beam seeds a java.util.Random with each event id; the Flink
//    variant draws from one unseeded generator, which is neither repeatable
//    nor resumable, so we follow Beam (and the Flink variant's first commit);
//  - bids: we follow the Flink variant (channel and url fields, event-type
//    proportions and category count taken from the config) except that its
//    second `bidder += FIRST_PERSON_ID` (nexmark issue #30) is not repeated;
//  - extra padding: the Flink variant slices a 1 MiB string made by an
//    unseeded generator; we keep Beam's per-event nextExactString;
//  - the stream starts at event id 0 and event number 0, as Beam's
//    standardGeneratorConfig does (the Flink table source starts both at 1).

namespace stream::nexmark {
namespace {

constexpr std::int64_t first_person_id = 1000;   // GeneratorConfig
constexpr std::int64_t first_auction_id = 1000;  // GeneratorConfig
constexpr std::int64_t first_category_id = 10;   // GeneratorConfig
constexpr std::int64_t person_id_lead = 10;      // PersonGenerator
constexpr std::int64_t auction_id_lead = 10;     // AuctionGenerator
// HOT_SELLER_RATIO, HOT_AUCTION_RATIO and HOT_BIDDER_RATIO of the generators:
// hot ids are the first (second for bidders) of each batch of 100.
constexpr std::int64_t hot_seller_batch = 100;
constexpr std::int64_t hot_auction_batch = 100;
constexpr std::int64_t hot_bidder_batch = 100;
constexpr std::int32_t hot_channels_ratio = 2;    // BidGenerator
constexpr std::int32_t channels_number = 10'000;  // BidGenerator
constexpr std::int32_t min_string_length = 3;     // StringsGenerator
// BidGenerator builds its url tables from an unseeded generator; any fixed
// seed keeps them repeatable.
constexpr std::int64_t channel_table_seed = 0;

constexpr std::array<std::string_view, 4> hot_channels = {  // BidGenerator
    "Google", "Facebook", "Baidu", "Apple"};
constexpr std::array<std::string_view, 6> us_states = {  // PersonGenerator
    "AZ", "CA", "ID", "OR", "WA", "WY"};
constexpr std::array<std::string_view, 10> us_cities = {  // PersonGenerator
    "Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland",
    "Bend",    "Redmond",     "Seattle",       "Kent",  "Cheyenne"};
constexpr std::array<std::string_view, 11> first_names = {  // PersonGenerator
    "Peter", "Paul",  "Luke",  "John",   "Saul",  "Vicky",
    "Kate",  "Julie", "Sarah", "Deiter", "Walter"};
constexpr std::array<std::string_view, 9> last_names = {  // PersonGenerator
    "Shultz", "Abrams", "Spencer", "White", "Bartels",
    "Walton", "Smith",  "Jones",   "Noris"};

/// Bit-exact java.util.Random: the 48-bit LCG with Java's seed scrambling,
/// next(bits), nextInt(), nextInt(bound), nextLong() and nextDouble().
class java_random {
 public:
  explicit java_random(std::int64_t seed) noexcept
      : state_((static_cast<std::uint64_t>(seed) ^ multiplier) & mask) {}

  std::int32_t next_int() noexcept { return next(32); }

  /// Uniform in [0, bound); requires bound > 0.
  std::int32_t next_int(std::int32_t bound) noexcept {
    assert(bound > 0);
    std::int32_t r = next(31);
    const std::int32_t m = bound - 1;
    if ((bound & m) == 0) {
      return static_cast<std::int32_t>((std::int64_t{bound} * r) >> 31);
    }
    // Java rejects draws from the last partial block of `bound` values (it
    // sees u - r + m overflow an int). Each round rejects with probability
    // below 1/2, so the expected number of rounds is below 2.
    for (std::int32_t u = r;; u = next(31)) {
      r = u % bound;
      if (std::int64_t{u} - r + m <= std::numeric_limits<std::int32_t>::max()) {
        return r;
      }
    }
  }

  std::int64_t next_long() noexcept {
    const auto high = static_cast<std::uint64_t>(std::int64_t{next(32)});
    const auto low = static_cast<std::uint64_t>(std::int64_t{next(32)});
    return static_cast<std::int64_t>((high << 32) + low);
  }

  double next_double() noexcept {
    const std::int64_t high = next(26);
    return static_cast<double>((high << 27) + next(27)) * 0x1.0p-53;
  }

 private:
  static constexpr std::uint64_t multiplier = 0x5DEECE66D;
  static constexpr std::uint64_t addend = 0xB;
  static constexpr std::uint64_t mask = (std::uint64_t{1} << 48) - 1;

  std::int32_t next(int bits) noexcept {
    state_ = (state_ * multiplier + addend) & mask;
    return static_cast<std::int32_t>(
        static_cast<std::uint32_t>(state_ >> (48 - bits)));
  }

  std::uint64_t state_;
};

/// Java's (long) conversion of a double: truncates, saturates, NaN gives 0.
std::int64_t java_double_to_long(double x) noexcept {
  if (std::isnan(x)) return 0;
  if (x >= 0x1.0p63) return std::numeric_limits<std::int64_t>::max();
  if (x <= -0x1.0p63) return std::numeric_limits<std::int64_t>::min();
  return static_cast<std::int64_t>(x);
}

/// Java's Math.round: the closest long, ties towards positive infinity.
std::int64_t java_round(double x) noexcept {
  const double below = std::floor(x);
  return java_double_to_long(x - below >= 0.5 ? below + 1 : below);
}

/// LongGenerator.nextLong: uniform in [0, n) for n < 2^31 - 1, else the
/// reference's skewed abs(nextLong() % n), kept for identical output.
std::int64_t next_long_below(java_random& random, std::int64_t n) {
  assert(n > 0);
  if (n < std::numeric_limits<std::int32_t>::max()) {
    return random.next_int(static_cast<std::int32_t>(n));
  }
  const std::int64_t r = random.next_long() % n;
  return r < 0 ? -r : r;
}

/// The java.util.Random seed of event `index`: the event id itself (Beam),
/// xor a splitmix64 finalisation of `seed`, which maps 0 to 0.
std::int64_t event_seed(std::uint64_t seed, std::uint64_t index) noexcept {
  seed = (seed ^ (seed >> 30)) * 0xbf58476d1ce4e5b9;
  seed = (seed ^ (seed >> 27)) * 0x94d049bb133111eb;
  seed ^= seed >> 31;
  return static_cast<std::int64_t>(index ^ seed);
}

/// PriceGenerator.nextPrice: cents, log-uniform over [1, 10^6] dollars.
/// Java's Math.pow may differ from std::pow in the last ulp, which would
/// matter only for a value within an ulp of half a cent.
std::int64_t next_price(java_random& random) {
  return java_round(std::pow(10.0, random.next_double() * 6.0) * 100.0);
}

/// StringsGenerator.nextString: 3 to max_length - 1 draws of a letter or
/// `special` (1 in 13), trimmed like Java's String.trim.
std::string next_string(java_random& random, std::int32_t max_length,
                        char special = ' ') {
  std::int32_t length =
      min_string_length + random.next_int(max_length - min_string_length);
  std::string out;
  out.reserve(static_cast<std::size_t>(length));
  for (; length > 0; --length) {
    out += random.next_int(13) == 0
               ? special
               : static_cast<char>('a' + random.next_int(26));
  }
  const auto blank = [](char c) {
    return static_cast<unsigned char>(c) <= ' ';
  };
  const auto first = std::find_if_not(out.begin(), out.end(), blank);
  const auto last = std::find_if_not(out.rbegin(), out.rend(), blank).base();
  return first < last ? std::string(first, last) : std::string();
}

/// StringsGenerator.nextExactString (Beam): six characters per nextInt().
/// Java's remainder of a negative int is negative, so characters range over
/// 'a' - 25 ('H') to 'z', backslash and brackets included.
std::string next_exact_string(java_random& random, std::int32_t length) {
  std::string out(static_cast<std::size_t>(length), '\0');
  std::int32_t bits = 0;
  int left = 0;  // Characters still to take from `bits`; 26^6 < 2^31.
  for (char& c : out) {
    if (left == 0) {
      bits = random.next_int();
      left = 6;
    }
    c = static_cast<char>('a' + bits % 26);
    bits /= 26;
    --left;
  }
  return out;
}

/// StringsGenerator.nextExtra: padding so that current_size plus its length
/// averages `average_size` (uniform within +-20%).
std::string next_extra(java_random& random, std::int32_t current_size,
                       std::int32_t average_size) {
  if (current_size > average_size) return {};
  const std::int32_t wanted = average_size - current_size;
  const auto delta = static_cast<std::int32_t>(java_round(wanted * 0.2));
  const std::int32_t size =
      wanted - delta + (delta == 0 ? 0 : random.next_int(2 * delta));
  return next_exact_string(random, size);
}

/// The event-type cycle of a config, widened once per event.
struct proportions {
  std::int64_t person;
  std::int64_t auction;
  std::int64_t total;
  explicit proportions(const generator_config& c)
      : person(c.person_proportion),
        auction(c.auction_proportion),
        total(person + auction + c.bid_proportion) {}
};

/// GeneratorConfig.timestampForEvent with one rate and one generator.
std::int64_t timestamp_for_event(const generator_config& config,
                                 std::int64_t event_number) {
  const double inter_event_delay_us = 1'000'000.0 / config.events_per_second;
  return config.base_time +
         java_double_to_long(static_cast<double>(event_number) *
                             inter_event_delay_us) /
             1000;
}

/// PersonGenerator.lastBase0PersonId: the newest person id (base 0).
std::int64_t last_base0_person_id(const proportions& p, std::int64_t id) {
  return id / p.total * p.person + std::min(id % p.total, p.person - 1);
}

/// AuctionGenerator.lastBase0AuctionId: the newest auction id (base 0), -1
/// before the first auction.
std::int64_t last_base0_auction_id(const proportions& p, std::int64_t id) {
  std::int64_t epoch = id / p.total;
  std::int64_t offset = id % p.total;
  if (offset < p.person) {
    --epoch;
    offset = p.auction - 1;
  } else if (offset >= p.person + p.auction) {
    offset = p.auction - 1;
  } else {
    offset -= p.person;
  }
  return epoch * p.auction + offset;
}

/// PersonGenerator.nextBase0PersonId: one of the active people or up to
/// person_id_lead - 1 ids ahead of the newest.
std::int64_t next_base0_person_id(const generator_config& config,
                                  const proportions& p, std::int64_t id,
                                  java_random& random) {
  const std::int64_t people = last_base0_person_id(p, id) + 1;
  const std::int64_t active =
      std::min<std::int64_t>(people, config.num_active_people);
  return people - active + next_long_below(random, active + person_id_lead);
}

/// AuctionGenerator.nextBase0AuctionId: one of the in-flight auctions or up
/// to auction_id_lead ids ahead of the newest.
std::int64_t next_base0_auction_id(const generator_config& config,
                                   const proportions& p, std::int64_t id,
                                   java_random& random) {
  const std::int64_t newest = last_base0_auction_id(p, id);
  const std::int64_t oldest =
      std::max<std::int64_t>(newest - config.num_in_flight_auctions, 0);
  return oldest +
         next_long_below(random, newest - oldest + 1 + auction_id_lead);
}

/// Base urls and the channel cache of BidGenerator, built once.
struct channel_table {
  std::array<std::string, hot_channels.size()> hot_urls;
  std::vector<std::string> names;
  std::vector<std::string> urls;
};

std::string next_base_url(java_random& random) {  // BidGenerator.getBaseUrl
  std::string url = "https://www.nexmark.com/";
  for (int part = 0; part < 3; ++part) {
    url += next_string(random, 5, '_');
    url += '/';
  }
  return url + "item.htm?query=1";
}

/// Java's Math.abs(Integer.reverse(i)); abs of INT_MIN stays negative.
std::int64_t reversed_channel_id(std::int32_t i) {
  std::uint32_t in = static_cast<std::uint32_t>(i);
  std::uint32_t out = 0;
  for (int bit = 0; bit < 32; ++bit, in >>= 1) out = (out << 1) | (in & 1);
  const auto value = static_cast<std::int32_t>(out);
  return value == std::numeric_limits<std::int32_t>::min() ? value
                                                           : std::abs(value);
}

const channel_table& channels() {
  static const channel_table table = [] {
    java_random random(channel_table_seed);
    channel_table t;
    for (std::string& url : t.hot_urls) url = next_base_url(random);
    t.names.reserve(channels_number);
    t.urls.reserve(channels_number);
    for (std::int32_t i = 0; i < channels_number; ++i) {
      std::string url = next_base_url(random);
      if (random.next_int(10) > 0) {
        url += "&channel_id=" + std::to_string(reversed_channel_id(i));
      }
      t.names.push_back("channel-" + std::to_string(i));
      t.urls.push_back(std::move(url));
    }
    return t;
  }();
  return table;
}

std::int32_t size_of(std::string_view s) {
  return static_cast<std::int32_t>(s.size());
}

template <std::size_t N>
constexpr std::int32_t size_of_array(const std::array<std::string_view, N>&) {
  return static_cast<std::int32_t>(N);
}

/// PersonGenerator.nextPerson. Statements keep Java's draw order.
person next_person(const generator_config& config, const proportions& p,
                   std::int64_t id, java_random& random,
                   std::int64_t timestamp) {
  person out;
  out.id = last_base0_person_id(p, id) + first_person_id;
  out.name = first_names[random.next_int(size_of_array(first_names))];
  out.name += ' ';
  out.name += last_names[random.next_int(size_of_array(last_names))];
  out.email_address = next_string(random, 7);
  out.email_address += '@';
  out.email_address += next_string(random, 5);
  out.email_address += ".com";
  for (int group = 0; group < 4; ++group) {
    const std::int32_t digits = random.next_int(10'000);
    if (group > 0) out.credit_card += ' ';
    out.credit_card += static_cast<char>('0' + digits / 1000);
    out.credit_card += static_cast<char>('0' + digits / 100 % 10);
    out.credit_card += static_cast<char>('0' + digits / 10 % 10);
    out.credit_card += static_cast<char>('0' + digits % 10);
  }
  out.city = us_cities[random.next_int(size_of_array(us_cities))];
  out.state = us_states[random.next_int(size_of_array(us_states))];
  out.date_time = timestamp;
  const std::int32_t current_size =
      8 + size_of(out.name) + size_of(out.email_address) +
      size_of(out.credit_card) + size_of(out.city) + size_of(out.state);
  out.extra =
      next_extra(random, current_size,
                 static_cast<std::int32_t>(config.avg_person_byte_size));
  return out;
}

/// AuctionGenerator.nextAuctionLengthMs: uniform in [1, 2 * the event time
/// until num_in_flight_auctions more auctions exist].
std::int64_t next_auction_length_ms(const generator_config& config,
                                    const proportions& p, std::int64_t id,
                                    java_random& random,
                                    std::int64_t timestamp) {
  const std::int64_t events_for_auctions =
      std::int64_t{config.num_in_flight_auctions} * p.total / p.auction;
  const std::int64_t horizon_ms =
      timestamp_for_event(config, id + events_for_auctions) - timestamp;
  return 1 + next_long_below(random, std::max<std::int64_t>(horizon_ms * 2, 1));
}

/// AuctionGenerator.nextAuction. Statements keep Java's draw order.
auction next_auction(const generator_config& config, const proportions& p,
                     std::int64_t id, java_random& random,
                     std::int64_t timestamp) {
  auction out;
  out.id = last_base0_auction_id(p, id) + first_auction_id;
  const auto hot_ratio = static_cast<std::int32_t>(config.hot_seller_ratio);
  if (random.next_int(hot_ratio) > 0) {
    out.seller =
        last_base0_person_id(p, id) / hot_seller_batch * hot_seller_batch;
  } else {
    out.seller = next_base0_person_id(config, p, id, random);
  }
  out.seller += first_person_id;
  out.category =
      first_category_id +
      random.next_int(static_cast<std::int32_t>(config.num_categories));
  out.initial_bid = next_price(random);
  out.date_time = timestamp;
  out.expires =
      timestamp + next_auction_length_ms(config, p, id, random, timestamp);
  out.item_name = next_string(random, 20);
  out.description = next_string(random, 100);
  out.reserve = out.initial_bid + next_price(random);
  const std::int32_t current_size =
      8 + size_of(out.item_name) + size_of(out.description) + 5 * 8;
  out.extra =
      next_extra(random, current_size,
                 static_cast<std::int32_t>(config.avg_auction_byte_size));
  return out;
}

/// BidGenerator.nextBid (Flink variant). Statements keep Java's draw order.
bid next_bid(const generator_config& config, const proportions& p,
             std::int64_t id, java_random& random, std::int64_t timestamp) {
  bid out;
  if (random.next_int(static_cast<std::int32_t>(config.hot_auction_ratio)) >
      0) {
    out.auction =
        last_base0_auction_id(p, id) / hot_auction_batch * hot_auction_batch;
  } else {
    out.auction = next_base0_auction_id(config, p, id, random);
  }
  out.auction += first_auction_id;
  if (random.next_int(static_cast<std::int32_t>(config.hot_bidder_ratio)) > 0) {
    // The second person of the batch, so hot bidders and sellers differ.
    out.bidder =
        last_base0_person_id(p, id) / hot_bidder_batch * hot_bidder_batch + 1;
  } else {
    out.bidder = next_base0_person_id(config, p, id, random);
  }
  out.bidder += first_person_id;  // Once: see the note at the top.
  out.price = next_price(random);
  const channel_table& table = channels();
  if (random.next_int(hot_channels_ratio) > 0) {
    const std::int32_t i = random.next_int(size_of_array(hot_channels));
    out.channel = hot_channels[i];
    out.url = table.hot_urls[i];
  } else {
    const std::int32_t i = random.next_int(channels_number);
    out.channel = table.names[i];
    out.url = table.urls[i];
  }
  out.date_time = timestamp;
  // The reference counts only the four numeric fields here.
  out.extra = next_extra(random, 4 * 8,
                         static_cast<std::int32_t>(config.avg_bid_byte_size));
  return out;
}

status invalid_field(std::string_view field, std::string_view requirement,
                     std::string_view got) {
  return {errc::invalid_argument, "generator_config." + std::string(field) +
                                      " must be " + std::string(requirement) +
                                      ", got " + std::string(got)};
}

}  // namespace

std::string_view to_string(event_type type) noexcept {
  switch (type) {
    case event_type::person:
      return "person";
    case event_type::auction:
      return "auction";
    case event_type::bid:
      return "bid";
  }
  return "unknown";
}

std::int64_t event::timestamp() const noexcept {
  switch (type) {
    case event_type::person:
      return p.date_time;
    case event_type::auction:
      return a.date_time;
    case event_type::bid:
      return b.date_time;
  }
  return 0;
}

status generator_config::validate() const {
  // Bounds keep every intermediate of the id and time arithmetic within
  // int64 for indices up to max_event_index, keep nextInt bounds within
  // Java's int, and cap the padding a single event may allocate.
  constexpr std::uint64_t int_max = std::numeric_limits<std::int32_t>::max();
  constexpr std::uint64_t max_proportion = 1'000'000;
  constexpr std::uint64_t max_byte_size = 1 << 20;
  if (!std::isfinite(events_per_second) || events_per_second <= 0) {
    std::array<char, 32> text{};
    const auto end =
        std::to_chars(text.data(), text.data() + text.size(), events_per_second)
            .ptr;
    return invalid_field("events_per_second", "a finite number > 0",
                         std::string_view(text.data(), end - text.data()));
  }
  if (base_time < 0 || base_time > std::int64_t{1} << 62) {
    return invalid_field("base_time", "in [0, 2^62] ms since the epoch",
                         std::to_string(base_time));
  }
  struct range {
    std::string_view field;
    std::uint64_t value;
    std::uint64_t low;
    std::uint64_t high;
  };
  const std::array<range, 12> ranges = {{
      {"person_proportion", person_proportion, 1, max_proportion},
      {"auction_proportion", auction_proportion, 1, max_proportion},
      {"bid_proportion", bid_proportion, 0, max_proportion},
      {"hot_auction_ratio", hot_auction_ratio, 1, int_max},
      {"hot_seller_ratio", hot_seller_ratio, 1, int_max},
      {"hot_bidder_ratio", hot_bidder_ratio, 1, int_max},
      {"num_active_people", num_active_people, 1, int_max},
      {"num_in_flight_auctions", num_in_flight_auctions, 1, int_max},
      {"avg_person_byte_size", avg_person_byte_size, 0, max_byte_size},
      {"avg_auction_byte_size", avg_auction_byte_size, 0, max_byte_size},
      {"avg_bid_byte_size", avg_bid_byte_size, 0, max_byte_size},
      {"num_categories", num_categories, 1, int_max},
  }};
  for (const range& r : ranges) {
    if (r.value < r.low || r.value > r.high) {
      return invalid_field(
          r.field,
          "in [" + std::to_string(r.low) + ", " + std::to_string(r.high) + "]",
          std::to_string(r.value));
    }
  }
  return {};
}

event make_event(const generator_config& config, std::uint64_t index) {
  assert(config.validate().ok());
  assert(index <= max_event_index);
  const proportions p(config);
  // Event id and event number coincide: first id 0, out-of-order groups of 1.
  const auto id = static_cast<std::int64_t>(index);
  java_random random(event_seed(config.seed, index));
  const std::int64_t timestamp = timestamp_for_event(config, id);
  const std::int64_t slot = id % p.total;
  event out;
  if (slot < p.person) {
    out.type = event_type::person;
    out.p = next_person(config, p, id, random, timestamp);
  } else if (slot < p.person + p.auction) {
    out.type = event_type::auction;
    out.a = next_auction(config, p, id, random, timestamp);
  } else {
    out.type = event_type::bid;
    out.b = next_bid(config, p, id, random, timestamp);
  }
  return out;
}

// ---------------------------------------------------------------------------
// JSON lines

namespace {

/// One JSON key and the member it maps to; exactly one pointer is set.
template <class T>
struct json_field {
  std::string_view key;
  std::int64_t T::*integer = nullptr;
  std::string T::*text = nullptr;
};

template <class T>
constexpr json_field<T> integer_field(std::string_view key,
                                      std::int64_t T::*member) {
  return {key, member, nullptr};
}

template <class T>
constexpr json_field<T> text_field(std::string_view key,
                                   std::string T::*member) {
  return {key, nullptr, member};
}

// The standard camelCase names, in the order writers emit them.
constexpr std::array<json_field<person>, 8> person_fields = {
    integer_field("id", &person::id),
    text_field("name", &person::name),
    text_field("emailAddress", &person::email_address),
    text_field("creditCard", &person::credit_card),
    text_field("city", &person::city),
    text_field("state", &person::state),
    integer_field("dateTime", &person::date_time),
    text_field("extra", &person::extra)};
constexpr std::array<json_field<auction>, 10> auction_fields = {
    integer_field("id", &auction::id),
    text_field("itemName", &auction::item_name),
    text_field("description", &auction::description),
    integer_field("initialBid", &auction::initial_bid),
    integer_field("reserve", &auction::reserve),
    integer_field("dateTime", &auction::date_time),
    integer_field("expires", &auction::expires),
    integer_field("seller", &auction::seller),
    integer_field("category", &auction::category),
    text_field("extra", &auction::extra)};
constexpr std::array<json_field<bid>, 7> bid_fields = {
    integer_field("auction", &bid::auction),
    integer_field("bidder", &bid::bidder),
    integer_field("price", &bid::price),
    text_field("channel", &bid::channel),
    text_field("url", &bid::url),
    integer_field("dateTime", &bid::date_time),
    text_field("extra", &bid::extra)};

void append_key(std::string& out, std::string_view key) {
  out.append(",\"", 2).append(key).append("\":", 2);
}

void append_integer(std::string& out, std::int64_t value) {
  std::array<char, 24> digits{};
  const auto end =
      std::to_chars(digits.data(), digits.data() + digits.size(), value).ptr;
  out.append(digits.data(), end);
}

/// Whether any of the 8 bytes of `word` is below 0x20, '"' or '\'; the
/// zero-byte tests of Hacker's Delight 6-1, exact as a whole-word answer.
constexpr bool needs_escape(std::uint64_t word) {
  constexpr std::uint64_t ones = 0x0101010101010101;
  constexpr std::uint64_t highs = 0x8080808080808080;
  const auto any_below = [](std::uint64_t w, std::uint64_t n) {
    return (w - ones * n) & ~w & highs;
  };
  return (any_below(word, 0x20) | any_below(word ^ (ones * '"'), 1) |
          any_below(word ^ (ones * '\\'), 1)) != 0;
}

/// A JSON string: `"` and `\` escaped, control characters as \u00XX, other
/// bytes (UTF-8) copied as they are. Most 8-byte words need no escape and
/// are skipped whole.
void append_string(std::string& out, std::string_view value) {
  out += '"';
  std::size_t run = 0;  // Start of the bytes not yet copied.
  std::size_t i = 0;
  while (i < value.size()) {
    if (value.size() - i >= 8) {
      std::uint64_t word = 0;
      std::memcpy(&word, value.data() + i, sizeof word);
      if (!needs_escape(word)) {
        i += 8;
        continue;
      }
    }
    const auto c = static_cast<unsigned char>(value[i++]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(value.data() + run, i - 1 - run);
    run = i;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else {
      out.append("\\u00", 4);
      out += "0123456789abcdef"[c >> 4];
      out += "0123456789abcdef"[c & 0xf];
    }
  }
  out.append(value.data() + run, value.size() - run);
  out += '"';
}

template <class T, std::size_t N>
void append_object(std::string& out, std::string_view type, const T& value,
                   const std::array<json_field<T>, N>& fields) {
  out += R"({"type":")";
  out += type;
  out += '"';
  for (const json_field<T>& field : fields) {
    append_key(out, field.key);
    if (field.integer != nullptr) {
      append_integer(out, value.*field.integer);
    } else {
      append_string(out, value.*field.text);
    }
  }
  out += '}';
}

using json = nlohmann::json;

status malformed(std::string message) {
  return {errc::malformed_data, std::move(message)};
}

/// A JSON value for a message: ASCII-escaped and cut to 64 characters.
std::string excerpt(const json& value) {
  std::string text = value.dump(-1, ' ', true);
  if (text.size() > 64) text = text.substr(0, 61) + "...";
  return text;
}

std::string describe(const json& value) {
  return std::string(value.is_number_float() ? "floating-point number"
                                             : value.type_name()) +
         " " + excerpt(value);
}

/// `value` as an int64, or the problem with it.
status read_integer(const json& value, std::int64_t& out) {
  if (value.is_number_unsigned()) {
    const auto u = value.get<std::uint64_t>();
    if (u >
        static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return malformed("is out of int64 range: " + excerpt(value));
    }
    out = static_cast<std::int64_t>(u);
    return {};
  }
  if (value.is_number_integer()) {
    out = value.get<std::int64_t>();
    return {};
  }
  if (value.is_number_float()) {
    // Integer literals beyond 64 bits reach us as doubles.
    const double d = value.get<double>();
    if (std::trunc(d) == d && std::abs(d) >= 0x1.0p63) {
      return malformed("is out of int64 range: " + excerpt(value));
    }
  }
  return malformed("must be an integer, got " + describe(value));
}

template <class T, std::size_t N>
status read_object(const json& object, std::string_view type,
                   const std::array<json_field<T>, N>& fields, T& out) {
  for (const json_field<T>& field : fields) {
    const auto it = object.find(field.key);
    if (it == object.end()) {
      return malformed(std::string(type) + ": missing required field \"" +
                       std::string(field.key) + "\"");
    }
    status s;
    if (field.integer != nullptr) {
      s = read_integer(*it, out.*field.integer);
    } else if (it->is_string()) {
      out.*field.text = it->template get_ref<const std::string&>();
    } else {
      s = malformed("must be a string, got " + describe(*it));
    }
    if (!s.ok()) {
      return malformed(std::string(type) + ": field \"" +
                       std::string(field.key) + "\" " + s.message());
    }
  }
  return {};
}

status read_event(const json& object, event& out) {
  const auto type = object.find("type");
  if (type == object.end()) {
    return malformed("missing required field \"type\"");
  }
  if (!type->is_string()) {
    return malformed("field \"type\" must be a string, got " + describe(*type));
  }
  const auto& name = type->get_ref<const std::string&>();
  if (name == "person") {
    out.type = event_type::person;
    return read_object(object, name, person_fields, out.p);
  }
  if (name == "auction") {
    out.type = event_type::auction;
    return read_object(object, name, auction_fields, out.a);
  }
  if (name == "bid") {
    out.type = event_type::bid;
    return read_object(object, name, bid_fields, out.b);
  }
  return malformed("unknown event type " + excerpt(*type) +
                   "; expected \"person\", \"auction\" or \"bid\"");
}

}  // namespace

void append_json(const event& e, std::string& out) {
  const std::string_view type = to_string(e.type);
  switch (e.type) {
    case event_type::person:
      return append_object(out, type, e.p, person_fields);
    case event_type::auction:
      return append_object(out, type, e.a, auction_fields);
    case event_type::bid:
      return append_object(out, type, e.b, bid_fields);
  }
}

std::string to_json(const event& e) {
  std::string out;
  append_json(e, out);
  return out;
}

result<event> parse_json(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  try {
    const json object = json::parse(line.begin(), line.end());
    if (!object.is_object()) {
      return malformed("expected a JSON object, got " +
                       std::string(object.type_name()));
    }
    event out;
    if (status s = read_event(object, out); !s.ok()) return s;
    return out;
  } catch (const json::parse_error& e) {
    // what() reads "[json.exception.parse_error.101] parse error at line 1,
    // column 5: ..."; the bracketed tag helps no user. e.byte counts from 1.
    std::string_view reason = e.what();
    if (const auto tag_end = reason.find("] "); tag_end != reason.npos) {
      reason.remove_prefix(tag_end + 2);
    }
    const std::size_t offset = e.byte == 0 ? 0 : e.byte - 1;
    return malformed("not valid JSON at offset " + std::to_string(offset) +
                     " of " + std::to_string(line.size()) +
                     " bytes: " + std::string(reason));
  } catch (const json::exception& e) {
    return malformed("not valid JSON: " + std::string(e.what()));
  } catch (const std::bad_alloc&) {
    return status(errc::internal, "out of memory parsing a JSON line of " +
                                      std::to_string(line.size()) + " bytes");
  }
}

}  // namespace stream::nexmark
