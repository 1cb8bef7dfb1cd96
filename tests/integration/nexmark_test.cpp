// The Nexmark query binaries (examples/nexmark_q*) as a user runs them: each
// query over 200,000 generated events (about 200 s of event time) against a
// straightforward computation over the same events in memory, the generator
// source, bad input lines and a bad option.
//
// The references below are plain loops over the event vector; they share
// nothing with the runtime or the example code but the event generator.

#include "stream/nexmark.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "process.hpp"

namespace stream {
namespace {

namespace nx = stream::nexmark;
using json = nlohmann::json;
using stream::testing::run_command;

const std::string examples = STREAM_EXAMPLES_DIR;

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "/nexmark-" + name + "-" +
         std::to_string(::getpid());
}

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

/// Every line of `path` as JSON; a line that does not parse fails the test
/// and is left out.
std::vector<json> read_json_lines(const std::string& path) {
  std::vector<json> rows;
  std::istringstream in{read_file(path)};
  std::string line;
  std::size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    auto row = json::parse(line, nullptr, false);
    EXPECT_FALSE(row.is_discarded()) << path << ":" << number << ": " << line;
    if (!row.is_discarded()) rows.push_back(std::move(row));
  }
  return rows;
}

template <class T>
std::vector<T> sorted(std::vector<T> v) {
  std::sort(v.begin(), v.end());
  return v;
}

/// `fn(row)` for every row: the columns a test compares.
template <class F>
auto columns(const std::vector<json>& rows, F fn) {
  std::vector<std::decay_t<decltype(fn(rows.front()))>> out;
  out.reserve(rows.size());
  for (const auto& r : rows) out.push_back(fn(r));
  return out;
}

/// Start of the window of length `size_ms` holding `ts` (epoch aligned).
std::int64_t window_start(std::int64_t ts, std::int64_t size_ms) {
  return ts - ((ts % size_ms) + size_ms) % size_ms;
}

std::int64_t int_at(const json& row, const char* key) {
  return row.at(key).get<std::int64_t>();
}

std::string string_at(const json& row, const char* key) {
  return row.at(key).get<std::string>();
}

using bid_tuple = std::tuple<std::int64_t, std::int64_t, std::int64_t,
                             std::int64_t, std::string>;

/// auction, bidder, price, dateTime, extra.
bid_tuple bid_columns(const json& r) {
  return {int_at(r, "auction"), int_at(r, "bidder"), int_at(r, "price"),
          int_at(r, "dateTime"), string_at(r, "extra")};
}

/// Runs example `binary` with `args`, an --output file and no metrics
/// endpoint; expects exit code 0 and returns the output lines.
std::vector<json> run_for_output(const std::string& binary,
                                 const std::vector<std::string>& args) {
  auto output = temp_path(binary + ".jsonl");
  std::vector<std::string> argv = {examples + "/" + binary, "--output", output,
                                   "--metrics-address", ""};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string err;
  int rc = run_command(argv, nullptr, &err);
  EXPECT_EQ(rc, 0) << err;
  auto rows = read_json_lines(output);
  std::remove(output.c_str());
  return rows;
}

// -- the queries over 200,000 events ------------------------------------------

