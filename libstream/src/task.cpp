#include "stream/runtime/task.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "stream/key_groups.hpp"
#include "stream/metrics.hpp"

namespace stream::runtime {

namespace {

// Protocol invariants stay checked in release builds: a violation means a
// peer broke the credit protocol, and carrying on would lose the bound on
// memory that the protocol exists for.
void require(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "stream: channel protocol violated: %s\n", what);
  std::abort();
}

constexpr double ns_to_seconds = 1e-9;

}  // namespace

task::task(transport& io, const job_options& options)
    : io_(&io), options_(options) {}

task::~task() { close(); }

result<std::unique_ptr<task>> task::create(
    const job_graph& graph, const execution_plan& plan, std::uint32_t chain,
    std::uint32_t subtask, metrics_registry& registry,
    const job_options& options, transport& io, std::uint32_t attempt) {
  std::unique_ptr<task> t{new task(io, options)};
  if (auto st = t->build(graph, plan, chain, subtask, registry, attempt);
      !st.ok())
    return st;
  return t;
}

std::unique_ptr<stage_object> task::make_router(const job_graph& graph,
                                                const execution_plan& plan,
                                                std::uint32_t edge,
                                                std::uint32_t subtask) {
  const auto& e = plan.edge(edge);
  router_context ctx;
  ctx.gate = this;
  ctx.first_channel = e.output_base;
  ctx.targets = plan.channels_per_sender(edge);
  ctx.subtask = subtask;
  ctx.batch_size = options_.batch_size;
  ctx.table = e.table;
  // The receiver's input type: for a side output it is the tag's type, not
  // the sender's main output type.
  const auto& ops = *graph.at(graph.edges()[edge].to).in_type;
  switch (e.kind) {
    case partitioning::forward:
      return ops.make_forward(ctx);
    case partitioning::rebalance:
      return ops.make_rebalance(ctx);
    case partitioning::hash:
      return graph.edges()[edge].make_hash_router(ctx);
    case partitioning::automatic:
      break;
  }
  require(false, "unresolved partitioning");
  return nullptr;
}

status task::build(const job_graph& graph, const execution_plan& plan,
                   std::uint32_t chain, std::uint32_t subtask,
                   metrics_registry& registry, std::uint32_t attempt) {
  const auto& c = plan.chains().at(chain);
  const auto& head_name = plan.name_of(c.nodes.front());
  registry_ = &registry;
  head_name_ = head_name;
  subtask_ = subtask;
  metric_labels task_labels{{"job", options_.job_name},
                            {"operator", head_name},
                            {"subtask", std::to_string(subtask)}};
  busy_ns_ = &registry.get_counter(
      "stream_busy_seconds_total",
      "Time the subtask spent processing records and events.", task_labels,
      ns_to_seconds);
  idle_ns_ = &registry.get_counter(
      "stream_idle_seconds_total",
      "Time the subtask waited for input with room to send output.",
      task_labels, ns_to_seconds);
  backpressured_ns_ = &registry.get_counter(
      "stream_backpressured_seconds_total",
      "Time the subtask could not send because a channel had no credit.",
      task_labels, ns_to_seconds);

  // Outputs of the tail: routers, joined by a fan-out when there are several.
  // Side outputs of any node get routers too, handed to their node below.
  const auto& tail = graph.at(c.nodes.back());
  std::vector<stage_object*> routers;
  std::map<std::uint32_t, std::map<std::string, std::vector<std::uint32_t>>>
      side_edges;  // node -> tag -> edges
  for (auto e : c.out_edges) {
    const auto& ge = graph.edges()[e];
    if (!ge.side_tag.empty()) {
      side_edges[ge.from][ge.side_tag].push_back(e);
      continue;
    }
    stages_.push_back(make_router(graph, plan, e, subtask));
    routers.push_back(stages_.back().get());
  }
  stage_object* next = nullptr;
  if (routers.size() == 1) {
    next = routers.front();
  } else if (routers.size() > 1) {
    stages_.push_back(tail.out_type->make_fanout(routers));
    next = stages_.back().get();
  } else if (tail.kind != job_graph::node_kind::sink) {
    stages_.push_back(tail.out_type->make_discard());
    next = stages_.back().get();
  }
  owned_ = c.key_groups->owned_set(subtask);
  for (auto it = c.nodes.rbegin(); it != c.nodes.rend(); ++it) {
    const auto& n = graph.at(*it);
    stage_context ctx;
    ctx.owned = owned_;
    ctx.job_name = options_.job_name;
    ctx.operator_name = plan.name_of(n.id);
    ctx.operator_id = n.id;
    ctx.subtask = subtask;
    ctx.attempt = attempt;
    ctx.parallelism = c.parallelism;
    ctx.max_parallelism = options_.max_parallelism;
    ctx.batch_size = options_.batch_size;
    metric_labels labels{{"job", options_.job_name},
                         {"operator", ctx.operator_name},
                         {"subtask", std::to_string(subtask)}};
    ctx.records_in = &registry.get_counter(
        "stream_records_in_total", "Records received by the operator.", labels);
    ctx.records_out = &registry.get_counter(
        "stream_records_out_total", "Records emitted by the operator.", labels);
    ctx.metrics = &registry;
    ctx.options = &options_;
    for (const auto& [tag, edges] : side_edges[n.id]) {
      std::vector<stage_object*> targets;
      for (auto e : edges) {
        stages_.push_back(make_router(graph, plan, e, subtask));
        targets.push_back(stages_.back().get());
      }
      if (targets.size() > 1) {
        stages_.push_back(
            graph.at(graph.edges()[edges[0]].to).in_type->make_fanout(targets));
        targets = {stages_.back().get()};
      }
      ctx.side_outputs.emplace_back(tag, targets.front());
    }
    stages_.push_back(n.make_stage(ctx, next));
    next = stages_.back().get();
    if (next->stateful()) stateful_.push_back({next, n.id});
  }
  // Sinks (built first) commit first; sources last.
  std::reverse(stateful_.begin(), stateful_.end());
  const auto& head = graph.at(c.nodes.front());
  if (head.kind == job_graph::node_kind::source) {
    source_ = dynamic_cast<source_stage*>(next);
    require(source_ != nullptr, "a source node did not build a source stage");
  } else {
    head_ = head.in_type->make_head(next);
  }

  inputs_.resize(plan.inputs(chain, subtask).size());
  for (const auto& ref : plan.outputs(chain, subtask)) {
    auto labels = task_labels;
    const auto& e = graph.edges()[ref.edge];
    labels.emplace_back(
        "channel", plan.name_of(e.to) + "/" + std::to_string(ref.peer_subtask));
    output_state out;
    out.credit_gauge = &registry.get_gauge(
        "stream_channel_credits",
        "Batches an output channel may still send before it needs credit.",
        labels);
    out.in_flight_gauge = &registry.get_gauge(
        "stream_channel_in_flight_batches",
        "Batches sent on an output channel whose credit has not come back.",
        labels);
    out.max_in_flight_gauge = &registry.get_gauge(
        "stream_channel_in_flight_batches_max",
        "Most batches ever in flight at once on an output channel.", labels);
    outputs_.push_back(std::move(out));
  }
  return {};
}

