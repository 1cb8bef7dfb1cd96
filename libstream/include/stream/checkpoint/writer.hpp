#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace stream::checkpoint {

/// Runs the deferred phase of snapshots (scans, file writes, fsyncs) on its
/// own threads, so that tasks go on processing meanwhile. Jobs run in
/// submission order per thread; the destructor finishes every queued job.
class background_writer {
 public:
  explicit background_writer(std::size_t threads = 1);
  ~background_writer();
  background_writer(const background_writer&) = delete;
  background_writer& operator=(const background_writer&) = delete;

  /// Queues `job`; it must not throw.
  void submit(std::function<void()> job);

 private:
  void run();

  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace stream::checkpoint
