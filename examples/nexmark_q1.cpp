// Nexmark query 1: currency conversion. Converts each bid from dollars to
// euros: a stateless transformation.
//
//   SELECT auction, bidder, 0.908 * price as price, `dateTime`, extra
//   FROM bid;
//
// Dataflow: events -> flat_map (bids, price x 0.908 as a double) -> output.
// (Flink's result column is DECIMAL(23, 3); ours is the nearest double.)

#include <cstdint>
#include <string>

#include "nexmark/common.hpp"
#include "stream/codec.hpp"

// A named namespace: the codec functions STREAM_FIELDS defines would be
// unused internal functions in an anonymous one.
namespace nexmark_q1 {

namespace nq = nexmark_queries;
namespace nx = stream::nexmark;

struct q1_row {
  std::int64_t auction = 0;
  std::int64_t bidder = 0;
  double price = 0;  ///< Euros (x 0.908 of the bid's dollar price).
  std::int64_t date_time = 0;
  std::string extra;
};
STREAM_FIELDS(q1_row, auction, bidder, price, date_time, extra);

std::string to_json(const q1_row& r) {
  return nq::json_object{}
      .add_int("auction", r.auction)
      .add_int("bidder", r.bidder)
      .add_double("price", r.price)
      .add_int("dateTime", r.date_time)
      .add_string("extra", r.extra)
      .take();
}

void build(stream::environment& env) {
  auto rows = nq::events(env)
                  .flat_map<q1_row>(
                      [](const nx::event& e, stream::emitter<q1_row>& out) {
                        if (e.type != nx::event_type::bid) return;
                        out.emit({e.b.auction, e.b.bidder,
                                  0.908 * static_cast<double>(e.b.price),
                                  e.b.date_time, e.b.extra});
                      })
                  .name("to_euro");
  nq::write_results(env, rows, to_json);
}

}  // namespace nexmark_q1

int main(int argc, char** argv) {
  return stream::run(argc, argv, nexmark_q1::build, nexmark_queries::options());
}