status task::open() {
  // Open sinks first (they were created first) so that a failing sink stops
  // the job before a source acquires anything.
  for (auto& s : stages_) {
    if (auto st = s->open(); !st.ok()) return st;
  }
  opened_ = true;
  return {};
}

void task::close() {
  if (closed_ || !opened_) return;
  closed_ = true;
  for (auto it = stages_.rbegin(); it != stages_.rend(); ++it) (*it)->close();
}

void task::start(std::chrono::steady_clock::time_point now) {
  last_ = now;
  for (std::uint32_t ch = 0; ch < inputs_.size(); ++ch)
    io_->grant_credit(ch, options_.channel_credits);
}

void task::begin_work(std::chrono::steady_clock::time_point now) {
  auto gap = std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_);
  if (gap.count() > 0)
    (was_blocked_ ? backpressured_ns_ : idle_ns_)
        ->add(static_cast<std::uint64_t>(gap.count()));
  last_ = now;
}

void task::end_work(std::chrono::steady_clock::time_point now) {
  auto busy = std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_);
  if (busy.count() > 0) busy_ns_->add(static_cast<std::uint64_t>(busy.count()));
  last_ = now;
  was_blocked_ = blocked();
}

void task::on_batch(std::uint32_t input_channel, batch_ptr records) {
  require(opened_, "batch before the task was opened");
  auto& in = inputs_.at(input_channel);
  require(!in.ended, "batch after end of input");
  ++in.queued_batches;
  require(in.queued_batches <= options_.channel_credits,
          "more batches queued than credits granted");
  in.queue.emplace_back(std::move(records));
  drain_inputs();
}

void task::on_event(std::uint32_t input_channel, const control_event& event) {
  require(opened_, "event before the task was opened");
  auto& in = inputs_.at(input_channel);
  require(!in.ended, "event after end of input");
  in.queue.emplace_back(event);
  drain_inputs();
}

