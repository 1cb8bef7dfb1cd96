// Nexmark query 4: average price for a category. The average of the winning
// bid prices of the closed auctions of each category.
//
//   SELECT Q.category, AVG(Q.final)
//   FROM (
//       SELECT MAX(B.price) AS final, A.category
//       FROM auction A, bid B
//       WHERE A.id = B.auction AND
//             B.`dateTime` BETWEEN A.`dateTime` AND A.expires
//       GROUP BY A.id, A.category
//   ) Q
//   GROUP BY Q.category;
//
// Dataflow: auctions and bids, keyed by auction id, meet in a keyed process
// function ("close_auctions") that keeps the auction with its best valid bid
// so far (bids with dateTime in [auction.dateTime, auction.expires]) and
// buffers the bids that arrive before their auction. An event-time timer at
// `expires` closes the auction: its winning price (if it had a valid bid)
// goes to a second keyed process function ("average_per_category") that
// keeps a running sum and count per category and emits `id` (the category)
// and `final` (the average so far, a double; Flink's column is a BIGINT,
// its AVG truncated) after every closed auction.
//
// A buffered bid is dropped once the watermark passes its dateTime without
// its auction: a valid auction starts no later than the bid, so it would be
// late. That also disposes of bids on closed auctions, whose state is gone.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "nexmark/common.hpp"
#include "stream/codec.hpp"

// A named namespace: the codec functions STREAM_FIELDS defines would be
// unused internal functions in an anonymous one.
namespace nexmark_q4 {

namespace nq = nexmark_queries;
namespace nx = stream::nexmark;

/// An auction (is_auction) or a bid, keyed by auction id.
struct q4_input {
  std::int64_t auction = 0;
  std::int64_t date_time = 0;
  bool is_auction = false;
  std::int64_t price = 0;     ///< Bids.
  std::int64_t expires = 0;   ///< Auctions.
  std::int64_t category = 0;  ///< Auctions.
};
STREAM_FIELDS(q4_input, auction, date_time, is_auction, price, expires,
              category);

/// An open auction and its best valid bid so far.
struct q4_auction {
  std::int64_t date_time = 0;
  std::int64_t expires = 0;
  std::int64_t category = 0;
  bool has_bid = false;
  std::int64_t best_price = 0;
};
STREAM_FIELDS(q4_auction, date_time, expires, category, has_bid, best_price);

/// A bid that arrived before its auction.
struct q4_early_bid {
  std::int64_t price = 0;
  std::int64_t date_time = 0;
};
STREAM_FIELDS(q4_early_bid, price, date_time);

/// The winning price of a closed auction.
struct q4_winner {
  std::int64_t category = 0;
  std::int64_t price = 0;
};
STREAM_FIELDS(q4_winner, category, price);

struct q4_row {
  std::int64_t id = 0;  ///< The category.
  double final = 0;     ///< Average winning price of its closed auctions.
};
STREAM_FIELDS(q4_row, id, final);

std::string to_json(const q4_row& r) {
  return nq::json_object{}
      .add_int("id", r.id)
      .add_double("final", r.final)
      .take();
}

void offer(q4_auction& a, std::int64_t price, std::int64_t date_time) {
  if (date_time < a.date_time || date_time > a.expires) return;
  if (!a.has_bid || price > a.best_price) {
    a.has_bid = true;
    a.best_price = price;
  }
}

/// Finds the winning bid of each auction, keyed by auction id.
class auction_closer {
 public:
  using context = stream::keyed_context<std::int64_t>;

  void open(context& ctx) {
    auction_ = ctx.get_value_state<q4_auction>("auction");
    early_ = ctx.get_list_state<q4_early_bid>("early_bids");
  }

  void process(const std::int64_t&, const q4_input& in, context& ctx,
               stream::emitter<q4_winner>&) {
    if (in.is_auction) {
      q4_auction a{in.date_time, in.expires, in.category, false, 0};
      for (const auto& b : early_.get()) offer(a, b.price, b.date_time);
      early_.clear();
      auction_.update(a);
      ctx.register_event_time_timer(a.expires);
      return;
    }
    if (auto a = auction_.value()) {
      auto before = *a;
      offer(*a, in.price, in.date_time);
      if (a->has_bid != before.has_bid || a->best_price != before.best_price)
        auction_.update(*a);
      return;
    }
    if (in.date_time <= ctx.current_watermark()) return;
    early_.add({in.price, in.date_time});
    ctx.register_event_time_timer(in.date_time);
  }

  void on_timer(std::int64_t time, const std::int64_t&, context&,
                stream::emitter<q4_winner>& out) {
    if (auto a = auction_.value()) {
      // Timers of bids merged into the auction find nothing to do.
      if (time < a->expires) return;
      if (a->has_bid) out.emit({a->category, a->best_price});
      auction_.clear();
      return;
    }
    auto early = early_.get();
    std::erase_if(
        early, [time](const q4_early_bid& b) { return b.date_time <= time; });
    early_.update(std::move(early));
  }

 private:
  stream::value_state<q4_auction> auction_;
  stream::list_state<q4_early_bid> early_;
};

/// The running average winning price per category.
class category_average {
 public:
  using context = stream::keyed_context<std::int64_t>;

  void open(context& ctx) {
    totals_ = ctx.get_value_state<std::pair<std::int64_t, std::int64_t>>(
        "sum_and_count");
  }

  void process(const std::int64_t& category, const q4_winner& w, context&,
               stream::emitter<q4_row>& out) {
    auto t = totals_.value().value_or(std::pair<std::int64_t, std::int64_t>{});
    t.first += w.price;
    t.second += 1;
    totals_.update(t);
    out.emit({category,
              static_cast<double>(t.first) / static_cast<double>(t.second)});
  }

 private:
  stream::value_state<std::pair<std::int64_t, std::int64_t>> totals_;
};

void build(stream::environment& env) {
  auto rows =
      nq::events(env)
          .flat_map<q4_input>([](const nx::event& e,
                                 stream::emitter<q4_input>& out) {
            if (e.type == nx::event_type::auction)
              out.emit(
                  {e.a.id, e.a.date_time, true, 0, e.a.expires, e.a.category});
            else if (e.type == nx::event_type::bid)
              out.emit({e.b.auction, e.b.date_time, false, e.b.price, 0, 0});
          })
          .name("auctions_and_bids")
          .key_by([](const q4_input& in) { return in.auction; })
          .process<q4_winner>(auction_closer{})
          .name("close_auctions")
          .key_by([](const q4_winner& w) { return w.category; })
          .process<q4_row>(category_average{})
          .name("average_per_category");
  nq::write_results(env, rows, to_json);
}

}  // namespace nexmark_q4

int main(int argc, char** argv) {
  return stream::run(argc, argv, nexmark_q4::build, nexmark_queries::options());
}
