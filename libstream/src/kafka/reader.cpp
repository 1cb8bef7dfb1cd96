// The Kafka source's consumer: manual assignment, positions kept here (and
// in checkpoints), dead letters through a producer of its own.

#include <algorithm>
#include <cstdio>
#include <stdexcept>

#include "kafka/client.hpp"
#include "stream/detail/kafka_io.hpp"
#include "stream/metrics.hpp"
#include "stream/runtime/stage.hpp"

namespace stream::kafka::detail {

struct reader::impl {
  source_options options;
  std::string group;
  client consumer;
  client dead_letters;  ///< Null unless the policy is dead_letter.
  rd_kafka_queue_t* queue = nullptr;
  std::vector<std::int32_t> partitions;
  std::vector<std::int64_t> next;  ///< Per partition index.
  std::vector<std::int64_t> stop;  ///< -1: unbounded.
  std::vector<bool> done;
  /// Reached the end of the partition and got nothing since.
  std::vector<bool> at_end;
  std::vector<std::size_t> index_of;  ///< Partition id -> index.
  /// The messages of the last poll: the views handed out point into them.
  std::vector<rd_kafka_message_t*> fetched;
  std::vector<gauge*> lag;
  counter* dead_letter_count = nullptr;
  std::string delivery_error;  ///< First failed dead letter.
  std::uint64_t errors_reported = 0;

  ~impl() {
    release();
    if (queue) rd_kafka_queue_destroy(queue);
    if (consumer) rd_kafka_consumer_close(consumer.get());
  }

  void release() {
    for (auto* m : fetched) rd_kafka_message_destroy(m);
    fetched.clear();
  }

  status assign() {
    partition_list list{
        rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size()))};
    for (std::size_t i = 0; i < partitions.size(); ++i) {
      if (stop[i] >= 0 && next[i] >= stop[i]) done[i] = true;
      if (done[i]) continue;
      rd_kafka_topic_partition_list_add(list.get(), options.topic.c_str(),
                                        partitions[i])
          ->offset = next[i];
    }
    auto err = rd_kafka_assign(consumer.get(), list.get());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      return {errc::io_error, std::string{"Kafka source: cannot assign "
                                          "partitions: "} +
                                  rd_kafka_err2str(err)};
    return {};
  }

  void mark_done(std::size_t i) {
    if (done[i]) return;
    done[i] = true;
    partition_list list{rd_kafka_topic_partition_list_new(1)};
    rd_kafka_topic_partition_list_add(list.get(), options.topic.c_str(),
                                      partitions[i]);
    rd_kafka_pause_partitions(consumer.get(), list.get());
  }

  /// Consumer errors: fatal ones fail the task, the rest (librdkafka
  /// retries them) are reported.
  void on_error(const rd_kafka_message_t* m) {
    auto err = m->err;
    if (err == RD_KAFKA_RESP_ERR__FATAL ||
        err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
        err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
        err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
        err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE ||
        err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET)
      throw std::runtime_error(
          "Kafka source '" + options.topic + "' partition " +
          std::to_string(m->partition) + ": " + rd_kafka_message_errstr(m) +
          (err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET
               ? " (the position is no longer in the log: deleted by "
                 "retention? restart from an earlier offset with --start)"
               : ""));
    if (errors_reported++ < 100)
      std::fprintf(stderr, "stream: Kafka source '%s': %s (retrying)\n",
                   options.topic.c_str(), rd_kafka_message_errstr(m));
  }

  result<std::int64_t> start_offset(std::int32_t partition, std::int64_t low,
                                    std::int64_t high);
};

namespace {

void on_dead_letter(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* error = static_cast<std::string*>(opaque);
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && error->empty())
    *error = rd_kafka_err2str(m->err);
}

}  // namespace

reader::reader(std::unique_ptr<impl> self) : self_(std::move(self)) {}
reader::~reader() = default;

std::size_t queued_min_messages(std::size_t prefetch,
                                std::size_t partitions) noexcept {
  // librdkafka accepts 1 .. 10,000,000.
  constexpr std::size_t most = 10'000'000;
  auto share = prefetch / std::max<std::size_t>(partitions, 1);
  return std::clamp<std::size_t>(share, 1, most);
}

