#include "stream/checkpoint/writer.hpp"

#include <algorithm>

namespace stream::checkpoint {

background_writer::background_writer(std::size_t threads) {
  for (std::size_t i = 0; i < std::max<std::size_t>(threads, 1); ++i)
    threads_.emplace_back([this] { run(); });
}

background_writer::~background_writer() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void background_writer::submit(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void background_writer::run() {
  std::unique_lock<std::mutex> lock{mtx_};
  for (;;) {
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and every job done
    auto job = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    job();
    lock.lock();
  }
}

}  // namespace stream::checkpoint
