// Nexmark query 3: local item suggestion. Who is selling in OR, ID or CA in
// category 10, and for what auction ids? An incremental join.
//
//   SELECT P.name, P.city, P.state, A.id
//   FROM auction AS A INNER JOIN person AS P on A.seller = P.id
//   WHERE A.category = 10 and
//         (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');
//
// Dataflow: the persons and the category-10 auctions, each mapped to a join
// record keyed by person id (the auction's seller), are unioned and keyed
// by that id. A keyed process function keeps the person (value state) and
// the auctions that arrived before their seller (list state): a person
// releases the auctions waiting for it, an auction of a known person is
// matched at once, so every match is emitted exactly once.
//
// Persons are not filtered by state before the join, unlike Flink's plan:
// a person outside OR/ID/CA is stored as a name-less marker, so an auction
// of such a seller is dropped when it meets the marker instead of waiting
// for a person that never comes (state that would only grow).

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "nexmark/common.hpp"
#include "stream/codec.hpp"

// A named namespace: the codec functions STREAM_FIELDS defines would be
// unused internal functions in an anonymous one.
namespace nexmark_q3 {

namespace nq = nexmark_queries;
namespace nx = stream::nexmark;

/// One side of the join: a person or an auction (auction >= 0).
struct q3_input {
  std::int64_t person = 0;    ///< The person's id or the auction's seller.
  std::int64_t auction = -1;  ///< The auction id; -1 for a person.
  std::string name;
  std::string city;
  std::string state;
};
STREAM_FIELDS(q3_input, person, auction, name, city, state);

/// The joined person: `local` when in OR, ID or CA (the strings are kept
/// only then).
struct q3_person {
  bool local = false;
  std::string name;
  std::string city;
  std::string state;
};
STREAM_FIELDS(q3_person, local, name, city, state);

struct q3_row {
  std::string name;
  std::string city;
  std::string state;
  std::int64_t id = 0;  ///< The auction.
};
STREAM_FIELDS(q3_row, name, city, state, id);

std::string to_json(const q3_row& r) {
  return nq::json_object{}
      .add_string("name", r.name)
      .add_string("city", r.city)
      .add_string("state", r.state)
      .add_int("id", r.id)
      .take();
}

bool local_state(const std::string& state) {
  return state == "OR" || state == "ID" || state == "CA";
}

/// Joins auctions to their seller, keyed by person id.
class seller_join {
 public:
  void open(stream::keyed_context<std::int64_t>& ctx) {
    person_ = ctx.get_value_state<q3_person>("person");
    waiting_ = ctx.get_list_state<std::int64_t>("waiting_auctions");
  }

  void process(const std::int64_t&, const q3_input& in,
               stream::keyed_context<std::int64_t>&,
               stream::emitter<q3_row>& out) {
    if (in.auction < 0) {
      q3_person p;
      p.local = local_state(in.state);
      if (p.local) p = {true, in.name, in.city, in.state};
      for (auto auction : waiting_.get()) emit(p, auction, out);
      waiting_.clear();
      person_.update(std::move(p));
      return;
    }
    if (auto p = person_.value())
      emit(*p, in.auction, out);
    else
      waiting_.add(in.auction);
  }

 private:
  static void emit(const q3_person& p, std::int64_t auction,
                   stream::emitter<q3_row>& out) {
    if (p.local) out.emit({p.name, p.city, p.state, auction});
  }

  stream::value_state<q3_person> person_;
  stream::list_state<std::int64_t> waiting_;
};

bool is_person(const nx::event& e) { return e.type == nx::event_type::person; }

bool is_category_10_auction(const nx::event& e) {
  return e.type == nx::event_type::auction && e.a.category == 10;
}

void build(stream::environment& env) {
  // Both branches read this stream, and a stream read twice copies every
  // record to one of them: narrowing it first keeps that copy to the ~3%
  // of events the join needs.
  auto events = nq::events(env)
                    .filter([](const nx::event& e) {
                      return is_person(e) || is_category_10_auction(e);
                    })
                    .name("join_inputs");
  auto persons =
      events.filter(is_person)
          .name("persons")
          .map([](const nx::event& e) {
            return q3_input{e.p.id, -1, e.p.name, e.p.city, e.p.state};
          })
          .name("person_side");
  auto auctions = events.filter(is_category_10_auction)
                      .name("category_10_auctions")
                      .map([](const nx::event& e) {
                        return q3_input{e.a.seller, e.a.id, {}, {}, {}};
                      })
                      .name("auction_side");
  auto rows = persons.union_with(auctions)
                  .name("persons_and_auctions")
                  .key_by([](const q3_input& in) { return in.person; })
                  .process<q3_row>(seller_join{})
                  .name("join_seller");
  nq::write_results(env, rows, to_json);
}

}  // namespace nexmark_q3

int main(int argc, char** argv) {
  return stream::run(argc, argv, nexmark_q3::build, nexmark_queries::options());
}