class nexmark_queries : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    nx::generator_config config;
    config.seed = 7;
    config.events_per_second = 1000;
    event_data = new std::vector<nx::event>;
    event_data->reserve(200'000);
    input_file = new std::string{temp_path("events.jsonl")};
    std::ofstream out{*input_file};
    std::string line;
    for (std::uint64_t i = 0; i < 200'000; ++i) {
      event_data->push_back(nx::make_event(config, i));
      line = nx::to_json(event_data->back());
      line.push_back('\n');
      out << line;
    }
  }

  static void TearDownTestSuite() {
    std::remove(input_file->c_str());
    delete input_file;
    delete event_data;
  }

  static const std::vector<nx::event>& events() { return *event_data; }

  template <class F>
  static void for_each_bid(F fn) {
    for (const auto& e : events())
      if (e.type == nx::event_type::bid) fn(e.b);
  }

  /// Runs `query` over the events file at parallelism 2.
  static std::vector<json> run_query(
      const std::string& query, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"--input", *input_file, "--parallelism",
                                     "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_for_output(query, args);
  }

  /// Runs `query` on its generator, configured to produce the same events,
  /// at parallelism 3: three source splits whose records interleave
  /// differently at every keyed operator (bids overtake their auction).
  static std::vector<json> run_query_on_generator(const std::string& query) {
    return run_for_output(
        query, {"--events", "200000", "--seed", "7", "--event-rate", "1000",
                "--parallelism", "3"});
  }

  /// `run_query` with the LevelDB state backend in a fresh directory; the
  /// small cache makes the state go through the database, not just memory.
  static std::vector<json> run_query_on_leveldb(const std::string& query) {
    auto dir = temp_path(query + "-state");
    auto rows = run_query(query, {"--state-backend", "leveldb", "--state-dir",
                                  dir, "--state-cache-entries", "256"});
    std::filesystem::remove_all(dir);
    return rows;
  }

  void check_q3(const std::vector<json>& rows);
  void check_q4(const std::vector<json>& rows);
  void check_q5(const std::vector<json>& rows);

  static std::vector<nx::event>* event_data;
  static std::string* input_file;
};

std::vector<nx::event>* nexmark_queries::event_data = nullptr;
std::string* nexmark_queries::input_file = nullptr;

