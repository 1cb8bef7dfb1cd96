#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "stream/codec.hpp"
#include "stream/detail/operators.hpp"
#include "stream/detail/process.hpp"
#include "stream/detail/routers.hpp"
#include "stream/detail/sinks.hpp"
#include "stream/detail/sources.hpp"
#include "stream/detail/watermarks.hpp"
#include "stream/detail/windows.hpp"
#include "stream/event_time.hpp"
#include "stream/functions.hpp"
#include "stream/job_graph.hpp"
#include "stream/state.hpp"
#include "stream/windows.hpp"

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
    if constexpr (is_encodable_v<T>) {
      result->encode = [](const runtime::batch_base& b,
                          std::vector<std::uint8_t>& out) {
        encode_batch(static_cast<const runtime::batch<T>&>(b).records, out);
      };
      result->decode = [](std::span<const std::uint8_t> in)
          -> ::stream::result<runtime::batch_ptr> {
        auto b = std::make_shared<runtime::batch<T>>();
        if (auto st = decode_batch(in, b->records); !st.ok()) return st;
        return runtime::batch_ptr{std::move(b)};
      };
    }
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

template <class T, class K, class KeyFn>
class windowed_stream;

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

  /// Gives the records timestamps and this operator's subtasks (the source
  /// splits, when it follows a source) watermarks, per `strategy`.
  data_stream assign_timestamps_and_watermarks(
      watermark_strategy<T> strategy) const {
    if (!strategy.timestamps())
      throw std::invalid_argument{
          "assign_timestamps_and_watermarks: the strategy needs a timestamp "
          "assigner (with_timestamp_assigner)"};
    auto result =
        then<T>("timestamps", [strategy](const runtime::stage_context& ctx,
                                         runtime::stage_object* next) {
          return make<detail::watermark_stage<T>>(ctx, next, strategy);
        });
    // As in Flink, the assigner runs with the parallelism of its input, so
    // it chains to it and sees each source split alone.
    const auto& in = this->graph_->at(this->node_);
    auto& node = this->graph_->at(result.node_);
    node.parallelism = in.parallelism;
    node.max_parallelism = in.max_parallelism;
    result.timestamps_ = strategy.timestamps();
    return result;
  }

  /// Declares how to read the timestamp of records that already travel with
  /// watermarks (the output of a window, say), without new watermarks.
  template <class F>
  data_stream with_timestamps(F fn) const {
    auto copy = *this;
    copy.timestamps_ = std::make_shared<const timestamp_fn<T>>(std::move(fn));
    return copy;
  }

  /// The timestamp extractor of this stream, or null when it has none.
  const std::shared_ptr<const timestamp_fn<T>>& timestamps() const noexcept {
    return timestamps_;
  }

  /// The records this operator emitted under `tag` (late data, say), as a
  /// stream of their own.
  template <class U>
  data_stream<U> side_output(const output_tag<U>& tag) const {
    if (tag.name.empty())
      throw std::invalid_argument{"side_output: the tag needs a name"};
    data_stream<U> s{this->graph_, this->node_};
    s.side_tag_ = tag.name;
    return s;
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
    return keyed_stream<T, K, F>{*this, std::move(fn)};
  }

  /// Merges this stream with others of the same type.
  template <class... Streams>
  data_stream<T> union_with(const Streams&... others) const {
    auto result = then<T>("union", [](const runtime::stage_context& ctx,
                                      runtime::stage_object* next) {
      return make<detail::identity_stage<T>>(ctx, next);
    });
    (this->graph_->add_edge(others.id(), result.id(), others.edge_kind_, {},
                            others.side_tag_),
     ...);
    return result;
  }

  /// Prints one line per record to stdout (parallelism 1 by default).
  data_sink print() const { return write_text_file("-"); }

  /// Writes one line per record to `path` (parallelism 1 by default; with
  /// more, subtask i writes `path.part-i`).
  data_sink write_text_file(std::string path) const {
    auto s = sink(
        "text_sink",
        [path](const runtime::stage_context& ctx, runtime::stage_object*) {
          return std::unique_ptr<runtime::stage_object>{
              new detail::text_sink<T>(ctx, path)};
        },
        [path](const job_options&) {
          return detail::check_writable_file(path);
        });
    s.parallelism(1);
    return s;
  }

  /// Exactly-once file output: one line per record into part files of
  /// `directory` that become visible when the checkpoint covering them
  /// completes (two-phase commit by rename): subtask s writes
  /// `part-<s>-<checkpoint id>`. A restore commits what its checkpoint had
  /// staged and removes newer output of this subtask, so after any failure
  /// the visible files hold every record exactly once. Without periodic
  /// checkpoints, output is committed at the end of input.
  data_sink write_files(std::string directory) const {
    return sink(
        "file_sink",
        [directory](const runtime::stage_context& ctx, runtime::stage_object*) {
          return std::unique_ptr<runtime::stage_object>{
              new detail::file_commit_sink<T>(ctx, directory)};
        },
        [directory](const job_options&) {
          return detail::check_writable_directory(directory, "output folder");
        });
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
    this->graph_->add_edge(this->node_, id, edge, std::move(hash), side_tag_);
    data_stream<U> result{this->graph_, id};
    // Records of the same type keep their timestamps (as in Flink, where a
    // map or filter keeps the record's timestamp).
    if constexpr (std::is_same_v<T, U>) result.timestamps_ = timestamps_;
    return result;
  }

  /// Adds a sink fed by this stream (building block of connectors);
  /// `check` is the node's start-up check (see `job_graph::node::check`).
  data_sink sink(std::string kind, stage_factory factory,
                 std::function<status(const job_options&)> check = {}) const {
    job_graph::node n;
    n.name = std::move(kind);
    n.kind = job_graph::node_kind::sink;
    n.in_type = type_ops_for<T>();
    n.make_stage = std::move(factory);
    n.check = std::move(check);
    auto id = this->graph_->add_node(std::move(n));
    this->graph_->add_edge(this->node_, id, edge_kind_, {}, side_tag_);
    return data_sink{this->graph_, id};
  }

 private:
  template <class Stage, class... Args>
  static std::unique_ptr<runtime::stage_object> make(Args&&... args) {
    return std::unique_ptr<runtime::stage_object>{
        new Stage(std::forward<Args>(args)...)};
  }

  template <class>
  friend class data_stream;
  template <class, class, class>
  friend class keyed_stream;

  partitioning edge_kind_ = partitioning::automatic;
  std::string side_tag_;  ///< Non-empty: a side output of node_.
  std::shared_ptr<const timestamp_fn<T>> timestamps_;
};

