#include "stream/environment.hpp"

#include <cassert>
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

void environment::set_arg(std::string name, std::string value) {
  args_[std::move(name)] = std::move(value);
}

}  // namespace stream
