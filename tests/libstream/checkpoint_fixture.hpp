#pragma once

// Helpers shared by the checkpoint unit tests: a temporary directory, the
// key groups of a max parallelism of 128, and a snapshot turned into the
// state a restore receives.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "stream/checkpoint/snapshot.hpp"
#include "stream/key_groups.hpp"

namespace stream::testing {

/// A fresh directory, removed with everything in it at the end.
class temp_dir {
 public:
  temp_dir() {
    std::string tmpl = "/tmp/stream-ckpt-state-XXXXXX";
    EXPECT_NE(mkdtemp(tmpl.data()), nullptr);
    path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::string& path() const noexcept { return path_; }
  /// Creates `<path>/<name>` and returns it.
  std::string sub(const std::string& name) const {
    auto p = path_ + "/" + name;
    std::filesystem::create_directories(p);
    return p;
  }

 private:
  std::string path_;
};

/// The max parallelism of every test, and all of its key groups.
inline constexpr std::uint32_t max_p = 128;
inline constexpr key_group_range all_groups{0, max_p};

/// The key group of `key` at `max_p`.
template <class K>
key_group group_of(const K& key) {
  return assign_key_group(hash_key(key), max_p);
}

/// What a restore receives from checkpoint `id` holding only `snap`.
inline checkpoint::restored_state restored_from(
    checkpoint::operator_snapshot snap, std::int64_t id) {
  checkpoint::restored_state in;
  in.checkpoint_id = id;
  in.operator_id = snap.operator_id;
  in.operator_state = snap.operator_state;
  in.has_operator_state = true;
  in.parts.push_back(std::move(snap));
  return in;
}

}  // namespace stream::testing
