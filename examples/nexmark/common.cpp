#include "common.hpp"

#include <charconv>
#include <chrono>
#include <cmath>
#include <stdexcept>

namespace nexmark_queries {

namespace nx = stream::nexmark;

std::vector<stream::app_option> options(std::vector<stream::app_option> extra) {
  std::vector<stream::app_option> all = {
      {"input", "Nexmark JSON-lines file to read (default: the generator)", ""},
      {"events", "events to generate, 0 = unbounded", "1000000",
       stream::option_kind::unsigned_integer},
      {"seed", "generator seed (0: the standard stream)", "0",
       stream::option_kind::unsigned_integer},
      {"event-rate", "generated events per second of event time", "10000",
       stream::option_kind::number, 1},
      {"bad-records", "on a line that does not parse: skip or fail", "skip"},
      {"output", "file for JSON-lines results (default: count and drop)", ""},
  };
  for (auto& o : extra) all.push_back(std::move(o));
  return all;
}

nx::generator_config generator_settings(const stream::environment& env) {
  nx::generator_config config;
  config.seed = env.arg_u64("seed");
  config.events_per_second = env.arg_double("event-rate");
  if (!(config.events_per_second > 0))
    throw std::invalid_argument{"--event-rate must be positive, not '" +
                                env.arg("event-rate") + "'"};
  if (auto st = config.validate(); !st.ok())
    throw std::invalid_argument{"--event-rate/--seed: " + st.message()};
  return config;
}

namespace {

stream::bad_records bad_records_policy(const stream::environment& env) {
  const auto& value = env.arg("bad-records");
  if (value == "skip") return stream::bad_records::skip;
  if (value == "fail") return stream::bad_records::fail;
  throw std::invalid_argument{"--bad-records must be 'skip' or 'fail', not '" +
                              value + "'"};
}

stream::data_stream<nx::event> raw_events(stream::environment& env,
                                          stream::bad_records policy,
                                          const nx::generator_config& config) {
  if (env.has_arg("input"))
    return env
        .read_text_file<nx::event>(env.arg("input"), nx::parse_json, policy)
        .name("nexmark_file");
  const auto count = env.arg_u64("events");
  stream::generator_options gen;
  gen.count = count == 0 ? UINT64_MAX : count;
  return env
      .from_generator(
          [config](std::uint64_t i) { return nx::make_event(config, i); }, gen)
      .name("nexmark_generator");
}

}  // namespace

stream::data_stream<nx::event> events(stream::environment& env) {
  // Validate every option, even those the chosen source does not read, so a
  // typo fails the same way with and without --input.
  const auto policy = bad_records_policy(env);
  const auto config = generator_settings(env);
  using strategy = stream::watermark_strategy<nx::event>;
  return raw_events(env, policy, config)
      .assign_timestamps_and_watermarks(
          strategy::for_bounded_out_of_orderness(std::chrono::seconds{4})
              .with_timestamp_assigner(
                  [](const nx::event& e) { return e.timestamp(); }))
      .name("timestamps");
}

// -- json_object ----------------------------------------------------------

void append_json_string(std::string_view value, std::string& out) {
  static constexpr char hex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t plain = 0;  // start of the run of bytes copied as they are
  for (std::size_t i = 0; i < value.size(); ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(value.substr(plain, i - plain));
    plain = i + 1;
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        out.append("\\u00");
        out.push_back(hex[c >> 4]);
        out.push_back(hex[c & 0xF]);
    }
  }
  out.append(value.substr(plain));
  out.push_back('"');
}

void json_object::add_key(std::string_view key) {
  text_.push_back(text_.empty() ? '{' : ',');
  text_.push_back('"');
  text_.append(key);
  text_.append("\":");
}

json_object& json_object::add_int(std::string_view key, std::int64_t value) {
  add_key(key);
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  text_.append(buf, end);
  return *this;
}

json_object& json_object::add_double(std::string_view key, double value) {
  add_key(key);
  if (!std::isfinite(value)) {
    text_.append("null");
    return *this;
  }
  // The shortest form that reads back as the same double.
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  text_.append(buf, end);
  return *this;
}

json_object& json_object::add_string(std::string_view key,
                                     std::string_view value) {
  add_key(key);
  append_json_string(value, text_);
  return *this;
}

std::string json_object::take() {
  if (text_.empty()) text_.push_back('{');
  text_.push_back('}');
  std::string out = std::move(text_);
  text_.clear();
  return out;
}

}  // namespace nexmark_queries
