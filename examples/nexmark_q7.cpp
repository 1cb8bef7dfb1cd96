// Nexmark query 7: highest bid. The bids with the highest price of each
// 10 s tumbling window.
//
//   SELECT B.auction, B.price, B.bidder, B.`dateTime`, B.extra
//   from bid B
//   JOIN (
//     SELECT MAX(price) AS maxprice, window_end as `dateTime`
//     FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(`dateTime`),
//                       INTERVAL '10' SECOND))
//     GROUP BY window_start, window_end
//   ) B1
//   ON B.price = B1.maxprice
//   WHERE B.`dateTime` BETWEEN B1.`dateTime` - INTERVAL '10' SECOND
//                          AND B1.`dateTime`;
//
// Dataflow, in two steps so the work spreads over the subtasks: bids keyed
// by auction go through a tumbling event-time window (10 s) that keeps the
// auction's highest bids ("max_per_auction"); each window's partial result
// is keyed by the window's end into a keyed process function ("max_bids")
// that keeps the highest of them and emits those bids on an event-time
// timer at the window's max timestamp.
//
// Unlike the SQL's BETWEEN, which also admits a bid at exactly window_end
// (the first instant of the next window), a bid belongs to its window
// [start, end) only, as in the original Nexmark query.

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "nexmark/common.hpp"
#include "stream/codec.hpp"

// A named namespace: the codec functions STREAM_FIELDS defines would be
// unused internal functions in an anonymous one.
namespace nexmark_q7 {

namespace nq = nexmark_queries;
namespace nx = stream::nexmark;

struct q7_row {
  std::int64_t auction = 0;
  std::int64_t price = 0;
  std::int64_t bidder = 0;
  std::int64_t date_time = 0;
  std::string extra;
};
STREAM_FIELDS(q7_row, auction, price, bidder, date_time, extra);

/// The highest bids of a window (all of them when tied).
struct q7_top {
  std::int64_t price = std::numeric_limits<std::int64_t>::min();
  std::vector<q7_row> bids;
};
STREAM_FIELDS(q7_top, price, bids);

/// One auction's highest bids in the window ending at `window_end`.
struct q7_partial {
  std::int64_t window_end = 0;
  q7_top top;
};
STREAM_FIELDS(q7_partial, window_end, top);

std::string to_json(const q7_row& r) {
  return nq::json_object{}
      .add_int("auction", r.auction)
      .add_int("price", r.price)
      .add_int("bidder", r.bidder)
      .add_int("dateTime", r.date_time)
      .add_string("extra", r.extra)
      .take();
}

/// Folds `bids` with `price` into `top`.
void merge_top(q7_top& top, std::int64_t price,
               const std::vector<q7_row>& bids) {
  if (price < top.price) return;
  if (price > top.price) {
    top.price = price;
    top.bids.clear();
  }
  top.bids.insert(top.bids.end(), bids.begin(), bids.end());
}

void add_bid(q7_top& top, const q7_row& b) {
  if (b.price < top.price) return;
  if (b.price > top.price) {
    top.price = b.price;
    top.bids.clear();
  }
  top.bids.push_back(b);
}

/// Merges the partial results of a window, keyed by the window's end.
class max_bids {
 public:
  using context = stream::keyed_context<std::int64_t>;

  void open(context& ctx) { top_ = ctx.get_value_state<q7_top>("top"); }

  void process(const std::int64_t& window_end, const q7_partial& p,
               context& ctx, stream::emitter<q7_row>&) {
    auto top = top_.value();
    if (!top) {
      // Fires once the watermark passes the window, when all its partial
      // results (emitted before that watermark) are in.
      ctx.register_event_time_timer(window_end - 1);
      top.emplace();
    }
    if (p.top.price < top->price) return;
    merge_top(*top, p.top.price, p.top.bids);
    top_.update(std::move(*top));
  }

  void on_timer(std::int64_t, const std::int64_t&, context&,
                stream::emitter<q7_row>& out) {
    if (auto top = top_.value()) {
      for (auto& b : top->bids) out.emit(std::move(b));
    }
    top_.clear();
  }

 private:
  stream::value_state<q7_top> top_;
};

void build(stream::environment& env) {
  auto rows =
      nq::events(env)
          .flat_map<q7_row>(
              [](const nx::event& e, stream::emitter<q7_row>& out) {
                if (e.type == nx::event_type::bid)
                  out.emit({e.b.auction, e.b.price, e.b.bidder, e.b.date_time,
                            e.b.extra});
              })
          .name("bids")
          .with_timestamps([](const q7_row& b) { return b.date_time; })
          .key_by([](const q7_row& b) { return b.auction; })
          .window(stream::tumbling_event_time_windows(std::chrono::seconds{10}))
          .aggregate(q7_top{}, add_bid,
                     [](const std::int64_t&, const stream::time_window& w,
                        const q7_top& top) {
                       return q7_partial{w.end, top};
                     })
          .name("max_per_auction")
          .key_by([](const q7_partial& p) { return p.window_end; })
          .process<q7_row>(max_bids{})
          .name("max_bids");
  nq::write_results(env, rows, to_json);
}

}  // namespace nexmark_q7

int main(int argc, char** argv) {
  return stream::run(argc, argv, nexmark_q7::build, nexmark_queries::options());
}
