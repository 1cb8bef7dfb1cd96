#include "stream/environment.hpp"

#include <cassert>
#include <chrono>
#include <cstdlib>

namespace stream {

environment::environment(job_options options)
    : options_(std::move(options)), graph_(std::make_unique<job_graph>()) {}

data_stream<std::string> environment::read_text_file(std::string path) {
  job_graph::node n;
  n.name = "text_file";
  n.kind = job_graph::node_kind::source;
  n.max_parallelism = 1;
  n.out_type = type_ops_for<std::string>();
  n.make_stage = [path](const runtime::stage_context& ctx,
                        runtime::stage_object* next) {
    return std::unique_ptr<runtime::stage_object>{
        new detail::text_file_source(ctx, next, path)};
  };
  return data_stream<std::string>{graph_.get(), graph_->add_node(std::move(n))};
}

const std::string& environment::arg(const std::string& name) const {
  auto it = args_.find(name);
  assert(it != args_.end() && "unknown application option");
  return it->second;
}

bool environment::has_arg(const std::string& name) const {
  auto it = args_.find(name);
  return it != args_.end() && !it->second.empty();
}

std::uint64_t environment::arg_u64(const std::string& name) const {
  return std::strtoull(arg(name).c_str(), nullptr, 10);
}

double environment::arg_double(const std::string& name) const {
  return std::strtod(arg(name).c_str(), nullptr);
}

namespace {

// One value per line: newlines and backslashes are escaped.
std::string escaped(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::map<std::string, std::string> definition_lines(const std::string& text) {
  std::map<std::string, std::string> out;
  std::size_t at = 0;
  while (at < text.size()) {
    auto end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    auto line = text.substr(at, end - at);
    auto eq = line.find('=');
    if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
    at = end + 1;
  }
  return out;
}

std::string shortened(const std::string& value) {
  constexpr std::size_t limit = 60;
  if (value.empty()) return "(none)";
  return value.size() <= limit ? value : value.substr(0, limit) + "...";
}

/// `--parallelism-of` as one value: "a=2,b=3", by name.
std::string parallelism_overrides(const job_options& o) {
  std::string out;
  for (const auto& [name, p] : o.operator_parallelism) {
    if (!out.empty()) out += ',';
    out += name + "=" + std::to_string(p);
  }
  return out;
}

}  // namespace

std::string environment::definition() const {
  const auto& o = options_;
  std::vector<std::pair<std::string, std::string>> lines{
      {"topology", graph_->fingerprint()},
      {"job-name", o.job_name},
      {"parallelism", std::to_string(o.parallelism)},
      {"parallelism-of", parallelism_overrides(o)},
      {"max-parallelism", std::to_string(o.max_parallelism)},
      {"no-chaining", chaining_ ? "false" : "true"},
      {"channel-credits", std::to_string(o.channel_credits)},
      {"checkpoint-dir", o.checkpoint_dir},
      {"savepoint-dir", o.savepoint_dir},
  };
  for (const auto& [name, value] : args_) lines.emplace_back(name, value);
  std::string out;
  for (const auto& [name, value] : lines)
    out += name + "=" + escaped(value) + "\n";
  return out;
}

std::vector<definition_difference> definition_differences(
    const std::string& mine, const std::string& theirs) {
  auto a = definition_lines(mine);
  auto b = definition_lines(theirs);
  std::vector<definition_difference> out;
  auto add = [&](const std::string& name, const std::string& x,
                 const std::string& y) {
    out.push_back({name == "topology" ? name : "--" + name, x, y});
  };
  for (const auto& [name, value] : a) {
    auto it = b.find(name);
    if (it == b.end())
      add(name, shortened(value), "(absent)");
    else if (it->second != value)
      add(name, shortened(value), shortened(it->second));
  }
  for (const auto& [name, value] : b) {
    if (a.find(name) == a.end()) add(name, "(absent)", shortened(value));
  }
  return out;
}

void environment::set_arg(std::string name, std::string value) {
  args_[std::move(name)] = std::move(value);
}

}  // namespace stream
