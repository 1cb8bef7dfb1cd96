#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "stream/detail/operators.hpp"
#include "stream/detail/routers.hpp"
#include "stream/detail/sinks.hpp"
#include "stream/detail/sources.hpp"
#include "stream/functions.hpp"
#include "stream/job_graph.hpp"

namespace stream {

/// The type glue for records of type `T` (one shared instance per type).
template <class T>
std::shared_ptr<const type_ops> type_ops_for() {
  static const auto ops = [] {
    auto result = std::make_shared<type_ops>();
    result->type = typeid(T);
    result->make_head = [](runtime::stage_object* head) {
      return std::unique_ptr<runtime::chain_head>{
          new runtime::typed_chain_head<T>(detail::as_consumer<T>(head))};
    };
    result->make_fanout = [](std::vector<runtime::stage_object*> targets) {
      return std::unique_ptr<runtime::stage_object>{
          new detail::fanout_stage<T>(std::move(targets))};
    };
    result->make_discard = [] {
      return std::unique_ptr<runtime::stage_object>{
          new detail::discard_stage<T>()};
    };
    result->make_forward = [](const router_context& ctx) {
      return std::unique_ptr<runtime::stage_object>{
          new detail::forward_router<T>(ctx)};
    };
    result->make_rebalance = [](const router_context& ctx) {
      return std::unique_ptr<runtime::stage_object>{
          new detail::rebalance_router<T>(ctx)};
    };
    return std::shared_ptr<const type_ops>{std::move(result)};
  }();
  return ops;
}

/// Settings of one operator: name and parallelism. Returned by every call
/// that adds an operator; the settings apply to that operator.
class operator_settings {
 public:
  operator_settings(job_graph* graph, std::uint32_t node)
      : graph_(graph), node_(node) {}

  /// Names the operator (metric label, logs, REST API). Names are unique.
  operator_settings& name(std::string name) {
    graph_->at(node_).name = std::move(name);
    graph_->at(node_).user_named = true;
    return *this;
  }
  /// Fixes the operator's parallelism instead of the job default.
  operator_settings& parallelism(std::uint32_t p) {
    graph_->at(node_).parallelism = p;
    return *this;
  }
  /// Starts a new actor at this operator even where it could be chained.
  operator_settings& start_new_chain() {
    graph_->at(node_).new_chain = true;
    return *this;
  }

  std::uint32_t id() const noexcept { return node_; }

 protected:
  job_graph* graph_;
  std::uint32_t node_;
};

/// The handle of a sink.
using data_sink = operator_settings;

template <class T, class K, class KeyFn>
class keyed_stream;

/// A stream of records of type `T`. Cheap to copy; copies refer to the same
/// operator, and consuming a stream twice copies its records to both.
template <class T>
class data_stream : public operator_settings {
 public:
  using value_type = T;
  using operator_settings::operator_settings;

  data_stream& name(std::string n) {
    operator_settings::name(std::move(n));
    return *this;
  }
  data_stream& parallelism(std::uint32_t p) {
    operator_settings::parallelism(p);
    return *this;
  }
  data_stream& start_new_chain() {
    operator_settings::start_new_chain();
    return *this;
  }

  /// Makes the next operator receive whole batches round-robin over its
  /// subtasks instead of a forward connection.
  data_stream rebalance() const {
    auto copy = *this;
    copy.edge_kind_ = partitioning::rebalance;
    return copy;
  }

  /// One output per input: `fn(const T&) -> U`.
  template <class F>
  auto map(F fn) const {
    using U = std::decay_t<std::invoke_result_t<F&, const T&>>;
    return then<U>("map", [fn](const runtime::stage_context& ctx,
                               runtime::stage_object* next) {
      return make<detail::map_stage<T, U, F>>(ctx, next, fn);
    });
  }

  /// Keeps the records for which `fn(const T&)` is true.
  template <class F>
  data_stream<T> filter(F fn) const {
    return then<T>("filter", [fn](const runtime::stage_context& ctx,
                                  runtime::stage_object* next) {
      return make<detail::filter_stage<T, F>>(ctx, next, fn);
    });
  }

  /// Zero or more outputs per input: `fn(const T&, emitter<U>&)`.
  template <class U, class F>
  data_stream<U> flat_map(F fn) const {
    return then<U>("flat_map", [fn](const runtime::stage_context& ctx,
                                    runtime::stage_object* next) {
      return make<detail::flat_map_stage<T, U, F>>(ctx, next, fn);
    });
  }

  /// Partitions the stream by `fn(const T&) -> K`: records with equal keys
  /// reach the same subtask of the next (keyed) operator.
  template <class F>
  auto key_by(F fn) const {
    using K = std::decay_t<std::invoke_result_t<F&, const T&>>;
    return keyed_stream<T, K, F>{this->graph_, this->node_, std::move(fn)};
  }

  /// Merges this stream with others of the same type.
  template <class... Streams>
  data_stream<T> union_with(const Streams&... others) const {
    auto result = then<T>("union", [](const runtime::stage_context& ctx,
                                      runtime::stage_object* next) {
      return make<detail::identity_stage<T>>(ctx, next);
    });
    (this->graph_->add_edge(others.id(), result.id(), others.edge_kind_), ...);
    return result;
  }

  /// Prints one line per record to stdout (parallelism 1 by default).
  data_sink print() const { return write_text_file("-"); }

  /// Writes one line per record to `path` (parallelism 1 by default; with
  /// more, subtask i writes `path.part-i`).
  data_sink write_text_file(std::string path) const {
    auto s = sink("text_sink", [path](const runtime::stage_context& ctx,
                                      runtime::stage_object*) {
      return std::unique_ptr<runtime::stage_object>{
          new detail::text_sink<T>(ctx, path)};
    });
    s.parallelism(1);
    return s;
  }