void task::on_credit(std::uint32_t output_channel, std::uint32_t credits) {
  auto& out = outputs_.at(output_channel);
  out.credits += credits;
  out.credited = true;
  require(out.credits <= options_.channel_credits,
          "receiver granted more credit than its window");
  bool was_pending = !out.pending.empty();
  while (!out.pending.empty()) {
    auto& item = out.pending.front();
    if (auto* b = std::get_if<batch_ptr>(&item)) {
      if (out.credits == 0) break;
      send_with_credit(output_channel, std::move(*b));
    } else {
      io_->send_event(output_channel, std::get<control_event>(item));
    }
    out.pending.pop_front();
  }
  update_credit_gauges(out);
  if (was_pending && out.pending.empty()) --blocked_outputs_;
  if (!blocked() && !is_source()) drain_inputs();
}

pull_result task::pull() {
  require(is_source(), "pull on a task without a source");
  if (eoi_sent_ || blocked()) return {};
  auto result = source_->pull(options_.batch_size);
  if (result.next == pull_result::state::ended) {
    broadcast({event_kind::end_of_input, 0});
    eoi_sent_ = true;
  }
  return result;
}

void task::on_flush_timer() {
  if (eoi_sent_) return;
  update_watermark_gauges();
  flush_chain();
}

void task::update_watermark_gauges() {
  if (watermark_ == min_watermark || watermark_ == max_watermark) return;
  if (watermark_gauge_ == nullptr) {
    // Only tasks that see event time expose these.
    metric_labels labels{{"job", options_.job_name},
                         {"operator", head_name_},
                         {"subtask", std::to_string(subtask_)}};
    watermark_gauge_ = &registry_->get_gauge(
        "stream_input_watermark_seconds",
        "Event time the subtask's input watermark has reached.", labels, 1e-3);
    watermark_lag_ = &registry_->get_gauge(
        "stream_watermark_lag_seconds",
        "Processing time minus the input watermark: how far event time "
        "trails the clock.",
        labels, 1e-3);
  }
  watermark_gauge_->set(watermark_);
  auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  watermark_lag_->set(now - watermark_);
}

void task::request_stop() {
  if (source_ != nullptr) source_->request_stop();
}

void task::emit(std::uint32_t channel, batch_ptr records) {
  send_or_queue(channel, std::move(records));
}

void task::emit_event(std::uint32_t channel, const control_event& event) {
  send_or_queue(channel, event);
}

void task::send_or_queue(std::uint32_t channel, entry item) {
  auto& out = outputs_.at(channel);
  if (out.pending.empty()) {
    if (auto* e = std::get_if<control_event>(&item)) {
      io_->send_event(channel, *e);
      return;
    }
    if (out.credits > 0) {
      send_with_credit(channel, std::move(std::get<batch_ptr>(item)));
      update_credit_gauges(out);
      return;
    }
    ++blocked_outputs_;
  }
  out.pending.push_back(std::move(item));
}

void task::send_with_credit(std::uint32_t channel, batch_ptr records) {
  auto& out = outputs_[channel];
  --out.credits;
  // Everything the receiver granted and we used is in the channel: in
  // transit, in its mailbox or queue, or processed with the credit on its
  // way back. The window bounds it.
  auto in_flight = options_.channel_credits - out.credits;
  out.max_in_flight = std::max(out.max_in_flight, in_flight);
  io_->send_batch(channel, std::move(records));
}

void task::update_credit_gauges(output_state& out) {
  out.credit_gauge->set(out.credits);
  out.in_flight_gauge->set(out.credited ? options_.channel_credits - out.credits
                                        : 0);
  out.max_in_flight_gauge->set(out.max_in_flight);
}

bool task::deliverable(const input_state& in) const {
  return !in.queue.empty() && !in.held;
}

void task::drain_inputs() {
  // Round-robin over the inputs, one entry at a time, so that one busy
  // channel cannot starve the others. Bounded: every iteration consumes a
  // queued entry, and queues are bounded by the credit window.
  const auto n = static_cast<std::uint32_t>(inputs_.size());
  while (!blocked() && !eoi_sent_) {
    bool progress = false;
    for (std::uint32_t k = 0; k < n; ++k) {
      auto ch = (next_input_ + k) % n;
      if (!deliverable(inputs_[ch])) continue;
      next_input_ = (ch + 1) % n;
      deliver(ch);
      progress = true;
      break;
    }
    if (!progress) return;
  }
}