TEST_F(nexmark_queries, q0_passes_every_bid_through) {
  std::vector<bid_tuple> expected;
  for_each_bid([&](const nx::bid& b) {
    expected.emplace_back(b.auction, b.bidder, b.price, b.date_time, b.extra);
  });
  auto got = columns(run_query("nexmark_q0"), bid_columns);
  EXPECT_GT(got.size(), 100'000U);
  EXPECT_EQ(sorted(got), sorted(expected));
}

TEST_F(nexmark_queries, q1_converts_every_price_to_euros) {
  using row =
      std::tuple<std::int64_t, std::int64_t, double, std::int64_t, std::string>;
  std::vector<row> expected;
  for_each_bid([&](const nx::bid& b) {
    expected.emplace_back(b.auction, b.bidder,
                          0.908 * static_cast<double>(b.price), b.date_time,
                          b.extra);
  });
  auto got = columns(run_query("nexmark_q1"), [](const json& r) {
    return row{int_at(r, "auction"), int_at(r, "bidder"),
               r.at("price").get<double>(), int_at(r, "dateTime"),
               string_at(r, "extra")};
  });
  EXPECT_GT(got.size(), 100'000U);
  // The doubles round-trip through the text exactly.
  EXPECT_EQ(sorted(got), sorted(expected));
}

TEST_F(nexmark_queries, q2_selects_the_bids_on_every_123rd_auction) {
  std::vector<std::pair<std::int64_t, std::int64_t>> expected;
  for_each_bid([&](const nx::bid& b) {
    if (b.auction % 123 == 0) expected.emplace_back(b.auction, b.price);
  });
  auto got = columns(run_query("nexmark_q2"), [](const json& r) {
    return std::pair{int_at(r, "auction"), int_at(r, "price")};
  });
  EXPECT_GT(got.size(), 100U);
  EXPECT_EQ(sorted(got), sorted(expected));
}

void nexmark_queries::check_q3(const std::vector<json>& rows) {
  using row = std::tuple<std::string, std::string, std::string, std::int64_t>;
  std::map<std::int64_t, const nx::person*> persons;
  for (const auto& e : events())
    if (e.type == nx::event_type::person) persons[e.p.id] = &e.p;
  std::vector<row> expected;
  for (const auto& e : events()) {
    if (e.type != nx::event_type::auction || e.a.category != 10) continue;
    auto it = persons.find(e.a.seller);
    if (it == persons.end()) continue;
    const auto& p = *it->second;
    if (p.state == "OR" || p.state == "ID" || p.state == "CA")
      expected.emplace_back(p.name, p.city, p.state, e.a.id);
  }
  auto got = columns(rows, [](const json& r) {
    return row{string_at(r, "name"), string_at(r, "city"),
               string_at(r, "state"), int_at(r, "id")};
  });
  EXPECT_GT(got.size(), 10U);
  EXPECT_EQ(sorted(got), sorted(expected));
}

TEST_F(nexmark_queries, q3_joins_category_10_auctions_to_local_sellers_once) {
  check_q3(run_query("nexmark_q3"));
}

TEST_F(nexmark_queries, q3_joins_the_same_when_auctions_overtake_sellers) {
  check_q3(run_query_on_generator("nexmark_q3"));
}

void nexmark_queries::check_q4(const std::vector<json>& rows) {
  // The winning bid of each auction: the highest price among its bids with
  // dateTime in [auction.dateTime, auction.expires].
  std::map<std::int64_t, const nx::auction*> auctions;
  for (const auto& e : events())
    if (e.type == nx::event_type::auction) auctions[e.a.id] = &e.a;
  std::map<std::int64_t, std::int64_t> winning;  // auction -> price
  for_each_bid([&](const nx::bid& b) {
    auto it = auctions.find(b.auction);
    if (it == auctions.end()) return;
    const auto& a = *it->second;
    if (b.date_time < a.date_time || b.date_time > a.expires) return;
    auto [w, fresh] = winning.try_emplace(b.auction, b.price);
    if (!fresh) w->second = std::max(w->second, b.price);
  });
  std::map<std::int64_t, std::pair<double, double>> totals;  // sum, count
  for (const auto& [auction, price] : winning) {
    auto& t = totals[auctions.at(auction)->category];
    t.first += static_cast<double>(price);
    t.second += 1;
  }
  ASSERT_GT(winning.size(), 1000U);

  std::map<std::int64_t, double> last;
  for (const auto& r : rows)
    last[int_at(r, "id")] = r.at("final").get<double>();
  EXPECT_EQ(rows.size(), winning.size());
  ASSERT_EQ(last.size(), totals.size());
  for (const auto& [category, t] : totals) {
    auto expected = t.first / t.second;
    ASSERT_TRUE(last.count(category)) << category;
    EXPECT_NEAR(last[category], expected, std::abs(expected) * 1e-9)
        << "category " << category;
  }
}

TEST_F(nexmark_queries, q4_last_average_per_category_equals_the_reference) {
  check_q4(run_query("nexmark_q4"));
}

TEST_F(nexmark_queries, q4_gives_the_same_averages_on_leveldb_state) {
  check_q4(run_query_on_leveldb("nexmark_q4"));
}

TEST_F(nexmark_queries,
       q4_gives_the_same_averages_when_bids_overtake_auctions) {
  check_q4(run_query_on_generator("nexmark_q4"));
}

void nexmark_queries::check_q5(const std::vector<json>& rows) {
  // Bids per (window start, auction) over windows of 10 s every 2 s.
  std::map<std::int64_t, std::map<std::int64_t, std::int64_t>> counts;
  for_each_bid([&](const nx::bid& b) {
    for (auto start = window_start(b.date_time, 2000);
         start > b.date_time - 10'000; start -= 2000)
      ++counts[start][b.auction];
  });
  std::vector<std::pair<std::int64_t, std::int64_t>> expected;
  for (const auto& [start, per_auction] : counts) {
    std::int64_t most = 0;
    for (const auto& [auction, n] : per_auction) most = std::max(most, n);
    for (const auto& [auction, n] : per_auction)
      if (n == most) expected.emplace_back(auction, n);
  }
  ASSERT_GT(counts.size(), 50U);
  auto got = columns(rows, [](const json& r) {
    return std::pair{int_at(r, "auction"), int_at(r, "num")};
  });
  EXPECT_GE(got.size(), counts.size());
  EXPECT_EQ(sorted(got), sorted(expected));
}

TEST_F(nexmark_queries, q5_emits_the_most_bid_on_auctions_of_each_window) {
  check_q5(run_query("nexmark_q5"));
}

TEST_F(nexmark_queries, q5_gives_the_same_hot_items_on_leveldb_state) {
  check_q5(run_query_on_leveldb("nexmark_q5"));
}

TEST_F(nexmark_queries, q7_emits_the_highest_bids_of_each_window) {
  // auction, price, bidder, dateTime, extra of the bids at their 10 s
  // window's highest price.
  std::map<std::int64_t, std::vector<const nx::bid*>> top;  // window start
  for_each_bid([&](const nx::bid& b) {
    auto& list = top[window_start(b.date_time, 10'000)];
    if (!list.empty() && b.price < list.front()->price) return;
    if (!list.empty() && b.price > list.front()->price) list.clear();
    list.push_back(&b);
  });
  std::vector<bid_tuple> expected;
  for (const auto& [start, list] : top)
    for (const auto* b : list)
      expected.emplace_back(b->auction, b->price, b->bidder, b->date_time,
                            b->extra);
  // Note the column order of q7: price before bidder.
  auto got = columns(run_query("nexmark_q7"), [](const json& r) {
    return bid_tuple{int_at(r, "auction"), int_at(r, "price"),
                     int_at(r, "bidder"), int_at(r, "dateTime"),
                     string_at(r, "extra")};
  });
  EXPECT_GT(top.size(), 15U);
  EXPECT_GE(got.size(), top.size());
  EXPECT_EQ(sorted(got), sorted(expected));
}

TEST_F(nexmark_queries, q8_emits_new_persons_who_opened_an_auction) {
  using key = std::pair<std::int64_t, std::int64_t>;  // id, window start
  std::map<key, std::set<std::string>> names;
  std::set<key> sellers;
  for (const auto& e : events()) {
    if (e.type == nx::event_type::person)
      names[{e.p.id, window_start(e.p.date_time, 10'000)}].insert(e.p.name);
    else if (e.type == nx::event_type::auction)
      sellers.insert({e.a.seller, window_start(e.a.date_time, 10'000)});
  }
  using row = std::tuple<std::int64_t, std::string, std::int64_t>;
  std::vector<row> expected;
  for (const auto& [k, set] : names) {
    if (!sellers.count(k)) continue;
    for (const auto& name : set) expected.emplace_back(k.first, name, k.second);
  }
  auto got = columns(run_query("nexmark_q8"), [](const json& r) {
    return row{int_at(r, "id"), string_at(r, "name"), int_at(r, "starttime")};
  });
  EXPECT_GT(got.size(), 10U);
  EXPECT_EQ(sorted(got), sorted(expected));
}

// -- the generator, bad input and options ------------------------------------

TEST(nexmark_source, the_generator_feeds_exactly_the_generated_bids) {
  auto rows = run_for_output("nexmark_q0",
                             {"--events", "100000", "--parallelism", "2"});
  nx::generator_config config;  // the defaults: seed 0, 10,000 events/s
  std::vector<bid_tuple> expected;
  for (std::uint64_t i = 0; i < 100'000; ++i) {
    auto e = nx::make_event(config, i);
    if (e.type == nx::event_type::bid)
      expected.emplace_back(e.b.auction, e.b.bidder, e.b.price, e.b.date_time,
                            e.b.extra);
  }
  auto got = columns(rows, bid_columns);
  EXPECT_GT(got.size(), 50'000U);
  EXPECT_EQ(sorted(got), sorted(expected));
}

/// ~50 good bids interleaved with every kind of bad line; remembers which
/// line numbers (1-based) are bad.
struct bad_input {
  std::string text;
  std::vector<bid_tuple> good;
  std::set<std::uint64_t> bad_lines;
};

bad_input make_bad_input() {
  nx::generator_config config;
  bad_input in;
  std::uint64_t line = 0;
  auto add = [&](const std::string& text, bool good) {
    in.text += text + "\n";
    ++line;
    if (!good) in.bad_lines.insert(line);
  };
  std::vector<std::string> bad_kinds = {
      R"({"type":"bid","auction":1000,"bidder":1001)",  // malformed JSON
      R"({"type":"sale","auction":1000})",              // unknown type
      "",                                               // empty line
      "not json at all",
  };
  std::uint64_t index = 0;
  while (in.good.size() < 50) {
    auto e = nx::make_event(config, index++);
    if (e.type != nx::event_type::bid) continue;
    auto text = nx::to_json(e);
    add(text, true);
    in.good.emplace_back(e.b.auction, e.b.bidder, e.b.price, e.b.date_time,
                         e.b.extra);
    switch (in.good.size() % 4) {
      case 0:
        add(bad_kinds[(in.good.size() / 4) % bad_kinds.size()], false);
        break;
      case 1: {  // a missing field
        auto at = text.find(",\"price\":");
        auto end = text.find(',', at + 1);
        add(text.substr(0, at) + text.substr(end), false);
        break;
      }
      case 2: {  // a wrong field type
        auto at = text.find("\"price\":") + 8;
        auto end = text.find(',', at);
        add(text.substr(0, at) + "\"" + text.substr(at, end - at) + "\"" +
                text.substr(end),
            false);
        break;
      }
      default:
        break;
    }
  }
  return in;
}

TEST(nexmark_source, bad_lines_are_skipped_and_reported_by_number) {
  auto in = make_bad_input();
  ASSERT_GE(in.bad_lines.size(), 30U);
  auto input = temp_path("bad.jsonl");
  auto output = temp_path("bad-q0.jsonl");
  std::ofstream{input} << in.text;
  std::string err;
  int rc = run_command({examples + "/nexmark_q0", "--input", input, "--output",
                        output, "--metrics-address", ""},
                       nullptr, &err);
  ASSERT_EQ(rc, 0) << err;
  auto got = columns(read_json_lines(output), bid_columns);
  EXPECT_EQ(sorted(got), sorted(in.good));

  // "stream: skipped bad record at PATH:LINE: reason", one per line.
  std::set<std::uint64_t> reported;
  const auto prefix = "skipped bad record at " + input + ":";
  std::istringstream lines{err};
  std::string line;
  while (std::getline(lines, line)) {
    auto at = line.find(prefix);
    if (at != std::string::npos)
      reported.insert(std::stoull(line.substr(at + prefix.size())));
  }
  EXPECT_EQ(reported, in.bad_lines) << err;
  std::remove(output.c_str());
  std::remove(input.c_str());
}

TEST(nexmark_source, bad_records_fail_ends_the_job_at_the_first_bad_line) {
  auto in = make_bad_input();
  auto input = temp_path("bad-fail.jsonl");
  auto output = temp_path("bad-fail-q0.jsonl");
  std::ofstream{input} << in.text;
  std::string err;
  int rc =
      run_command({examples + "/nexmark_q0", "--input", input, "--output",
                   output, "--bad-records", "fail", "--metrics-address", ""},
                  nullptr, &err);
  EXPECT_EQ(rc, 1) << err;
  auto first = input + ":" + std::to_string(*in.bad_lines.begin()) + ":";
  EXPECT_NE(err.find(first), std::string::npos) << err;
  std::remove(output.c_str());
  std::remove(input.c_str());
}

TEST(nexmark_source, a_bad_option_value_exits_2_naming_the_option) {
  std::string err;
  int rc = run_command({examples + "/nexmark_q0", "--bad-records", "maybe",
                        "--metrics-address", ""},
                       nullptr, &err);
  EXPECT_EQ(rc, 2) << err;
  EXPECT_NE(err.find("--bad-records"), std::string::npos) << err;
}

}  // namespace
}  // namespace stream
