// The Kafka sink's producer.
//
// Exactly once. librdkafka cannot resume another process's transaction, so
// the records since the last barrier are part of the checkpoint: at barrier
// n they are "staged" (kept in the snapshot; if they were already produced
// into the open transaction, it is flushed, so the broker holds them), and
// when checkpoint n completes the transaction holding them commits. Each
// transaction also commits a marker: the highest staged checkpoint id it
// holds, as the offset of partition 0 of the topic for the consumer group
// "<transactional id>-m<run token>". A restore fences older producers with
// the same transactional id (which aborts their open transaction), reads the
// marker, and commits again exactly the staged records above it. The run
// token (random at a fresh start, kept in the state) keeps markers of
// earlier runs of the same job apart.
//
// One producer, one open transaction: records after barrier n go into it
// only while no staged checkpoint waits in it; otherwise they wait in memory
// until it commits (usually a few milliseconds after the barrier).

#include <chrono>
#include <cstdio>
#include <random>

#include "kafka/client.hpp"
#include "stream/checkpoint/snapshot.hpp"
#include "stream/codec.hpp"
#include "stream/detail/kafka_io.hpp"
#include "stream/metrics.hpp"
#include "stream/options.hpp"
#include "stream/runtime/stage.hpp"

namespace stream::kafka::detail {

namespace {

struct staged_epoch {
  std::int64_t id = 0;
  std::vector<std::string> keys;
  std::vector<std::string> values;
};
STREAM_FIELDS(staged_epoch, id, keys, values);

struct writer_state {
  std::string transactional_id;
  std::uint64_t run_token = 0;
  std::vector<staged_epoch> staged;
};
STREAM_FIELDS(writer_state, transactional_id, run_token, staged);

/// The consumer group whose offset is the marker of a transactional id's
/// run.
std::string marker_group_of(const std::string& transactional_id,
                            std::uint64_t run_token) {
  char token[17];
  std::snprintf(token, sizeof token, "%016llx",
                static_cast<unsigned long long>(run_token));
  return transactional_id + "-m" + token;
}

std::uint64_t new_run_token() {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^
         static_cast<std::uint64_t>(
             std::chrono::steady_clock::now().time_since_epoch().count());
}

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* error = static_cast<std::string*>(opaque);
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && error->empty())
    *error = rd_kafka_err2str(m->err);
}

/// Records that wait in memory for a pending checkpoint to complete (see
/// above) at the most; beyond, checkpoints are failing or far too slow, and
/// the task fails (recovering from the last checkpoint) instead of growing.
constexpr std::size_t max_waiting_records = 1'000'000;

/// Transactions may take a while when the broker is busy; a commit that
/// does not finish in this time fails the task (the restore redoes it).
constexpr int transaction_timeout_ms = 60'000;

}  // namespace

struct writer::impl {
  sink_options options;
  std::string client_name;  ///< client.id
  std::string transactional_id;
  bool exactly_once = false;
  client producer;
  std::string delivery_error;  ///< First failed delivery.
  std::uint64_t writes = 0;
  // Exactly once:
  writer_state state;
  staged_epoch current;  ///< Records since the last barrier.
  bool txn_open = false;
  /// Highest staged id in the open transaction; 0: it holds only `current`.
  std::int64_t txn_max = 0;
  bool live = false;  ///< `current` is produced into the open transaction.
  std::int64_t last_id = 0;
  counter* committed = nullptr;
  counter* recommitted = nullptr;
  gauge* commit_micros = nullptr;

  std::string marker_group() const {
    return marker_group_of(transactional_id, state.run_token);
  }

  status failed(const std::string& what, rd_kafka_error_t* error) {
    bool abortable = error && rd_kafka_error_txn_requires_abort(error);
    auto text = take_error(error);
    if (abortable) {
      take_error(
          rd_kafka_abort_transaction(producer.get(), transaction_timeout_ms));
      txn_open = false;
    }
    return {errc::io_error, "Kafka sink '" + options.topic + "' (" +
                                transactional_id + "): " + what + ": " + text};
  }