/// A stream partitioned by key `K`; its operators keep state per key.
template <class T, class K, class KeyFn>
class keyed_stream {
 public:
  keyed_stream(data_stream<T> input, KeyFn key_fn)
      : input_(std::move(input)), key_fn_(std::move(key_fn)) {}

  /// Rolling reduce: emits `fn(accumulated, record)` for every record; the
  /// first record of a key is its own accumulator.
  template <class F>
  data_stream<T> reduce(F fn) const {
    struct step {
      F fn;
      void operator()(const K&, const T& r, T& acc, bool created,
                      emitter<T>& out) {
        if (created)
          acc = r;
        else
          acc = std::invoke(fn, std::as_const(acc), r);
        out.emit(acc);
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
      void operator()(const K& key, const T& r, Acc& acc, bool created,
                      emitter<U>& out) {
        if (created) acc = init;
        std::invoke(add, acc, r);
        out.emit(std::invoke(result, key, std::as_const(acc)));
      }
    };
    return keyed<U, Acc>(
        "aggregate", step{std::move(init), std::move(add), std::move(result)});
  }

  /// Keyed process function: `fn.process(const K&, const T&,
  /// keyed_context<K>&, emitter<U>&)` per record, with keyed state, timers
  /// and side outputs through the context; optional `fn.open(ctx)` and
  /// `fn.on_timer(time, const K&, ctx, emitter<U>&)`. A callable with the
  /// `process` signature works too.
  template <class U, class F>
  data_stream<U> process(F fn) const {
    auto key_fn = key_fn_;
    auto timestamps = input_.timestamps();
    stage_factory factory = [key_fn, fn, timestamps](
                                const runtime::stage_context& ctx,
                                runtime::stage_object* next) {
      return std::unique_ptr<runtime::stage_object>{
          new detail::keyed_process_stage<T, U, K, KeyFn, F>(ctx, next, key_fn,
                                                             fn, timestamps)};
    };
    return input_.template then<U>("process", std::move(factory), true,
                                   hash_router());
  }

  /// Groups each key's records into windows.
  windowed_stream<T, K, KeyFn> window(window_assigner assigner) const {
    if (assigner.shape != window_assigner::kind::session && assigner.size <= 0)
      throw std::invalid_argument{"window: the size must be positive"};
    if (assigner.shape == window_assigner::kind::sliding && assigner.slide <= 0)
      throw std::invalid_argument{"window: the slide must be positive"};
    if (assigner.shape == window_assigner::kind::session && assigner.gap <= 0)
      throw std::invalid_argument{"window: the session gap must be positive"};
    if (assigner.domain == time_domain::event_time && !input_.timestamps())
      throw std::invalid_argument{
          "window: event-time windows need timestamps; call "
          "assign_timestamps_and_watermarks (or with_timestamps) first"};
    return windowed_stream<T, K, KeyFn>{*this, assigner};
  }

  /// Routes records to the owner of their key's group.
  router_factory hash_router() const {
    auto key_fn = key_fn_;
    return [key_fn](const router_context& ctx) {
      return std::unique_ptr<runtime::stage_object>{
          new detail::hash_router<T, KeyFn>(ctx, key_fn)};
    };
  }

  const data_stream<T>& input() const noexcept { return input_; }
  const KeyFn& key_fn() const noexcept { return key_fn_; }

 private:
  template <class U, class S, class Step>
  data_stream<U> keyed(std::string kind, Step step) const {
    auto key_fn = key_fn_;
    stage_factory factory = [key_fn, step](const runtime::stage_context& ctx,
                                           runtime::stage_object* next) {
      return std::unique_ptr<runtime::stage_object>{
          new detail::rolling_stage<T, U, K, KeyFn, S, Step>(ctx, next, key_fn,
                                                             step)};
    };
    return input_.template then<U>(std::move(kind), std::move(factory), true,
                                   hash_router());
  }

  data_stream<T> input_;
  KeyFn key_fn_;
};

/// A keyed stream grouped into windows; finished by `reduce`, `aggregate`
/// or `process`, which emit one result per key and window when it fires.
template <class T, class K, class KeyFn>
class windowed_stream {
 public:
  windowed_stream(keyed_stream<T, K, KeyFn> keyed, window_assigner assigner)
      : keyed_(std::move(keyed)), assigner_(assigner) {}

