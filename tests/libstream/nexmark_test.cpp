#include "stream/nexmark.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace {

using stream::errc;
using stream::nexmark::event;
using stream::nexmark::event_type;
using stream::nexmark::generator_config;
using stream::nexmark::make_event;
using stream::nexmark::parse_json;
using stream::nexmark::to_json;

constexpr std::int64_t base_time = 1'700'000'000'000;

/// The active member as one tab-separated line: the format in which the
/// reference generator's output was dumped for the golden digests below.
std::string tsv_line(const event& e) {
  std::string line;
  const auto add = [&line](const auto& value) {
    line += '\t';
    if constexpr (std::is_same_v<std::decay_t<decltype(value)>, std::string>) {
      line += value;
    } else {
      line += std::to_string(value);
    }
  };
  switch (e.type) {
    case event_type::person:
      line = "P";
      add(e.p.id);
      add(e.p.name);
      add(e.p.email_address);
      add(e.p.credit_card);
      add(e.p.city);
      add(e.p.state);
      add(e.p.date_time);
      add(e.p.extra);
      break;
    case event_type::auction:
      line = "A";
      add(e.a.id);
      add(e.a.item_name);
      add(e.a.description);
      add(e.a.initial_bid);
      add(e.a.reserve);
      add(e.a.date_time);
      add(e.a.expires);
      add(e.a.seller);
      add(e.a.category);
      add(e.a.extra);
      break;
    case event_type::bid:
      line = "B";
      add(e.b.auction);
      add(e.b.bidder);
      add(e.b.price);
      add(e.b.channel);
      add(e.b.url);
      add(e.b.date_time);
      add(e.b.extra);
      break;
  }
  return line + '\n';
}

/// FNV-1a 64 of the tsv lines of events [0, count).
std::uint64_t stream_digest(const generator_config& config, int count) {
  std::uint64_t hash = 0xcbf29ce484222325;
  for (int i = 0; i < count; ++i) {
    for (const char c : tsv_line(make_event(config, i))) {
      hash ^= static_cast<unsigned char>(c);
      hash *= 0x100000001b3;
    }
  }
  return hash;
}

/// The type the default 1:3:46 cycle assigns to index i.
event_type default_type(std::uint64_t i) {
  const std::uint64_t slot = i % 50;
  if (slot == 0) return event_type::person;
  return slot < 4 ? event_type::auction : event_type::bid;
}

/// The reference timestampForEvent for `config`.
std::int64_t expected_time(const generator_config& config, std::int64_t i) {
  return config.base_time +
         static_cast<std::int64_t>(static_cast<double>(i) *
                                   (1e6 / config.events_per_second)) /
             1000;
}

event parse_ok(std::string_view line) {
  const auto parsed = parse_json(line);
  EXPECT_TRUE(parsed.ok()) << parsed.error().to_string() << " for " << line;
  return parsed.ok() ? *parsed : event{};
}

/// The message of a parse that must fail with malformed_data.
std::string parse_error(std::string_view line) {
  const auto parsed = parse_json(line);
  EXPECT_FALSE(parsed.ok()) << "accepted " << line;
  if (parsed.ok()) return {};
  EXPECT_EQ(parsed.error().code(), errc::malformed_data) << line;
  return parsed.error().message();
}

TEST(nexmark, default_config_is_valid_and_bad_fields_are_named) {
  EXPECT_TRUE(generator_config{}.validate().ok());
  const auto check = [](auto mutate, std::string_view field) {
    generator_config config;
    mutate(config);
    const stream::status s = config.validate();
    EXPECT_EQ(s.code(), errc::invalid_argument) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  };
  check([](auto& c) { c.events_per_second = 0; }, "events_per_second");
  check(
      [](auto& c) {
        c.events_per_second = -std::numeric_limits<double>::infinity();
      },
      "events_per_second");
  check([](auto& c) { c.base_time = -1; }, "base_time");
  check([](auto& c) { c.person_proportion = 0; }, "person_proportion");
  check([](auto& c) { c.auction_proportion = 0; }, "auction_proportion");
  check([](auto& c) { c.bid_proportion = 2'000'000; }, "bid_proportion");
  check([](auto& c) { c.hot_auction_ratio = 0; }, "hot_auction_ratio");
  check([](auto& c) { c.hot_seller_ratio = 0; }, "hot_seller_ratio");
  check([](auto& c) { c.hot_bidder_ratio = 0; }, "hot_bidder_ratio");
  check([](auto& c) { c.num_active_people = 0; }, "num_active_people");
  check([](auto& c) { c.num_in_flight_auctions = 0; },
        "num_in_flight_auctions");
  check([](auto& c) { c.avg_bid_byte_size = 1u << 30; }, "avg_bid_byte_size");
  check([](auto& c) { c.num_categories = 0; }, "num_categories");
}