  status produce(const std::string& key, const std::string& value) {
    for (int attempt = 0;; ++attempt) {
      auto err = rd_kafka_producev(
          producer.get(), RD_KAFKA_V_TOPIC(options.topic.c_str()),
          // An empty key is no key (null): partitioned round-robin.
          RD_KAFKA_V_KEY(key.empty() ? nullptr : const_cast<char*>(key.data()),
                         key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
      // A full queue drains as the broker acknowledges: wait (bounded).
      if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt >= 6000)
        return {errc::io_error,
                "Kafka sink '" + options.topic +
                    "': cannot produce: " + rd_kafka_err2str(err)};
      rd_kafka_poll(producer.get(), 10);
    }
    if (++writes % 1024 == 0) rd_kafka_poll(producer.get(), 0);
    if (!delivery_error.empty())
      return {errc::io_error,
              "Kafka sink '" + options.topic +
                  "': a message was not delivered: " + delivery_error};
    return {};
  }

  status flush() {
    auto err = rd_kafka_flush(producer.get(), transaction_timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      return {errc::io_error, "Kafka sink '" + options.topic +
                                  "': messages not acknowledged in time: " +
                                  rd_kafka_err2str(err)};
    if (!delivery_error.empty())
      return {errc::io_error,
              "Kafka sink '" + options.topic +
                  "': a message was not delivered: " + delivery_error};
    return {};
  }

  status produce_all(const staged_epoch& epoch) {
    for (std::size_t i = 0; i < epoch.keys.size(); ++i) {
      if (auto st = produce(epoch.keys[i], epoch.values[i]); !st.ok())
        return st;
    }
    return {};
  }

  status commit_open(std::int64_t marker);
  status open_next();
  status settle(std::int64_t completed);
  result<std::int64_t> read_marker(const std::string& group);
  status drop_committed(writer_state& from);
  status take_over(std::int64_t checkpoint_id, const std::string& encoded);
};

status writer::impl::commit_open(std::int64_t marker) {
  auto started = std::chrono::steady_clock::now();
  partition_list offsets{rd_kafka_topic_partition_list_new(1)};
  rd_kafka_topic_partition_list_add(offsets.get(), options.topic.c_str(), 0)
      ->offset = marker;
  auto* group = rd_kafka_consumer_group_metadata_new(marker_group().c_str());
  auto* error = rd_kafka_send_offsets_to_transaction(
      producer.get(), offsets.get(), group, transaction_timeout_ms);
  rd_kafka_consumer_group_metadata_destroy(group);
  if (error) return failed("cannot add the commit marker", error);
  if (auto* e =
          rd_kafka_commit_transaction(producer.get(), transaction_timeout_ms))
    return failed(
        "cannot commit the transaction of checkpoint " + std::to_string(marker),
        e);
  txn_open = false;
  committed->add(1);
  commit_micros->set(std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::steady_clock::now() - started)
                         .count());
  auto& staged = state.staged;
  std::erase_if(staged,
                [marker](const staged_epoch& e) { return e.id <= marker; });
  return {};
}

/// Begins the next transaction: with every staged checkpoint if any wait
/// (flushed, so that they are pre-committed), else with `current` (live).
status writer::impl::open_next() {
  if (auto* e = rd_kafka_begin_transaction(producer.get()))
    return failed("cannot begin a transaction", e);
  txn_open = true;
  if (!state.staged.empty()) {
    for (const auto& epoch : state.staged) {
      if (auto st = produce_all(epoch); !st.ok()) return st;
    }
    txn_max = state.staged.back().id;
    live = false;
    return flush();
  }
  txn_max = 0;
  live = true;
  return produce_all(current);
}

/// Commits everything staged up to the completed checkpoint, then opens
/// the next transaction.
status writer::impl::settle(std::int64_t completed) {
  // Bounded: each round commits at least one staged checkpoint or stops.
  for (int round = 0; round < 4; ++round) {
    if (txn_open && txn_max > 0 && txn_max <= completed) {
      if (auto st = commit_open(txn_max); !st.ok()) return st;
    }
    if (txn_open) return {};
    if (auto st = open_next(); !st.ok()) return st;
    if (txn_max == 0 || txn_max > completed) return {};
  }
  return {};
}

result<std::int64_t> writer::impl::read_marker(const std::string& group) {
  // Of the connector's (producer) properties, the security settings.
  std::map<std::string, std::string> settings{
      {"bootstrap.servers", options.brokers},
      {"client.id", client_name + "-marker"}};
  for (const auto& [k, v] : options.properties) {
    if (k.starts_with("security.") || k.starts_with("sasl.") ||
        k.starts_with("ssl."))
      settings[k] = v;
  }
  settings["group.id"] = group;
  settings["enable.auto.commit"] = "false";
  settings["isolation.level"] = "read_committed";
  auto consumer = make_client(RD_KAFKA_CONSUMER, settings);
  if (!consumer) return consumer.error();
  partition_list list{rd_kafka_topic_partition_list_new(1)};
  auto* tp =
      rd_kafka_topic_partition_list_add(list.get(), options.topic.c_str(), 0);
  auto err =
      rd_kafka_committed(consumer->get(), list.get(), transaction_timeout_ms);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = tp->err;
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return status{errc::io_error, "Kafka sink '" + options.topic +
                                      "': cannot read the commit marker of " +
                                      group + ": " + rd_kafka_err2str(err)};
  auto marker = tp->offset >= 0 ? tp->offset : std::int64_t{0};
  rd_kafka_consumer_close(consumer->get());
  return marker;
}

/// Drops the staged checkpoints of `from` that its run's marker shows as
/// committed; the rest are written again (counted and logged).
status writer::impl::drop_committed(writer_state& from) {
  auto marker =
      read_marker(marker_group_of(from.transactional_id, from.run_token));
  if (!marker) return marker.error();
  std::erase_if(from.staged,
                [m = *marker](const staged_epoch& e) { return e.id <= m; });
  for (const auto& epoch : from.staged) {
    recommitted->add(epoch.keys.size());
    std::fprintf(stderr,
                 "stream: Kafka sink %s: checkpoint %lld's %zu records were "
                 "not committed before the failure; writing them again\n",
                 transactional_id.c_str(), static_cast<long long>(epoch.id),
                 epoch.keys.size());
  }
  return {};
}

/// An at-least-once sink restored from a checkpoint of an exactly-once run
/// (the delivery guarantee changed): fences the old transactional id, which
/// aborts the transaction it left open (read_committed consumers would
/// otherwise wait for it until the transaction timeout), and writes the
/// staged records that its marker does not show as committed.
status writer::impl::take_over(std::int64_t checkpoint_id,
                               const std::string& encoded) {
  writer_state old;
  if (auto st = checkpoint::decode_all(encoded, old); !st.ok())
    return {st.code(), "Kafka sink state: " + st.message()};
  if (old.transactional_id.empty())
    return {errc::malformed_data, "Kafka sink state of checkpoint " +
                                      std::to_string(checkpoint_id) +
                                      ": no transactional id"};
  std::map<std::string, std::string> settings{
      {"bootstrap.servers", options.brokers},
      {"client.id", client_name + "-fence"},
      {"transaction.timeout.ms",
       std::to_string(options.transaction_timeout.count())}};
  for (const auto& [k, v] : options.properties) settings[k] = v;
  settings["transactional.id"] = old.transactional_id;
  auto fence = make_client(RD_KAFKA_PRODUCER, settings);
  if (!fence) return fence.error();
  if (auto* e =
          rd_kafka_init_transactions(fence->get(), transaction_timeout_ms))
    return {errc::io_error, "Kafka sink '" + options.topic +
                                "': cannot fence the exactly-once run's "
                                "transactional id '" +
                                old.transactional_id + "': " + take_error(e)};
  fence->reset();
  std::fprintf(stderr,
               "stream: Kafka sink %s: restored checkpoint %lld of an "
               "exactly-once run; fenced its transactional id '%s'\n",
               transactional_id.c_str(), static_cast<long long>(checkpoint_id),
               old.transactional_id.c_str());
  if (auto st = drop_committed(old); !st.ok()) return st;
  for (const auto& epoch : old.staged) {
    if (auto st = produce_all(epoch); !st.ok()) return st;
  }
  return flush();
}

writer::writer(std::unique_ptr<impl> self) : self_(std::move(self)) {}
writer::~writer() = default;

result<std::unique_ptr<writer>> writer::open(
    const sink_options& options, const runtime::stage_context& ctx) {
  auto self = std::make_unique<impl>();
  self->options = options;
  self->exactly_once = options.guarantee == delivery::exactly_once;
  auto prefix = options.transactional_id_prefix.empty()
                    ? ctx.job_name + "-" + ctx.operator_name
                    : options.transactional_id_prefix;
  self->transactional_id = prefix + "-" + std::to_string(ctx.subtask);
  self->client_name = client_id(ctx);
  std::map<std::string, std::string> settings{
      {"bootstrap.servers", options.brokers},
      {"client.id", self->client_name},
      {"enable.idempotence", "true"},
      {"acks", "all"},
      {"linger.ms", "5"},
      {"partitioner", "murmur2_random"}};
  if (self->exactly_once) {
    settings["transactional.id"] = self->transactional_id;
    settings["transaction.timeout.ms"] =
        std::to_string(options.transaction_timeout.count());
  }
  for (const auto& [k, v] : options.properties) settings[k] = v;
  auto* error = &self->delivery_error;
  auto producer =
      make_client(RD_KAFKA_PRODUCER, settings, [error](rd_kafka_conf_t* conf) {
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rd_kafka_conf_set_opaque(conf, error);
      });
  if (!producer) return producer.error();
  self->producer = std::move(*producer);
  metric_labels labels{{"job", ctx.job_name},
                       {"operator", ctx.operator_name},
                       {"subtask", std::to_string(ctx.subtask)}};
  self->committed = &ctx.metrics->get_counter(
      "stream_kafka_transactions_committed_total",
      "Kafka transactions the exactly-once sink committed.", labels);
  self->recommitted = &ctx.metrics->get_counter(
      "stream_kafka_recommitted_records_total",
      "Records of a completed checkpoint that a restored sink wrote again "
      "because their transaction had not committed.",
      labels);
  self->commit_micros = &ctx.metrics->get_gauge(
      "stream_kafka_last_commit_seconds",
      "Duration of the sink's last transaction commit (marker and "
      "EndTxn).",
      labels, 1e-6);
  return std::unique_ptr<writer>{new writer(std::move(self))};
}

status writer::write(std::string key, std::string value) {
  auto& s = *self_;
  if (!s.exactly_once || s.live) {
    if (auto st = s.produce(key, value); !st.ok()) return st;
  }
  if (s.exactly_once) {
    if (!s.live && s.current.keys.size() >= max_waiting_records)
      return {errc::io_error,
              "Kafka sink '" + s.options.topic +
                  "': " + std::to_string(max_waiting_records) +
                  " records wait for checkpoint " + std::to_string(s.txn_max) +
                  " to complete; checkpoints are failing or too slow"};
    s.current.keys.push_back(std::move(key));
    s.current.values.push_back(std::move(value));
  }
  return {};
}

status writer::snapshot(std::int64_t id, std::string& state) {
  auto& s = *self_;
  s.last_id = std::max(s.last_id, id);
  if (!s.exactly_once) return s.flush();
  s.current.id = id;
  s.state.staged.push_back(std::move(s.current));
  s.current = {};
  if (s.live) {
    // Pre-commit: the open transaction now holds exactly checkpoint `id`.
    if (auto st = s.flush(); !st.ok()) return st;
    s.txn_max = id;
    s.live = false;
  }
  state = checkpoint::encode_all(s.state);
  return {};
}

status writer::commit(std::int64_t id) {
  auto& s = *self_;
  if (!s.exactly_once) return {};
  return s.settle(id);
}

status writer::restore(std::int64_t checkpoint_id, const std::string* state) {
  auto& s = *self_;
  s.last_id = checkpoint_id;
  if (!s.exactly_once) {
    // At least once keeps no state: a state comes from an exactly-once run.
    if (state && !state->empty()) return s.take_over(checkpoint_id, *state);
    return {};
  }
  // Fences every older producer of this transactional id and aborts the
  // transaction it left open.
  if (auto* e =
          rd_kafka_init_transactions(s.producer.get(), transaction_timeout_ms))
    return s.failed("cannot initialize transactions", e);
  // An empty state: a fresh start, or a checkpoint of an at-least-once run.
  if (state && !state->empty()) {
    if (auto st = checkpoint::decode_all(*state, s.state); !st.ok())
      return {st.code(), "Kafka sink state: " + st.message()};
    if (s.state.transactional_id != s.transactional_id)
      return {errc::invalid_config,
              "Kafka sink '" + s.options.topic + "': checkpoint " +
                  std::to_string(checkpoint_id) +
                  " was written with transactional id '" +
                  s.state.transactional_id + "', this run uses '" +
                  s.transactional_id +
                  "': keep the job name, the sink's name and the "
                  "transactional id prefix when restoring (the old id's "
                  "open transaction and commit markers are found by it)"};
    if (auto st = s.drop_committed(s.state); !st.ok()) return st;
    // What is staged in a restored checkpoint belongs to a completed one:
    // commit it under the restored run's marker...
    if (auto st = s.settle(checkpoint_id); !st.ok()) return st;
    // ...then go on under a new one: the checkpoints of this run may reuse
    // ids of a later timeline of the old run (a savepoint restored twice),
    // whose markers must not hide this run's commits.
    s.state.run_token = new_run_token();
    return {};
  }
  s.state.transactional_id = s.transactional_id;
  s.state.run_token = new_run_token();
  s.state.staged.clear();
  return s.settle(checkpoint_id);
}

status writer::finish() {
  auto& s = *self_;
  if (!s.exactly_once) return s.flush();
  std::string ignored;
  auto id = s.last_id + 1;
  if (auto st = snapshot(id, ignored); !st.ok()) return st;
  return commit(id);
}

}  // namespace stream::kafka::detail
