#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "stream/data_stream.hpp"
#include "stream/job_graph.hpp"
#include "stream/options.hpp"

namespace stream {

/// Options of a generator source.
using detail::bad_records;

struct generator_options {
  /// Records to produce over all subtasks; the maximum means unbounded.
  std::uint64_t count = UINT64_MAX;
  /// Records per second over all subtasks; 0 means as fast as possible.
  double rate = 0;
};

/// Builds a job: the entry point of the user API. Every call adds nodes to
/// the job graph; `stream::run` or `stream::execute` runs it. Not
/// thread-safe; build the job on one thread.
class environment {
 public:
  explicit environment(job_options options = {});

  const job_options& options() const noexcept { return options_; }
  job_options& options() noexcept { return options_; }
  const job_graph& graph() const noexcept { return *graph_; }

  /// A source calling `fn(index)` for index 0, 1, 2, ... (see
  /// `generator_options`); deterministic for any parallelism. Throws
  /// `std::invalid_argument` for a negative or non-finite rate.
  template <class F>
  auto from_generator(F fn, generator_options opts = {})
      -> data_stream<std::decay_t<std::invoke_result_t<F&, std::uint64_t>>> {
    using T = std::decay_t<std::invoke_result_t<F&, std::uint64_t>>;
    if (!(opts.rate >= 0) || opts.rate > 1e15)
      throw std::invalid_argument{
          "the generator's rate must be between 0 (unlimited) and 1e15 "
          "records per second"};
    job_graph::node n;
    n.name = "generator";
    n.kind = job_graph::node_kind::source;
    n.out_type = type_ops_for<T>();
    n.make_stage = [fn, opts](const runtime::stage_context& ctx,
                              runtime::stage_object* next) {
      return std::unique_ptr<runtime::stage_object>{
          new detail::generator_source<T, F>(ctx, next, fn, opts.count,
                                             opts.rate)};
    };
    return data_stream<T>{graph_.get(), graph_->add_node(std::move(n))};
  }

  /// A source emitting each line of a text file (parallelism 1).
  data_stream<std::string> read_text_file(std::string path);

  /// A source emitting `parse(std::string_view line) -> result<T>` for each
  /// line of a text file (parallelism 1). Lines that do not parse are
  /// counted in `stream_bad_records_total` and reported with their line
  /// number, then skipped, or fail the job (`bad_records::fail`).
  template <class T, class Parse>
  data_stream<T> read_text_file(std::string path, Parse parse,
                                bad_records policy = bad_records::skip) {
    job_graph::node n;
    n.name = "text_file";
    n.kind = job_graph::node_kind::source;
    n.max_parallelism = 1;
    n.out_type = type_ops_for<T>();
    n.make_stage = [path, parse, policy](const runtime::stage_context& ctx,
                                         runtime::stage_object* next) {
      return std::unique_ptr<runtime::stage_object>{
          new detail::parsed_file_source<T, Parse>(ctx, next, path, parse,
                                                   policy)};
    };
    return data_stream<T>{graph_.get(), graph_->add_node(std::move(n))};
  }

  /// A source emitting the elements of `items` in order (parallelism 1).
  template <class T>
  data_stream<T> from_collection(std::vector<T> items) {
    auto shared = std::make_shared<const std::vector<T>>(std::move(items));
    job_graph::node n;
    n.name = "collection";
    n.kind = job_graph::node_kind::source;
    n.max_parallelism = 1;
    n.out_type = type_ops_for<T>();
    n.make_stage = [shared](const runtime::stage_context& ctx,
                            runtime::stage_object* next) {
      return std::unique_ptr<runtime::stage_object>{
          new detail::collection_source<T>(ctx, next, shared)};
    };
    return data_stream<T>{graph_.get(), graph_->add_node(std::move(n))};
  }

  /// Adds a source node (building block of connectors): `factory` makes a
  /// `runtime::source_stage` producing `T`; `check` is the node's start-up
  /// check (see `job_graph::node::check`).
  template <class T>
  data_stream<T> add_source(
      std::string kind, stage_factory factory,
      std::function<status(const job_options&)> check = {}) {
    job_graph::node n;
    n.name = std::move(kind);
    n.kind = job_graph::node_kind::source;
    n.out_type = type_ops_for<T>();
    n.make_stage = std::move(factory);
    n.check = std::move(check);
    return data_stream<T>{graph_.get(), graph_->add_node(std::move(n))};
  }

  /// Turns off operator chaining (every operator gets its own actor).
  void disable_chaining() noexcept { chaining_ = false; }
  bool chaining() const noexcept { return chaining_; }

  /// Application options parsed by `stream::run` (see `app_option`): the
  /// value as given, or the declared default.
  const std::string& arg(const std::string& name) const;
  /// `arg(name)` as a number; `stream::run` has already validated it.
  std::uint64_t arg_u64(const std::string& name) const;
  double arg_double(const std::string& name) const;
  bool has_arg(const std::string& name) const;
  void set_arg(std::string name, std::string value);

  /// What every process of this job must agree on, as `name=value` lines in
  /// a fixed order: the topology's fingerprint, the options that decide
  /// routing and layout (job name, parallelism, max parallelism, chaining,
  /// channel credits), where checkpoints and savepoints go, and every
  /// application option. A coordinator refuses a worker whose definition
  /// differs (see `definition_differences`).
  std::string definition() const;

 private:
  job_options options_;
  std::unique_ptr<job_graph> graph_;
  std::map<std::string, std::string> args_;
  bool chaining_ = true;
};

/// One option in which two job definitions differ.
struct definition_difference {
  std::string option;  ///< "--max-parallelism", or "topology".
  std::string mine;    ///< Shortened to 60 characters; "(none)" if empty,
  std::string theirs;  ///< "(absent)" if that side lacks the option.
};

/// The options in which two `environment::definition` texts differ, by
/// option name. Empty when they agree.
std::vector<definition_difference> definition_differences(
    const std::string& mine, const std::string& theirs);

}  // namespace stream