result<std::unique_ptr<reader>> reader::open(
    const source_options& options, const runtime::stage_context& ctx) {
  auto self = std::make_unique<impl>();
  self->options = options;
  self->group = options.group_id.empty()
                    ? ctx.job_name + "-" + ctx.operator_name
                    : options.group_id;
  std::map<std::string, std::string> settings{
      {"bootstrap.servers", options.brokers},
      {"client.id", client_id(ctx)},
      {"group.id", self->group},
      {"enable.auto.commit", "false"},
      {"enable.auto.offset.store", "false"},
      {"enable.partition.eof", "true"},
      {"isolation.level", "read_committed"},
      // Positions come from checkpoints or the start option: an offset
      // that no longer exists (deleted by retention) is an error, never a
      // silent jump that loses or repeats data.
      {"auto.offset.reset", "error"},
      {"allow.auto.create.topics", "false"}};
  for (const auto& [k, v] : options.properties) settings[k] = v;
  // The prefetch is split over this subtask's partitions, so their count
  // comes first, from a short-lived client outside the group.
  auto probe_settings = settings;
  probe_settings.erase("group.id");
  auto probe = make_client(RD_KAFKA_CONSUMER, probe_settings);
  if (!probe) return probe.error();
  auto count = partition_count(probe->get(), options.brokers, options.topic);
  if (!count) return count.error();
  probe->reset();
  self->index_of.assign(static_cast<std::size_t>(*count), SIZE_MAX);
  for (int p = 0; p < *count; ++p) {
    if (static_cast<std::uint32_t>(p) % ctx.parallelism != ctx.subtask)
      continue;
    self->index_of[static_cast<std::size_t>(p)] = self->partitions.size();
    self->partitions.push_back(p);
  }
  auto n = self->partitions.size();
  if (!options.properties.contains("queued.min.messages"))
    settings["queued.min.messages"] =
        std::to_string(queued_min_messages(options.prefetch, n));
  auto consumer = make_client(RD_KAFKA_CONSUMER, settings);
  if (!consumer) return consumer.error();
  self->consumer = std::move(*consumer);
  self->next.assign(n, 0);
  self->stop.assign(n, -1);
  self->done.assign(n, false);
  self->at_end.assign(n, false);
  for (auto p : self->partitions) {
    self->lag.push_back(&ctx.metrics->get_gauge(
        "stream_kafka_consumer_lag_records",
        "Messages in the partition after the source's position (from the "
        "last fetch).",
        {{"job", ctx.job_name},
         {"operator", ctx.operator_name},
         {"subtask", std::to_string(ctx.subtask)},
         {"topic", options.topic},
         {"partition", std::to_string(p)}}));
  }
  self->dead_letter_count = &ctx.metrics->get_counter(
      "stream_kafka_dead_letters_total",
      "Messages the source could not deserialize and wrote to its "
      "dead-letter topic.",
      {{"job", ctx.job_name},
       {"operator", ctx.operator_name},
       {"subtask", std::to_string(ctx.subtask)}});
  if (options.bad_records == bad_record_policy::dead_letter) {
    auto* error = &self->delivery_error;
    auto producer =
        make_client(RD_KAFKA_PRODUCER,
                    {{"bootstrap.servers", options.brokers},
                     {"client.id", client_id(ctx) + "-dead-letters"},
                     {"enable.idempotence", "true"},
                     {"linger.ms", "5"}},
                    [error](rd_kafka_conf_t* conf) {
                      rd_kafka_conf_set_dr_msg_cb(conf, on_dead_letter);
                      rd_kafka_conf_set_opaque(conf, error);
                    });
    if (!producer) return producer.error();
    self->dead_letters = std::move(*producer);
  }
  // Broker-level errors (all brokers down, authentication) arrive on the
  // consumer queue too, and are reported by poll().
  rd_kafka_poll_set_consumer(self->consumer.get());
  self->queue = rd_kafka_queue_get_consumer(self->consumer.get());
  return std::unique_ptr<reader>{new reader(std::move(self))};
}