  /// Gathers every record in memory (tests).
  std::shared_ptr<collected<T>> collect() const {
    auto target = std::make_shared<collected<T>>();
    sink("collect",
         [target](const runtime::stage_context& ctx, runtime::stage_object*) {
           return std::unique_ptr<runtime::stage_object>{
               new detail::collect_sink<T>(ctx, target)};
         });
    return target;
  }

  /// Counts and drops every record.
  data_sink discard() const {
    return sink("discard",
                [](const runtime::stage_context& ctx, runtime::stage_object*) {
                  return std::unique_ptr<runtime::stage_object>{
                      new detail::discard_sink<T>(ctx)};
                });
  }

  /// Calls `fn(const T&)` for every record.
  template <class F>
  data_sink for_each(F fn) const {
    return sink("for_each", [fn](const runtime::stage_context& ctx,
                                 runtime::stage_object*) {
      return std::unique_ptr<runtime::stage_object>{
          new detail::function_sink<T, F>(ctx, fn)};
    });
  }

  /// Adds an operator fed by this stream (building block of the API).
  template <class U>
  data_stream<U> then(std::string kind, stage_factory factory,
                      bool keyed = false, router_factory hash = {}) const {
    job_graph::node n;
    n.name = std::move(kind);
    n.keyed = keyed;
    n.in_type = type_ops_for<T>();
    n.out_type = type_ops_for<U>();
    n.make_stage = std::move(factory);
    auto id = this->graph_->add_node(std::move(n));
    auto edge = hash ? partitioning::hash : edge_kind_;
    this->graph_->add_edge(this->node_, id, edge, std::move(hash));
    return data_stream<U>{this->graph_, id};
  }

 private:
  template <class Stage, class... Args>
  static std::unique_ptr<runtime::stage_object> make(Args&&... args) {
    return std::unique_ptr<runtime::stage_object>{
        new Stage(std::forward<Args>(args)...)};
  }

  data_sink sink(std::string kind, stage_factory factory) const {
    job_graph::node n;
    n.name = std::move(kind);
    n.kind = job_graph::node_kind::sink;
    n.in_type = type_ops_for<T>();
    n.make_stage = std::move(factory);
    auto id = this->graph_->add_node(std::move(n));
    this->graph_->add_edge(this->node_, id, edge_kind_);
    return data_sink{this->graph_, id};
  }

  template <class>
  friend class data_stream;

  partitioning edge_kind_ = partitioning::automatic;
};

/// A stream partitioned by key `K`; its operators keep state per key.
template <class T, class K, class KeyFn>
class keyed_stream {
 public:
  keyed_stream(job_graph* graph, std::uint32_t node, KeyFn key_fn)
      : input_(graph, node), key_fn_(std::move(key_fn)) {}

  /// Rolling reduce: emits `fn(accumulated, record)` for every record; the
  /// first record of a key is its own accumulator.
  template <class F>
  data_stream<T> reduce(F fn) const {
    struct step {
      F fn;
      void operator()(const K& key, const T& r, std::unordered_map<K, T>& state,
                      emitter<T>& out) {
        auto [it, fresh] = state.try_emplace(key, r);
        if (!fresh) it->second = std::invoke(fn, std::as_const(it->second), r);
        out.emit(it->second);
      }
    };
    return keyed<T, T>("reduce", step{std::move(fn)});
  }

  /// Rolling aggregate: `add(Acc&, const T&)` folds each record into the
  /// key's accumulator (starting from `init`) and `result(const K&, const
  /// Acc&)` is emitted after every update.
  template <class Acc, class Add, class Result>
  auto aggregate(Acc init, Add add, Result result) const {
    using U = std::decay_t<std::invoke_result_t<Result&, const K&, const Acc&>>;
    struct step {
      Acc init;
      Add add;
      Result result;
      void operator()(const K& key, const T& r,
                      std::unordered_map<K, Acc>& state, emitter<U>& out) {
        auto [it, fresh] = state.try_emplace(key, init);
        std::invoke(add, it->second, r);
        out.emit(std::invoke(result, key, std::as_const(it->second)));
      }
    };
    return keyed<U, Acc>(
        "aggregate", step{std::move(init), std::move(add), std::move(result)});
  }

  /// Keyed process function with per-key value state:
  /// `fn(const K&, const T&, value_state<K, S>&, emitter<U>&)`.
  template <class U, class S, class F>
  data_stream<U> process(F fn) const {
    struct step {
      F fn;
      void operator()(const K& key, const T& r, std::unordered_map<K, S>& state,
                      emitter<U>& out) {
        value_state<K, S> vs{state, key};
        std::invoke(fn, key, r, vs, out);
      }
    };
    return keyed<U, S>("process", step{std::move(fn)});
  }

 private:
  template <class U, class S, class Step>
  data_stream<U> keyed(std::string kind, Step step) const {
    auto key_fn = key_fn_;
    stage_factory factory = [key_fn, step](const runtime::stage_context& ctx,
                                           runtime::stage_object* next) {
      return std::unique_ptr<runtime::stage_object>{
          new detail::keyed_stage<T, U, K, KeyFn, S, Step>(ctx, next, key_fn,
                                                           step)};
    };
    router_factory router = [key_fn](const router_context& ctx) {
      return std::unique_ptr<runtime::stage_object>{
          new detail::hash_router<T, KeyFn>(ctx, key_fn)};
    };
    return input_.template then<U>(std::move(kind), std::move(factory), true,
                                   std::move(router));
  }

  data_stream<T> input_;
  KeyFn key_fn_;
};

}  // namespace stream
