#include "worker.hpp"

#include <caf/io/all.hpp>
#include <caf/openssl/all.hpp>
#include <charconv>
#include <cstdio>

#include "task_actor.hpp"

namespace stream::actors {

namespace {

constexpr std::chrono::milliseconds max_backoff{2000};
constexpr std::chrono::seconds register_timeout{10};

}  // namespace

bool split_host_port(const std::string& text, std::string& host,
                     std::uint16_t& port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    return false;
  unsigned value = 0;
  const char* first = text.data() + colon + 1;
  const char* last = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(first, last, value);
  if (ec != std::errc{} || ptr != last || value > 65535) return false;
  host = text.substr(0, colon);
  port = static_cast<std::uint16_t>(value);
  return true;
}

worker::worker(caf::actor_config& cfg, worker_config config)
    : caf::event_based_actor(cfg),
      config_(std::move(config)),
      storage_(std::make_shared<checkpoint::storage>(
          config_.options.checkpoint_dir, config_.options.savepoint_dir,
          config_.options.job_name)),
      writer_(std::make_shared<checkpoint::background_writer>(1)),
      coordinator_(config_.coordinator) {}

caf::behavior worker::make_behavior() {
  set_down_handler([this](caf::down_msg& down) {
    if (coordinator_ && down.source == coordinator_.address()) {
      on_coordinator_lost(caf::to_string(down.reason));
      return;
    }
    for (auto it = peers_.begin(); it != peers_.end(); ++it) {
      if (it->second.address() == down.source) {
        peers_.erase(it);
        return;
      }
    }
    std::erase_if(tasks_, [&](const caf::actor& t) {
      return t.address() == down.source;
    });
    if (tasks_.empty() && !pending_.empty()) {
      auto waiting = std::move(pending_);
      pending_.clear();
      for (auto& d : waiting)
        d.promise.deliver(deploy(d.attempt, d.restore_folder, d.chains,
                                 d.subtasks, d.peers, d.plan));
    }
  });
  return {
      [this](connect_atom) { try_connect(); },
      [this](connect_atom, std::string& address) {
        // From the process, once the data port is published.
        config_.address = std::move(address);
        try_connect();
      },
      [this](shutdown_atom) {
        std::fprintf(stderr, "stream: worker %s: the job ended\n",
                     config_.options.worker_id.c_str());
        stopping_ = true;
        kill_tasks();
        quit();
      },
      [this](deploy_atom, std::uint32_t attempt, std::string& restore_folder,
             std::vector<std::uint32_t>& chains,
             std::vector<std::uint32_t>& subtasks,
             std::vector<std::string>& peers,
             std::vector<std::uint32_t>& tables)
          -> caf::result<std::vector<caf::actor>> {
        // Only from the coordinator this worker is registered with: a
        // deploy of a coordinator it lost meanwhile would start tasks that
        // report to nobody.
        auto runner = coordinator_ ? coordinator_ : config_.coordinator;
        if (!runner || current_sender() == nullptr ||
            current_sender()->address() != runner.address())
          return caf::make_error(caf::sec::unexpected_message);
        auto plan = shipped_plan(tables);
        if (!plan) return plan.error();
        if (tasks_.empty())
          return deploy(attempt, restore_folder, chains, subtasks, peers,
                        *plan);
        // Tasks of an earlier attempt (of a coordinator that went away,
        // say) must be gone before new ones open the same files.
        kill_tasks();
        pending_deploy d;
        d.promise = make_response_promise<std::vector<caf::actor>>();
        d.attempt = attempt;
        d.restore_folder = std::move(restore_folder);
        d.chains = std::move(chains);
        d.subtasks = std::move(subtasks);
        d.peers = std::move(peers);
        d.plan = *plan;
        pending_.push_back(std::move(d));
        return pending_.back().promise;
      },
      [this](stop_atom) {
        stopping_ = true;
        if (!coordinator_ || !registered_ || config_.coordinator) {
          kill_tasks();
          quit();
          return;
        }
        // Goodbye first, so that the coordinator takes the departure for
        // what it is; then go, whether it answered or not.
        request(coordinator_, std::chrono::seconds{2}, goodbye_atom::value,
                config_.options.worker_id)
            .then(
                [this] {
                  kill_tasks();
                  quit();
                },
                [this](caf::error&) {
                  kill_tasks();
                  quit();
                });
      },
  };
}

void worker::on_exit() {
  // Tasks must not outlive their worker (the actor system waits for them).
  kill_tasks();
  tasks_.clear();
  peers_.clear();
  coordinator_ = nullptr;
  // Handles both ways (coordinator <-> worker) would keep both alive.
  config_.coordinator = nullptr;
  pending_.clear();
  if (config_.runner) anon_send(config_.runner, result_atom::value);
  config_.runner = nullptr;
}

caf::expected<caf::actor> worker::connect_to(const std::string& host,
                                             std::uint16_t port) {
  if (!config_.options.tls_cert.empty())
    return caf::openssl::remote_actor(system(), host, port);
  return system().middleman().remote_actor(host, port);
}

void worker::try_connect() {
  if (stopping_ || coordinator_) return;
  const auto& target = config_.options.coordinator;
  std::string host;
  std::uint16_t port = 0;
  split_host_port(target, host, port);  // validated with the options
  auto handle = connect_to(host, port);
  if (!handle) {
    // Quiet retries: the first failure and then every tenth are printed.
    if (connect_failures_++ % 10 == 0)
      std::fprintf(stderr,
                   "stream: worker %s: cannot connect to the coordinator at "
                   "%s: %s; retrying\n",
                   config_.options.worker_id.c_str(), target.c_str(),
                   system().render(handle.error()).c_str());
    delayed_send(this, backoff_, connect_atom::value);
    backoff_ = std::min(backoff_ * 2, max_backoff);
    return;
  }
  coordinator_ = *handle;
  monitor(coordinator_);
  request(coordinator_, register_timeout, register_atom::value,
          config_.options.worker_id, config_.address, config_.options.slots,
          protocol_signature(), config_.definition)
      .then(
          [this, target](const std::string& refusal) {
            if (!refusal.empty()) {
              std::fprintf(stderr,
                           "stream: worker %s: the coordinator at %s refused "
                           "this worker: %s\n",
                           config_.options.worker_id.c_str(), target.c_str(),
                           refusal.c_str());
              if (config_.runner)
                send(config_.runner, failed_atom::value, std::uint32_t{0},
                     refusal);
              stopping_ = true;
              quit();
              return;
            }
            registered_ = true;
            connect_failures_ = 0;
            backoff_ = std::chrono::milliseconds{100};
            std::fprintf(stderr,
                         "stream: worker %s: registered with the coordinator "
                         "at %s, %u slots\n",
                         config_.options.worker_id.c_str(), target.c_str(),
                         config_.options.slots);
          },
          [this](caf::error& err) {
            on_coordinator_lost("registration failed: " + system().render(err));
          });
}

void worker::on_coordinator_lost(const std::string& why) {
  if (!coordinator_) return;
  std::fprintf(stderr,
               "stream: worker %s: lost the coordinator (%s); stopping %zu "
               "tasks and connecting again\n",
               config_.options.worker_id.c_str(), why.c_str(), tasks_.size());
  demonitor(coordinator_);
  coordinator_ = nullptr;
  registered_ = false;
  pending_.clear();
  kill_tasks();
  if (!stopping_) delayed_send(this, backoff_, connect_atom::value);
}

void worker::kill_tasks() {
  for (auto& t : tasks_) send_exit(t, caf::exit_reason::kill);
}

void worker::connect_peers(const std::vector<std::string>& peers) {
  for (const auto& peer : peers) {
    // One connection per pair of workers, opened by the one with the
    // smaller address: two connections between the same nodes at once
    // broke both under TLS.
    if (peer <= config_.address || peers_.count(peer) != 0) continue;
    std::string host;
    std::uint16_t port = 0;
    if (!split_host_port(peer, host, port)) continue;
    auto handle = connect_to(host, port);
    if (!handle) {
      // Data to it is routed through the coordinator's node instead.
      std::fprintf(stderr,
                   "stream: worker %s: cannot connect to worker %s: %s\n",
                   config_.options.worker_id.c_str(), peer.c_str(),
                   system().render(handle.error()).c_str());
      continue;
    }
    monitor(*handle);
    peers_.emplace(peer, *handle);
  }
}

std::shared_ptr<const checkpoint::restore_point> worker::restore_point_of(
    const std::string& folder) {
  if (folder.empty()) return nullptr;
  if (restore_ && restore_->folder == folder) return restore_;
  auto meta = checkpoint::read_metadata(folder);
  if (!meta) return nullptr;
  restore_ = std::make_shared<checkpoint::restore_point>(
      checkpoint::restore_point{folder, std::move(*meta)});
  return restore_;
}

caf::expected<const execution_plan*> worker::shipped_plan(
    const std::vector<std::uint32_t>& tables) {
  if (!plans_.empty() && tables == plan_tables_) return plans_.back().get();
  auto plan = config_.plan->with_encoded_tables(tables);
  if (!plan) {
    return caf::make_error(
        caf::sec::invalid_argument,
        "worker " + config_.options.worker_id +
            " cannot run the coordinator's plan: " + plan.error().message());
  }
  plans_.push_back(std::make_unique<const execution_plan>(std::move(*plan)));
  plan_tables_ = tables;
  return plans_.back().get();
}

std::vector<caf::actor> worker::deploy(
    std::uint32_t attempt, const std::string& restore_folder,
    const std::vector<std::uint32_t>& chains,
    const std::vector<std::uint32_t>& subtasks,
    const std::vector<std::string>& peers, const execution_plan* plan) {
  connect_peers(peers);
  auto restore = restore_point_of(restore_folder);
  auto runner = coordinator_ ? coordinator_ : config_.coordinator;
  std::vector<caf::actor> out;
  for (std::size_t i = 0; i < chains.size() && i < subtasks.size(); ++i) {
    task_actor_config cfg;
    cfg.graph = config_.graph;
    cfg.plan = plan;
    cfg.registry = config_.registry;
    cfg.options = config_.options;
    cfg.chain = chains[i];
    cfg.subtask = subtasks[i];
    cfg.attempt = attempt;
    cfg.runner = runner;
    cfg.storage = storage_;
    cfg.writer = writer_;
    cfg.restore = restore;
    // A restore folder that cannot be read makes the task fail on start
    // with the reason (the coordinator verified it a moment ago).
    cfg.restore_folder = restore_folder;
    auto a = spawn<task_actor>(std::move(cfg));
    monitor(a);
    tasks_.push_back(a);
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace stream::actors
