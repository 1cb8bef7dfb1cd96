// Nexmark query 0: pass-through. Measures the cost of the source and the
// monitoring, with no work per record beyond the projection.
//
//   SELECT auction, bidder, price, `dateTime`, extra FROM bid;
//
// Dataflow: events -> flat_map (bids, projected) -> output.
//
//   build/examples/nexmark_q0 --events 5000000 --parallelism 2
//   build/examples/nexmark_q0 --input events.jsonl --output q0.jsonl

#include <cstdint>
#include <string>

#include "nexmark/common.hpp"
#include "stream/codec.hpp"

// A named namespace: the codec functions STREAM_FIELDS defines would be
// unused internal functions in an anonymous one.
namespace nexmark_q0 {

namespace nq = nexmark_queries;
namespace nx = stream::nexmark;

struct q0_row {
  std::int64_t auction = 0;
  std::int64_t bidder = 0;
  std::int64_t price = 0;
  std::int64_t date_time = 0;
  std::string extra;
};
STREAM_FIELDS(q0_row, auction, bidder, price, date_time, extra);

std::string to_json(const q0_row& r) {
  return nq::json_object{}
      .add_int("auction", r.auction)
      .add_int("bidder", r.bidder)
      .add_int("price", r.price)
      .add_int("dateTime", r.date_time)
      .add_string("extra", r.extra)
      .take();
}

void build(stream::environment& env) {
  auto rows = nq::events(env)
                  .flat_map<q0_row>(
                      [](const nx::event& e, stream::emitter<q0_row>& out) {
                        if (e.type != nx::event_type::bid) return;
                        out.emit({e.b.auction, e.b.bidder, e.b.price,
                                  e.b.date_time, e.b.extra});
                      })
                  .name("bids");
  nq::write_results(env, rows, to_json);
}

}  // namespace nexmark_q0

int main(int argc, char** argv) {
  return stream::run(argc, argv, nexmark_q0::build, nexmark_queries::options());
}