  /// Keeps event-time windows this long after they fired: late records
  /// update them and fire them again.
  windowed_stream& allowed_lateness(std::chrono::milliseconds lateness) {
    if (lateness.count() < 0)
      throw std::invalid_argument{"allowed_lateness must not be negative"};
    lateness_ = lateness.count();
    return *this;
  }

  /// Sends records later than the allowed lateness to side output `tag`.
  windowed_stream& side_output_late_data(const output_tag<T>& tag) {
    late_tag_ = tag.name;
    return *this;
  }

  /// Emits `fn(const T&, const T&) -> T` folded over each window.
  template <class F>
  data_stream<T> reduce(F fn) const {
    return build<T>("window_reduce",
                    detail::reduce_window_fn<T, F>{std::move(fn)});
  }

  /// Folds records into an `Acc` per window (`add(Acc&, const T&)`) and
  /// emits `result(const K&, const time_window&, const Acc&)`.
  template <class Acc, class Add, class Result>
  auto aggregate(Acc init, Add add, Result result) const {
    using U =
        std::decay_t<std::invoke_result_t<Result&, const K&, const time_window&,
                                          const Acc&>>;
    return build<U>(
        "window_aggregate",
        detail::aggregate_window_fn<T, Acc, Add, Result, detail::no_merge>{
            std::move(init), std::move(add), std::move(result), {}});
  }

  /// Same, with `merge(Acc&, const Acc&)`, which session windows need.
  template <class Acc, class Add, class Merge, class Result>
  auto aggregate(Acc init, Add add, Merge merge, Result result) const {
    using U =
        std::decay_t<std::invoke_result_t<Result&, const K&, const time_window&,
                                          const Acc&>>;
    return build<U>("window_aggregate",
                    detail::aggregate_window_fn<T, Acc, Add, Result, Merge>{
                        std::move(init), std::move(add), std::move(result),
                        std::move(merge)});
  }

  /// Calls `fn(const K&, const time_window&, const std::vector<T>&,
  /// emitter<U>&)` with all the records of each window (the process window
  /// function).
  template <class U, class F>
  data_stream<U> process(F fn) const {
    return build<U>("window_process",
                    detail::process_window_fn<T, F>{std::move(fn)});
  }

 private:
  template <class U, class W>
  data_stream<U> build(std::string kind, W fn) const {
    auto key_fn = keyed_.key_fn();
    auto timestamps = keyed_.input().timestamps();
    auto assigner = assigner_;
    auto lateness = lateness_;
    auto late_tag = late_tag_;
    stage_factory factory = [=](const runtime::stage_context& ctx,
                                runtime::stage_object* next) {
      if (assigner.merging()) {
        if constexpr (W::mergeable) {
          return std::unique_ptr<runtime::stage_object>{
              new detail::session_window_stage<T, U, K, KeyFn, W>(
                  ctx, next, key_fn, assigner, lateness, late_tag, timestamps,
                  fn)};
        }
      }
      return std::unique_ptr<runtime::stage_object>{
          new detail::window_stage<T, U, K, KeyFn, W>(
              ctx, next, key_fn, assigner, lateness, late_tag, timestamps, fn)};
    };
    if (assigner_.merging() && !W::mergeable)
      throw std::invalid_argument{
          "session windows need aggregate(init, add, merge, result)"};
    return keyed_.input().template then<U>(std::move(kind), std::move(factory),
                                           true, keyed_.hash_router());
  }

  keyed_stream<T, K, KeyFn> keyed_;
  window_assigner assigner_;
  std::int64_t lateness_ = 0;
  std::string late_tag_;
};

}  // namespace stream
