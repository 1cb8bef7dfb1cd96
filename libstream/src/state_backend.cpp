#include <filesystem>

#include "stream/state/tables.hpp"

namespace stream::state {

result<std::unique_ptr<keyed_backend>> keyed_backend::open(
    const job_options& options, const std::string& instance) {
  std::unique_ptr<keyed_backend> b{new keyed_backend()};
  b->max_parallelism_ = options.max_parallelism;
  b->cache_entries_ = options.state_cache_entries;
  if (options.state_backend == "memory") return b;
  if (options.state_backend != "leveldb")
    return status{errc::invalid_config,
                  "unknown state backend '" + options.state_backend + "'"};
  auto path =
      std::filesystem::path{options.state_dir} / options.job_name / instance;
  auto store = open_leveldb(path.string());
  if (!store.ok()) return store.error();
  b->store_ = std::move(*store);
  return b;
}

keyed_backend::~keyed_backend() = default;

std::uint16_t keyed_backend::register_state(const std::string& name) {
  for (const auto& n : names_) {
    if (n == name)
      throw state_error{"keyed state '" + name + "' is declared twice"};
  }
  if (names_.size() >= 0xffff)
    throw state_error{"too many keyed states in one operator"};
  names_.push_back(name);
  return static_cast<std::uint16_t>(names_.size() - 1);
}

}  // namespace stream::state
