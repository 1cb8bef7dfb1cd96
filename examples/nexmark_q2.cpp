// Nexmark query 2: selection. The bids on every 123rd auction.
//
//   SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0;
//
// Dataflow: events -> filter (bids on auction % 123 == 0) -> map (auction,
// price) -> output.

#include <cstdint>
#include <string>

#include "nexmark/common.hpp"
#include "stream/codec.hpp"

// A named namespace: the codec functions STREAM_FIELDS defines would be
// unused internal functions in an anonymous one.
namespace nexmark_q2 {

namespace nq = nexmark_queries;
namespace nx = stream::nexmark;

struct q2_row {
  std::int64_t auction = 0;
  std::int64_t price = 0;
};
STREAM_FIELDS(q2_row, auction, price);

std::string to_json(const q2_row& r) {
  return nq::json_object{}
      .add_int("auction", r.auction)
      .add_int("price", r.price)
      .take();
}

void build(stream::environment& env) {
  auto rows =
      nq::events(env)
          .filter([](const nx::event& e) {
            return e.type == nx::event_type::bid && e.b.auction % 123 == 0;
          })
          .name("select_auctions")
          .map([](const nx::event& e) {
            return q2_row{e.b.auction, e.b.price};
          })
          .name("project");
  nq::write_results(env, rows, to_json);
}

}  // namespace nexmark_q2

int main(int argc, char** argv) {
  return stream::run(argc, argv, nexmark_q2::build, nexmark_queries::options());
}