const std::vector<std::int32_t>& reader::partitions() const noexcept {
  return self_->partitions;
}

result<std::int64_t> reader::impl::start_offset(std::int32_t partition,
                                                std::int64_t low,
                                                std::int64_t high) {
  partition_list list{rd_kafka_topic_partition_list_new(1)};
  auto* tp = rd_kafka_topic_partition_list_add(
      list.get(), options.topic.c_str(), partition);
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  switch (options.start) {
    case start_from::earliest:
      return low;
    case start_from::latest:
      return high;
    case start_from::committed:
      err = rd_kafka_committed(consumer.get(), list.get(), broker_timeout_ms);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = tp->err;
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return tp->offset >= 0 ? std::max(tp->offset, low) : low;
      break;
    case start_from::timestamp:
      tp->offset = options.start_timestamp_ms;
      err = rd_kafka_offsets_for_times(consumer.get(), list.get(),
                                       broker_timeout_ms);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) err = tp->err;
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return tp->offset >= 0 ? tp->offset : high;
      break;
  }
  return status{errc::io_error, "Kafka source: cannot find the " +
                                    std::string{to_string(options.start)} +
                                    " offset of partition " +
                                    std::to_string(partition) + ": " +
                                    rd_kafka_err2str(err)};
}

status reader::start() {
  auto& s = *self_;
  for (std::size_t i = 0; i < s.partitions.size(); ++i) {
    std::int64_t low = 0;
    std::int64_t high = 0;
    auto err = rd_kafka_query_watermark_offsets(
        s.consumer.get(), s.options.topic.c_str(), s.partitions[i], &low, &high,
        broker_timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
      return {errc::io_error, "Kafka source: cannot read the offsets of " +
                                  s.options.topic + " partition " +
                                  std::to_string(s.partitions[i]) + ": " +
                                  rd_kafka_err2str(err)};
    auto offset = s.start_offset(s.partitions[i], low, high);
    if (!offset) return offset.error();
    s.next[i] = *offset;
    s.stop[i] = s.options.bounded ? high : -1;
  }
  return s.assign();
}

status reader::restore(const std::vector<partition_position>& positions) {
  auto& s = *self_;
  bool same = positions.size() == s.partitions.size();
  for (std::size_t i = 0; same && i < positions.size(); ++i)
    same = positions[i].partition == s.partitions[i];
  if (!same)
    return {errc::malformed_data,
            "the checkpoint's Kafka positions name other partitions than "
            "this subtask reads (the job ran with another parallelism, or "
            "the topic's partition count changed)"};
  for (std::size_t i = 0; i < positions.size(); ++i) {
    s.next[i] = positions[i].next_offset;
    s.stop[i] = positions[i].stop_offset;
  }
  return s.assign();
}

std::vector<partition_position> reader::positions() const {
  const auto& s = *self_;
  std::vector<partition_position> out;
  out.reserve(s.partitions.size());
  for (std::size_t i = 0; i < s.partitions.size(); ++i)
    out.push_back({s.partitions[i], s.next[i], s.stop[i]});
  return out;
}

void reader::poll(std::size_t max, std::vector<polled>& out) {
  auto& s = *self_;
  out.clear();
  s.release();
  if (s.dead_letters) rd_kafka_poll(s.dead_letters.get(), 0);
  if (max == 0 || s.partitions.empty()) return;
  s.fetched.resize(max);
  auto got = rd_kafka_consume_batch_queue(s.queue, 0, s.fetched.data(), max);
  s.fetched.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
  for (auto* m : s.fetched) {
    auto p = static_cast<std::size_t>(m->partition);
    auto i = p < s.index_of.size() ? s.index_of[p] : SIZE_MAX;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (i != SIZE_MAX) {
        s.at_end[i] = true;
        if (s.stop[i] >= 0 && m->offset >= s.stop[i]) s.mark_done(i);
      }
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      s.on_error(m);
      continue;
    }
    if (i == SIZE_MAX || s.done[i] || m->offset < s.next[i]) continue;
    if (s.stop[i] >= 0 && m->offset >= s.stop[i]) {
      s.mark_done(i);
      continue;
    }
    s.next[i] = m->offset + 1;
    s.at_end[i] = false;
    if (s.stop[i] >= 0 && s.next[i] >= s.stop[i]) s.mark_done(i);
    auto& handed = out.emplace_back();
    handed.index = i;
    handed.view.key = {static_cast<const char*>(m->key), m->key_len};
    handed.view.value = {static_cast<const char*>(m->payload), m->len};
    handed.view.partition = m->partition;
    handed.view.offset = m->offset;
    handed.view.timestamp_ms = rd_kafka_message_timestamp(m, nullptr);
  }
}