void task::deliver(std::uint32_t channel) {
  auto& in = inputs_[channel];
  auto item = std::move(in.queue.front());
  in.queue.pop_front();
  if (auto* b = std::get_if<batch_ptr>(&item)) {
    --in.queued_batches;
    // Data on an idle input makes it active again; it holds the watermark
    // back from its next watermark on (the task's never goes back).
    in.idle = false;
    idle_ = false;
    head_->push(**b);
    io_->grant_credit(channel, 1);
    return;
  }
  const auto& event = std::get<control_event>(item);
  switch (event.kind) {
    case event_kind::watermark:
      in.watermark = std::max(in.watermark, event.value);
      in.idle = false;
      update_watermark();
      break;
    case event_kind::idle:
      in.idle = true;
      update_watermark();
      break;
    case event_kind::barrier:
    case event_kind::savepoint:
      require(aligning_ < 0 || aligning_ == event.value,
              "barriers of two checkpoints interleaved");
      if (aligning_ < 0) align_start_ = std::chrono::steady_clock::now();
      in.held = true;
      on_barrier_arrived(event.value, event.kind == event_kind::savepoint);
      break;
    case event_kind::end_of_input:
      in.ended = true;
      in.watermark = max_watermark;
      on_input_ended();
      break;
  }
}

void task::on_barrier_arrived(std::int64_t id, bool savepoint) {
  aligning_ = id;
  aligning_savepoint_ = savepoint;
  for (const auto& in : inputs_) {
    if (!in.ended && !in.held) return;
  }
  for (auto& in : inputs_) in.held = false;
  aligning_ = -1;
  take_snapshot(id, savepoint);
}

void task::take_snapshot(std::int64_t id, bool savepoint) {
  using clock = std::chrono::steady_clock;
  auto begin = clock::now();
  auto alignment =
      is_source() || eoi_sent_ ? clock::duration::zero() : begin - align_start_;
  last_snapshot_ = std::max(last_snapshot_, id);
  // Everything before the barrier leaves the chain before the snapshot, so
  // no operator holds output that belongs to the checkpoint.
  if (!eoi_sent_) flush_chain();
  std::vector<checkpoint::pending_snapshot> parts;
  for (const auto& s : stateful_) {
    checkpoint::pending_snapshot part;
    part.operator_id = s.operator_id;
    part.owned = owned_;
    part.data = std::make_unique<checkpoint::snapshot_builder>();
    s.stage->snapshot_state(id, part);
    parts.push_back(std::move(part));
  }
  if (!eoi_sent_)
    broadcast({savepoint ? event_kind::savepoint : event_kind::barrier, id});
  io_->snapshot_taken(
      id, savepoint, std::move(parts),
      std::chrono::duration_cast<std::chrono::nanoseconds>(alignment),
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() -
                                                           begin));
}

void task::trigger_snapshot(std::int64_t id, bool savepoint) {
  if (id <= last_snapshot_) return;
  if (!eoi_sent_ && !is_source()) return;  // barriers will bring it
  take_snapshot(id, savepoint);
}

void task::on_checkpoint_complete(std::int64_t id) {
  for (const auto& s : stateful_) s.stage->notify_checkpoint_complete(id);
}

status task::restore(
    const std::function<const checkpoint::restored_state*(std::uint32_t)>&
        find) {
  for (const auto& s : stateful_) {
    const auto* state = find(s.operator_id);
    if (state == nullptr) continue;
    if (auto st = s.stage->restore_state(*state); !st.ok()) return st;
    last_snapshot_ = std::max(last_snapshot_, state->checkpoint_id);
  }
  return {};
}

void task::on_input_ended() {
  bool all_ended = std::all_of(inputs_.begin(), inputs_.end(),
                               [](const input_state& in) { return in.ended; });
  if (!all_ended) {
    update_watermark();
    // An input that ended can no longer deliver a pending barrier.
    if (aligning_ >= 0) on_barrier_arrived(aligning_, aligning_savepoint_);
    return;
  }
  head_->finish();
  broadcast({event_kind::end_of_input, 0});
  eoi_sent_ = true;
}

void task::update_watermark() {
  auto low = max_watermark;
  bool any_active = false;
  for (const auto& in : inputs_) {
    if (in.ended || in.idle) continue;
    any_active = true;
    low = std::min(low, in.watermark);
  }
  if (!any_active) {
    // Every live input is idle (ended ones promise the maximum): say so
    // downstream once, so that this task holds nobody back either. When
    // all ended, end of input follows instead.
    bool all_ended =
        std::all_of(inputs_.begin(), inputs_.end(),
                    [](const input_state& in) { return in.ended; });
    if (idle_ || all_ended) return;
    idle_ = true;
    head_->on_control({event_kind::idle, 0});
    return;
  }
  idle_ = false;
  if (low <= watermark_) return;
  watermark_ = low;
  update_watermark_gauges();
  head_->on_control({event_kind::watermark, low});
}

void task::flush_chain() {
  if (source_ != nullptr)
    source_->flush();
  else
    head_->flush();
}

void task::broadcast(const control_event& event) {
  for (std::uint32_t ch = 0; ch < outputs_.size(); ++ch)
    send_or_queue(ch, event);
}

}  // namespace stream::runtime