TEST(nexmark, make_event_is_a_pure_function_of_config_and_index) {
  const generator_config config;
  // Backwards and far ahead: no hidden state between calls.
  for (std::uint64_t i : {1'000'000'000'000ull, 49ull, 7ull, 0ull, 12'345ull}) {
    EXPECT_EQ(make_event(config, i), make_event(config, i)) << i;
  }
  for (std::uint64_t i = 0; i < 2'000; ++i) {
    ASSERT_EQ(make_event(config, i), make_event(config, i)) << i;
  }
}

TEST(nexmark, a_nonzero_seed_changes_the_stream_deterministically) {
  generator_config standard;
  generator_config one;
  one.seed = 1;
  generator_config two;
  two.seed = 2;
  int differ_from_standard = 0;
  int differ_one_two = 0;
  for (std::uint64_t i = 0; i < 1'000; ++i) {
    const event e0 = make_event(standard, i);
    const event e1 = make_event(one, i);
    ASSERT_EQ(e1, make_event(one, i)) << i;
    // The seed changes the random content, not the shape of the stream.
    ASSERT_EQ(e1.type, e0.type) << i;
    ASSERT_EQ(e1.timestamp(), e0.timestamp()) << i;
    differ_from_standard += e1 != e0;
    differ_one_two += e1 != make_event(two, i);
  }
  EXPECT_GE(differ_from_standard, 990);
  EXPECT_GE(differ_one_two, 990);
}

TEST(nexmark, types_follow_the_1_3_46_cycle) {
  const generator_config config;
  std::vector<int> counts(3, 0);
  for (std::uint64_t i = 0; i < 50'000; ++i) {
    const event e = make_event(config, i);
    ASSERT_EQ(e.type, default_type(i)) << i;
    ++counts[static_cast<int>(e.type)];
    if ((i + 1) % 50 == 0) {
      ASSERT_EQ(counts, (std::vector<int>{1, 3, 46})) << "cycle ending " << i;
      counts.assign(3, 0);
    }
  }
}

TEST(nexmark, custom_proportions_set_the_cycle) {
  generator_config config;
  config.person_proportion = 2;
  config.auction_proportion = 5;
  config.bid_proportion = 13;
  for (std::uint64_t i = 0; i < 2'000; ++i) {
    const std::uint64_t slot = i % 20;
    const event_type want = slot < 2   ? event_type::person
                            : slot < 7 ? event_type::auction
                                       : event_type::bid;
    ASSERT_EQ(make_event(config, i).type, want) << i;
  }
}

TEST(nexmark, ids_are_sequential_and_references_stay_near_existing_ids) {
  const generator_config config;
  // The reference allows non-hot picks up to 10 ids past the newest person
  // or auction (PERSON_ID_LEAD, AUCTION_ID_LEAD), and a hot bidder is the
  // second person of the newest batch of 100, which may not exist yet.
  constexpr std::int64_t lead = 10;
  std::int64_t last_person = 999;
  std::int64_t last_auction = 999;
  int bids = 0;
  int bids_on_existing = 0;
  for (std::uint64_t i = 0; i < 200'000; ++i) {
    const event e = make_event(config, i);
    switch (e.type) {
      case event_type::person:
        ASSERT_EQ(e.p.id, last_person + 1) << i;
        last_person = e.p.id;
        break;
      case event_type::auction:
        ASSERT_EQ(e.a.id, last_auction + 1) << i;
        last_auction = e.a.id;
        ASSERT_GE(e.a.seller, std::max<std::int64_t>(last_person - 999, 1000));
        ASSERT_LE(e.a.seller, last_person + lead) << i;
        break;
      case event_type::bid:
        ASSERT_GE(e.b.auction, std::max<std::int64_t>(last_auction - 100, 1000))
            << i;
        ASSERT_LE(e.b.auction, last_auction + lead) << i;
        ASSERT_GE(e.b.bidder, std::max<std::int64_t>(last_person - 999, 1000))
            << i;
        ASSERT_LE(e.b.bidder, last_person + lead) << i;
        ++bids;
        bids_on_existing +=
            e.b.auction <= last_auction && e.b.bidder <= last_person;
        break;
    }
  }
  EXPECT_EQ(last_person, 1000 + 200'000 / 50 - 1);
  EXPECT_EQ(last_auction, 1000 + 3 * 200'000 / 50 - 1);
  // Leads are the exception: about 4.5% of auctions and 1% of bidders.
  EXPECT_GT(bids_on_existing, bids * 9 / 10);
  EXPECT_LT(bids_on_existing, bids);
}

TEST(nexmark, values_and_times_respect_the_reference_ranges) {
  for (const double rate : {10'000.0, 3'000.0, 7.0}) {
    generator_config config;
    config.events_per_second = rate;
    std::int64_t previous = config.base_time;
    std::int64_t bid_bytes = 0;
    int bid_count = 0;
    for (std::int64_t i = 0; i < 50'000; ++i) {
      const event e = make_event(config, static_cast<std::uint64_t>(i));
      ASSERT_EQ(e.timestamp(), expected_time(config, i)) << i;
      ASSERT_GE(e.timestamp(), previous) << i;
      previous = e.timestamp();
      if (e.type == event_type::auction) {
        ASSERT_GT(e.a.initial_bid, 0) << i;
        ASSERT_GT(e.a.reserve, e.a.initial_bid) << i;
        ASSERT_GE(e.a.category, 10) << i;
        ASSERT_LT(e.a.category, 15) << i;
        ASSERT_GT(e.a.expires, e.a.date_time) << i;
        // At most twice the time until 100 more auctions (1666 events).
        ASSERT_LE(e.a.expires - e.a.date_time,
                  2 * (expected_time(config, i + 1666) - e.a.date_time) + 1);
      } else if (e.type == event_type::bid) {
        ASSERT_GT(e.b.price, 0) << i;
        ASSERT_LE(e.b.price, 100'000'000) << i;
        ASSERT_FALSE(e.b.channel.empty()) << i;
        ASSERT_EQ(e.b.url.rfind("https://www.nexmark.com/", 0), 0u) << i;
        bid_bytes += 32 + static_cast<std::int64_t>(e.b.extra.size());
        ++bid_count;
      } else {
        ASSERT_EQ(e.p.city.empty(), false) << i;
        ASSERT_EQ(e.p.credit_card.size(), 19u) << i;
      }
    }
    // nextExtra pads bids to avg_bid_byte_size on average.
    EXPECT_NEAR(static_cast<double>(bid_bytes) / bid_count, 100.0, 2.0);
  }
}

TEST(nexmark, far_indices_are_generated_directly) {
  const generator_config config;
  const std::uint64_t index = 1'000'000'000'000;  // A person slot.
  const event e = make_event(config, index);
  ASSERT_EQ(e.type, event_type::person);
  EXPECT_EQ(e.p.id, 1000 + 20'000'000'000);
  EXPECT_EQ(e.timestamp(), base_time + 100'000'000'000);
  const event last = make_event(config, stream::nexmark::max_event_index);
  EXPECT_GT(last.timestamp(), base_time);
}

/// Most-bid auction's count over the average count per auction.
double hottest_auction_share(const generator_config& config) {
  std::unordered_map<std::int64_t, int> bids_per_auction;
  int bids = 0;
  for (std::uint64_t i = 0; bids < 100'000; ++i) {
    const event e = make_event(config, i);
    if (e.type != event_type::bid) continue;
    ++bids_per_auction[e.b.auction];
    ++bids;
  }
  int top = 0;
  for (const auto& [auction, count] : bids_per_auction) {
    top = std::max(top, count);
  }
  const auto auctions = static_cast<double>(bids_per_auction.size());
  return top / (bids / auctions);
}

TEST(nexmark, hot_auctions_draw_a_large_share_of_bids) {
  generator_config config;
  // Half the bids go to 1 auction in 100: the top one has ~50x the average.
  EXPECT_GT(hottest_auction_share(config), 20.0);
  // hot_auction_ratio 1 means no hot auctions (nextInt(1) is always 0).
  config.hot_auction_ratio = 1;
  EXPECT_LT(hottest_auction_share(config), 5.0);
}

TEST(nexmark, seed_zero_reproduces_the_reference_generator) {
  // Values printed by the reference Java sources (nexmark-flink generator,
  // seeded per event id as in Beam, bidder id added once) under JDK 17.
  const generator_config config;
  const event e0 = make_event(config, 0);
  ASSERT_EQ(e0.type, event_type::person);
  EXPECT_EQ(e0.p.id, 1000);
  EXPECT_EQ(e0.p.name, "Peter Jones");
  EXPECT_EQ(e0.p.email_address, "nhd@xcat.com");
  EXPECT_EQ(e0.p.credit_card, "7241 7320 9143 4888");
  EXPECT_EQ(e0.p.city, "Portland");
  EXPECT_EQ(e0.p.state, "WY");
  EXPECT_EQ(e0.p.date_time, base_time);
  EXPECT_EQ(
      e0.p.extra,
      R"(WN_HS_bnpkkiwhwana_L^`KZjdgsid`K]MLU[aaOH`ztxbulvlxtkn_ZZ^T\mqgdjzvlkymsmfrhkfVYSXK_OY[aVYVKa\X^]RO]OYguwiduWJNQLLaMLHOTaHY_J[YKWaUOSJN_VHWXZ]`SgbnjqeVVQ\[[)");

  const event e1 = make_event(config, 1);
  ASSERT_EQ(e1.type, event_type::auction);
  EXPECT_EQ(e1.a.id, 1000);
  EXPECT_EQ(e1.a.item_name, "wkx mgee");
  EXPECT_EQ(e1.a.description, "eszpqxtdxrvwmmywkmogoahf");
  EXPECT_EQ(e1.a.initial_bid, 28873);
  EXPECT_EQ(e1.a.reserve, 29448);
  EXPECT_EQ(e1.a.expires, base_time + 11);
  EXPECT_EQ(e1.a.seller, 1000);
  EXPECT_EQ(e1.a.category, 13);
  EXPECT_EQ(make_event(config, 2).a.id, 1001);
  EXPECT_EQ(make_event(config, 3).a.id, 1002);

  const event e4 = make_event(config, 4);
  ASSERT_EQ(e4.type, event_type::bid);
  EXPECT_EQ(e4.b.auction, 1000);
  EXPECT_EQ(e4.b.bidder, 1001);
  EXPECT_EQ(e4.b.price, 32530001);
  EXPECT_EQ(e4.b.channel, "Google");
  EXPECT_EQ(e4.b.url,
            "https://www.nexmark.com/xnhd/xcat/bwmn/item.htm?query=1");
  EXPECT_EQ(make_event(config, 5).b.bidder, 1009);
  const event e7 = make_event(config, 7);
  EXPECT_EQ(e7.b.channel, "channel-6254");
  EXPECT_EQ(e7.b.url,
            "https://www.nexmark.com/fsm/w_hh/kia/"
            "item.htm?query=1&channel_id=1981284352");

  // Every field of the first 10,000 events, default and custom configs.
  EXPECT_EQ(stream_digest(config, 10'000), 0xf781d841f16971eeull);
  generator_config custom;
  custom.events_per_second = 3'000;
  custom.person_proportion = 2;
  custom.auction_proportion = 5;
  custom.bid_proportion = 13;
  custom.hot_auction_ratio = 3;
  custom.hot_seller_ratio = 5;
  custom.hot_bidder_ratio = 7;
  custom.num_active_people = 50;
  custom.num_in_flight_auctions = 20;
  custom.avg_person_byte_size = 300;
  custom.avg_auction_byte_size = 700;
  custom.avg_bid_byte_size = 150;
  EXPECT_EQ(stream_digest(custom, 10'000), 0x0fda9af27899ff83ull);
}

TEST(nexmark, events_encode_with_the_record_codec) {
  const generator_config config;
  for (std::uint64_t i : {0ull, 1ull, 4ull}) {
    const event e = make_event(config, i);
    stream::byte_buffer bytes;
    stream::encode_value(e, bytes);
    event back;
    ASSERT_TRUE(stream::decode_value(std::span(bytes), back).ok());
    EXPECT_EQ(back, e);
  }
  EXPECT_NE(stream::codec_signature<event>().find("type:enum<u8>"),
            std::string::npos)
      << stream::codec_signature<event>();
}

TEST(nexmark, json_round_trips_generated_events) {
  const generator_config config;
  std::string appended;
  for (std::uint64_t i = 0; i < 10'000; ++i) {
    const event e = make_event(config, i);
    const std::string line = to_json(e);
    ASSERT_EQ(line.find('\n'), std::string::npos) << line;
    const auto parsed = parse_json(line);
    ASSERT_TRUE(parsed.ok()) << parsed.error().to_string() << "\n" << line;
    ASSERT_EQ(*parsed, e) << line;
    const std::size_t before = appended.size();
    stream::nexmark::append_json(e, appended);
    ASSERT_EQ(appended.substr(before), line);
  }
}

TEST(nexmark, json_escapes_awkward_strings) {
  event e;
  e.type = event_type::person;
  e.p.id = -5;
  e.p.name = "quote\" backslash\\ newline\n tab\t ctrl\x01 del\x7f";
  e.p.email_address = "caf\xc3\xa9@\xe4\xbe\x8b.com \xf0\x9f\x98\x80";
  e.p.credit_card = std::string("nul\0byte", 8);
  e.p.date_time = INT64_MIN;
  e.p.extra = "\\u0041 is not A";
  const std::string line = to_json(e);
  EXPECT_NE(line.find(R"(quote\" backslash\\ newline\u000a tab\u0009)"),
            std::string::npos)
      << line;
  EXPECT_NE(line.find(R"(ctrl\u0001)"), std::string::npos) << line;
  EXPECT_NE(line.find(R"(nul\u0000byte)"), std::string::npos) << line;
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(parse_ok(line), e);

  event b;
  b.b.auction = INT64_MAX;
  b.b.channel = "\x1f\"";
  EXPECT_EQ(parse_ok(to_json(b)), b);
}

TEST(nexmark, json_golden_lines_parse) {
  const event b = parse_ok(
      R"({"type":"bid","auction":1000,"bidder":1001,"price":42,"channel":"Google","url":"https://x","dateTime":1700000000000,"extra":""})");
  ASSERT_EQ(b.type, event_type::bid);
  EXPECT_EQ(b.b.auction, 1000);
  EXPECT_EQ(b.b.bidder, 1001);
  EXPECT_EQ(b.b.price, 42);
  EXPECT_EQ(b.b.channel, "Google");
  EXPECT_EQ(b.b.url, "https://x");
  EXPECT_EQ(b.b.date_time, base_time);
  EXPECT_EQ(b.timestamp(), base_time);
  EXPECT_EQ(
      to_json(b),
      R"({"type":"bid","auction":1000,"bidder":1001,"price":42,"channel":"Google","url":"https://x","dateTime":1700000000000,"extra":""})");

  // Any key order, unknown keys, whitespace and a trailing '\r'.
  const event p = parse_ok(
      "{ \"extra\":\"x\", \"dateTime\":5, \"state\":\"WA\", \"city\":\"Kent\","
      " \"creditCard\":\"0000 0001 0002 0003\", \"emailAddress\":\"a@b.com\","
      " \"name\":\"Kate Smith\", \"id\":1234, \"type\":\"person\","
      " \"unknown\":{\"nested\":[1,2]} }\r");
  ASSERT_EQ(p.type, event_type::person);
  EXPECT_EQ(p.p.id, 1234);
  EXPECT_EQ(p.p.name, "Kate Smith");
  EXPECT_EQ(p.p.email_address, "a@b.com");
  EXPECT_EQ(p.p.credit_card, "0000 0001 0002 0003");
  EXPECT_EQ(p.p.city, "Kent");
  EXPECT_EQ(p.p.state, "WA");
  EXPECT_EQ(p.p.date_time, 5);
  EXPECT_EQ(p.p.extra, "x");

  const event a = parse_ok(
      R"({"type":"auction","id":1001,"itemName":"lamp","description":"old \"brass\" \u00e9","initialBid":100,"reserve":250,"dateTime":1700000000001,"expires":1700000000500,"seller":1000,"category":12,"extra":"","note":null})");
  ASSERT_EQ(a.type, event_type::auction);
  EXPECT_EQ(a.a.id, 1001);
  EXPECT_EQ(a.a.item_name, "lamp");
  EXPECT_EQ(a.a.description, "old \"brass\" \xc3\xa9");
  EXPECT_EQ(a.a.initial_bid, 100);
  EXPECT_EQ(a.a.reserve, 250);
  EXPECT_EQ(a.a.date_time, base_time + 1);
  EXPECT_EQ(a.a.expires, base_time + 500);
  EXPECT_EQ(a.a.seller, 1000);
  EXPECT_EQ(a.a.category, 12);

  EXPECT_EQ(parse_ok(R"({"type":"bid","auction":9223372036854775807,)"
                     R"("bidder":-9223372036854775808,"price":0,)"
                     R"("channel":"","url":"","dateTime":0,"extra":""})")
                .b.bidder,
            INT64_MIN);
}

TEST(nexmark, json_errors_name_the_problem) {
  const std::string bid_fields =
      R"("bidder":1,"price":2,"channel":"c","url":"u","dateTime":3,"extra":"")";
  const auto contains = [](const std::string& message, std::string_view part) {
    EXPECT_NE(message.find(part), std::string::npos)
        << "\"" << message << "\" lacks \"" << part << "\"";
  };
  std::string m = parse_error(R"({"type":"bid",)");
  contains(m, "not valid JSON");
  contains(m, "at offset 14 of 14 bytes");
  contains(parse_error(""), "not valid JSON");
  contains(parse_error(R"({"type":"bid"} trailing)"), "not valid JSON");
  contains(parse_error("[1,2]"), "expected a JSON object, got array");
  contains(parse_error(R"("bid")"), "expected a JSON object, got string");
  contains(parse_error(R"({"auction":1})"), "missing required field \"type\"");
  m = parse_error(R"({"type":7})");
  contains(m, "\"type\" must be a string");
  contains(m, "number");
  m = parse_error(R"({"type":"sale","id":1})");
  contains(m, "unknown event type \"sale\"");

  m = parse_error(R"({"type":"bid",)" + bid_fields + "}");
  contains(m, "missing required field \"auction\"");
  contains(m, "bid");
  contains(parse_error(R"({"type":"person","id":1})"),
           "missing required field \"name\"");
  m = parse_error(R"({"type":"bid","auction":"1000",)" + bid_fields + "}");
  contains(m, "field \"auction\" must be an integer, got string");
  m = parse_error(R"({"type":"bid","auction":1.5,)" + bid_fields + "}");
  contains(m, "field \"auction\" must be an integer, got floating-point");
  m = parse_error(R"({"type":"bid","auction":true,)" + bid_fields + "}");
  contains(m, "must be an integer, got boolean");
  m = parse_error(R"({"type":"bid","auction":9223372036854775808,)" +
                  bid_fields + "}");
  contains(m, "\"auction\" is out of int64 range");
  m = parse_error(R"({"type":"bid","auction":-9223372036854775809,)" +
                  bid_fields + "}");
  contains(m, "\"auction\" is out of int64 range");
  m = parse_error(R"({"type":"bid","auction":123456789012345678901234,)" +
                  bid_fields + "}");
  contains(m, "\"auction\" is out of int64 range");
  m = parse_error(
      R"({"type":"bid","auction":1,"bidder":1,"price":2,"channel":5,)"
      R"("url":"u","dateTime":3,"extra":""})");
  contains(m, "field \"channel\" must be a string, got number");
  m = parse_error(
      R"({"type":"auction","id":1,"itemName":"i","description":"d",)"
      R"("initialBid":1,"reserve":2,"dateTime":3,"expires":null,)"
      R"("seller":1,"category":10,"extra":""})");
  contains(m, "auction: field \"expires\" must be an integer, got null");
  contains(parse_error("{\"type\":\"bid\",\"url\":\"\xff\"}"),
           "not valid JSON");
}

}  // namespace
