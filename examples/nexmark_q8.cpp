// Nexmark query 8: monitor new users. The people who registered and opened
// an auction in the same 10 s tumbling window.
//
//   SELECT P.id, P.name, P.starttime
//   FROM (
//     SELECT id, name, window_start AS starttime, window_end AS endtime
//     FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(`dateTime`),
//                       INTERVAL '10' SECOND))
//     GROUP BY id, name, window_start, window_end
//   ) P
//   JOIN (
//     SELECT seller, window_start AS starttime, window_end AS endtime
//     FROM TABLE(TUMBLE(TABLE auction, DESCRIPTOR(`dateTime`),
//                       INTERVAL '10' SECOND))
//     GROUP BY seller, window_start, window_end
//   ) A
//   ON P.id = A.seller AND P.starttime = A.starttime AND
//      P.endtime = A.endtime;
//
// Dataflow: persons and auctions, mapped to one record type keyed by person
// id (the auction's seller), go through a tumbling event-time window (10 s)
// whose process function ("join_new_sellers") emits `id, name, starttime`
// (the window start, epoch ms) once per distinct name of the window's
// persons, when the window also holds an auction of that seller.

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "nexmark/common.hpp"
#include "stream/codec.hpp"

// A named namespace: the codec functions STREAM_FIELDS defines would be
// unused internal functions in an anonymous one.
namespace nexmark_q8 {

namespace nq = nexmark_queries;
namespace nx = stream::nexmark;

/// A person (is_person, with its name) or an auction of seller `id`.
struct q8_input {
  std::int64_t id = 0;
  std::int64_t date_time = 0;
  bool is_person = false;
  std::string name;
};
STREAM_FIELDS(q8_input, id, date_time, is_person, name);

struct q8_row {
  std::int64_t id = 0;
  std::string name;
  std::int64_t starttime = 0;
};
STREAM_FIELDS(q8_row, id, name, starttime);

std::string to_json(const q8_row& r) {
  return nq::json_object{}
      .add_int("id", r.id)
      .add_string("name", r.name)
      .add_int("starttime", r.starttime)
      .take();
}

void join_window(const std::int64_t& id, const stream::time_window& w,
                 const std::vector<q8_input>& records,
                 stream::emitter<q8_row>& out) {
  bool has_auction = false;
  std::set<std::string> names;
  for (const auto& r : records) {
    if (r.is_person)
      names.insert(r.name);
    else
      has_auction = true;
  }
  if (!has_auction) return;
  for (const auto& name : names) out.emit({id, name, w.start});
}

void build(stream::environment& env) {
  auto rows =
      nq::events(env)
          .flat_map<q8_input>(
              [](const nx::event& e, stream::emitter<q8_input>& out) {
                if (e.type == nx::event_type::person)
                  out.emit({e.p.id, e.p.date_time, true, e.p.name});
                else if (e.type == nx::event_type::auction)
                  out.emit({e.a.seller, e.a.date_time, false, {}});
              })
          .name("persons_and_auctions")
          .with_timestamps([](const q8_input& r) { return r.date_time; })
          .key_by([](const q8_input& r) { return r.id; })
          .window(stream::tumbling_event_time_windows(std::chrono::seconds{10}))
          .process<q8_row>(join_window)
          .name("join_new_sellers");
  nq::write_results(env, rows, to_json);
}

}  // namespace nexmark_q8

int main(int argc, char** argv) {
  return stream::run(argc, argv, nexmark_q8::build, nexmark_queries::options());
}