bool reader::at_end(std::size_t index) const noexcept {
  return self_->at_end[index] || self_->done[index];
}

std::size_t reader::topic_partitions() const noexcept {
  return self_->index_of.size();
}

bool reader::finished() const noexcept {
  const auto& s = *self_;
  if (!s.options.bounded) return false;
  return std::all_of(s.done.begin(), s.done.end(), [](bool d) { return d; });
}

status reader::dead_letter(const message& msg, std::string_view error) {
  auto& s = *self_;
  auto partition = std::to_string(msg.partition);
  auto offset = std::to_string(msg.offset);
  for (int attempt = 0;; ++attempt) {
    auto err = rd_kafka_producev(
        s.dead_letters.get(),
        RD_KAFKA_V_TOPIC(s.options.dead_letter_topic.c_str()),
        RD_KAFKA_V_KEY(const_cast<char*>(msg.key.data()), msg.key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(msg.value.data()), msg.value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADER("stream.error", error.data(),
                          static_cast<ssize_t>(error.size())),
        RD_KAFKA_V_HEADER("stream.topic", s.options.topic.data(),
                          static_cast<ssize_t>(s.options.topic.size())),
        RD_KAFKA_V_HEADER("stream.partition", partition.data(),
                          static_cast<ssize_t>(partition.size())),
        RD_KAFKA_V_HEADER("stream.offset", offset.data(),
                          static_cast<ssize_t>(offset.size())),
        RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
    // A full queue drains as the broker acknowledges: wait (bounded).
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || attempt >= 3000)
      return {errc::io_error, "cannot write to the dead-letter topic '" +
                                  s.options.dead_letter_topic +
                                  "': " + rd_kafka_err2str(err)};
    rd_kafka_poll(s.dead_letters.get(), 10);
  }
  s.dead_letter_count->add(1);
  return {};
}

status reader::flush_dead_letters() {
  auto& s = *self_;
  if (!s.dead_letters) return {};
  auto err = rd_kafka_flush(s.dead_letters.get(), 3 * broker_timeout_ms);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
    return {errc::io_error,
            "dead letters to '" + s.options.dead_letter_topic +
                "' not stored in time: " + rd_kafka_err2str(err)};
  if (!s.delivery_error.empty())
    return {errc::io_error, "a dead letter to '" + s.options.dead_letter_topic +
                                "' was not stored: " + s.delivery_error};
  return {};
}

void reader::commit_to_group(const std::vector<partition_position>& positions) {
  auto& s = *self_;
  if (positions.empty()) return;
  partition_list list{
      rd_kafka_topic_partition_list_new(static_cast<int>(positions.size()))};
  for (const auto& p : positions)
    rd_kafka_topic_partition_list_add(list.get(), s.options.topic.c_str(),
                                      p.partition)
        ->offset = p.next_offset;
  // Asynchronous and best effort: the checkpoint, not the group, is the
  // source of truth for positions.
  rd_kafka_commit(s.consumer.get(), list.get(), 1);
}

void reader::update_lag() {
  auto& s = *self_;
  for (std::size_t i = 0; i < s.partitions.size(); ++i) {
    std::int64_t low = -1;
    std::int64_t high = -1;
    if (rd_kafka_get_watermark_offsets(
            s.consumer.get(), s.options.topic.c_str(), s.partitions[i], &low,
            &high) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        high >= 0)
      s.lag[i]->set(std::max<std::int64_t>(0, high - s.next[i]));
  }
}

}  // namespace stream::kafka::detail
