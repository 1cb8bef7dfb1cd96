// Nexmark query 5: hot items. Which auctions have seen the most bids in the
// last period? Sliding windows of 10 s every 2 s.
//
//   SELECT AuctionBids.auction, AuctionBids.num
//    FROM (
//      SELECT auction, count(*) AS num, window_start AS starttime,
//             window_end AS endtime
//      FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`),
//                     INTERVAL '2' SECOND, INTERVAL '10' SECOND))
//      GROUP BY auction, window_start, window_end
//    ) AS AuctionBids
//    JOIN (
//      SELECT max(CountBids.num) AS maxn, CountBids.starttime,
//             CountBids.endtime
//      FROM (
//        SELECT count(*) AS num, window_start AS starttime,
//               window_end AS endtime
//        FROM TABLE(HOP(TABLE bid, DESCRIPTOR(`dateTime`),
//                       INTERVAL '2' SECOND, INTERVAL '10' SECOND))
//        GROUP BY auction, window_start, window_end
//        ) AS CountBids
//      GROUP BY CountBids.starttime, CountBids.endtime
//    ) AS MaxBids
//    ON AuctionBids.starttime = MaxBids.starttime AND
//       AuctionBids.endtime = MaxBids.endtime AND
//       AuctionBids.num >= MaxBids.maxn;
//
// Dataflow: bids keyed by auction go through a sliding event-time window
// (10 s, slide 2 s) that counts them ("count_per_auction"); each count,
// tagged with its window's end, is keyed by that end into a keyed process
// function ("hot_items") that keeps the maximum count and the auctions
// having it, and emits them (`auction, num`) on an event-time timer at the
// window's max timestamp, when every count of the window has arrived.

#include <cstdint>
#include <string>
#include <vector>

#include "nexmark/common.hpp"
#include "stream/codec.hpp"

// A named namespace: the codec functions STREAM_FIELDS defines would be
// unused internal functions in an anonymous one.
namespace nexmark_q5 {

namespace nq = nexmark_queries;
namespace nx = stream::nexmark;

struct q5_bid {
  std::int64_t auction = 0;
  std::int64_t date_time = 0;
};
STREAM_FIELDS(q5_bid, auction, date_time);

/// The number of bids on one auction in the window ending at `window_end`.
struct q5_count {
  std::int64_t auction = 0;
  std::int64_t window_end = 0;
  std::int64_t num = 0;
};
STREAM_FIELDS(q5_count, auction, window_end, num);

/// The leaders of one window so far.
struct q5_leaders {
  std::int64_t num = 0;
  std::vector<std::int64_t> auctions;
};
STREAM_FIELDS(q5_leaders, num, auctions);

struct q5_row {
  std::int64_t auction = 0;
  std::int64_t num = 0;
};
STREAM_FIELDS(q5_row, auction, num);

std::string to_json(const q5_row& r) {
  return nq::json_object{}
      .add_int("auction", r.auction)
      .add_int("num", r.num)
      .take();
}

/// Keeps the auctions with the most bids per window, keyed by window end.
class hot_items {
 public:
  using context = stream::keyed_context<std::int64_t>;

  void open(context& ctx) {
    leaders_ = ctx.get_value_state<q5_leaders>("leaders");
  }

  void process(const std::int64_t& window_end, const q5_count& c, context& ctx,
               stream::emitter<q5_row>&) {
    auto l = leaders_.value();
    if (!l) {
      // Fires once the watermark passes the window, when all its counts
      // (emitted before that watermark) are in.
      ctx.register_event_time_timer(window_end - 1);
      l.emplace();
    }
    if (c.num > l->num) {
      l->num = c.num;
      l->auctions.clear();
    }
    if (c.num == l->num) {
      l->auctions.push_back(c.auction);
      leaders_.update(std::move(*l));
    }
  }

  void on_timer(std::int64_t, const std::int64_t&, context&,
                stream::emitter<q5_row>& out) {
    if (auto l = leaders_.value()) {
      for (auto auction : l->auctions) out.emit({auction, l->num});
    }
    leaders_.clear();
  }

 private:
  stream::value_state<q5_leaders> leaders_;
};

void build(stream::environment& env) {
  using std::chrono::seconds;
  auto rows =
      nq::events(env)
          .flat_map<q5_bid>(
              [](const nx::event& e, stream::emitter<q5_bid>& out) {
                if (e.type == nx::event_type::bid)
                  out.emit({e.b.auction, e.b.date_time});
              })
          .name("bids")
          .with_timestamps([](const q5_bid& b) { return b.date_time; })
          .key_by([](const q5_bid& b) { return b.auction; })
          .window(stream::sliding_event_time_windows(seconds{10}, seconds{2}))
          .aggregate(
              std::int64_t{0}, [](std::int64_t& n, const q5_bid&) { ++n; },
              [](const std::int64_t& auction, const stream::time_window& w,
                 const std::int64_t& n) {
                return q5_count{auction, w.end, n};
              })
          .name("count_per_auction")
          .key_by([](const q5_count& c) { return c.window_end; })
          .process<q5_row>(hot_items{})
          .name("hot_items");
  nq::write_results(env, rows, to_json);
}

}  // namespace nexmark_q5

int main(int argc, char** argv) {
  return stream::run(argc, argv, nexmark_q5::build, nexmark_queries::options());
}
