// TLS between the processes: a job runs with certificates verified both
// ways, and strangers on the cluster port (garbage bytes, TLS clients
// without a certificate, a plaintext worker, certificates of a foreign CA or
// expired) are refused, each logged once with the reason, without touching
// the registered workers: no restart, no lost worker, exact output.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cluster_fixture.hpp"
#include "cluster_support.hpp"
#include "exactly_once_reference.hpp"
#include "process.hpp"
#include "scrape.hpp"

namespace stream {
namespace {

using namespace std::chrono_literals;
using stream::testing::child_process;
using stream::testing::cluster;
using stream::testing::count_of;

constexpr std::uint64_t sensors = 40;

class cluster_tls_test : public stream::testing::cluster_fixture {
 protected:
  void expect_exact_output(std::uint64_t readings) const {
    cluster_fixture::expect_exact_output(readings, sensors);
  }
};

/// A CA and certificates for TLS between the processes, made with the
/// openssl command line tool.
class tls_files {
 public:
  explicit tls_files(const std::string& dir) : dir_(dir) {
    make_ca("ca");
    make_ca("other-ca");
    make_cert("node", "ca");
    make_cert("stranger", "other-ca");
    make_cert("expired", "ca", "-1");
  }
  std::vector<std::string> flags(const std::string& cert,
                                 const std::string& ca = "ca") const {
    return {"--tls-cert", dir_ + "/" + cert + ".pem",
            "--tls-key",  dir_ + "/" + cert + ".key",
            "--tls-ca",   dir_ + "/" + ca + ".pem"};
  }

 private:
  void run(const std::vector<std::string>& argv) {
    std::string out, err;
    ASSERT_EQ(stream::testing::run_command(argv, &out, &err), 0) << err;
  }
  void make_ca(const std::string& name) {
    run({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-days", "2", "-subj", "/CN=" + name, "-keyout",
         dir_ + "/" + name + ".key", "-out", dir_ + "/" + name + ".pem"});
  }
  void make_cert(const std::string& name, const std::string& ca,
                 const std::string& days = "2") {
    auto base = dir_ + "/" + name;
    run({"/usr/bin/openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj",
         "/CN=localhost", "-keyout", base + ".key", "-out", base + ".csr"});
    run({"/usr/bin/openssl", "x509", "-req", "-in", base + ".csr", "-CA",
         dir_ + "/" + ca + ".pem", "-CAkey", dir_ + "/" + ca + ".key",
         "-CAcreateserial", "-days", days, "-out", base + ".pem"});
  }
  std::string dir_;
};

TEST_F(cluster_tls_test, with_tls_the_job_runs_and_strangers_are_refused) {
  constexpr std::uint64_t readings = 60'000;
  tls_files tls{c_->dir()};
  std::vector<std::string> job{"--readings",
                               std::to_string(readings),
                               "--sensors",
                               std::to_string(sensors),
                               "--checkpoint-interval",
                               "100ms"};
  auto coordinator = c_->start_coordinator(job, tls.flags("node"));
  ASSERT_TRUE(coordinator->wait_for_err("(TLS)", 10s)) << coordinator->err();
  // No certificate at all (plain TCP), and a certificate from another CA.
  auto plain = c_->start_worker("plain", job, 3);
  auto stranger = c_->start_worker("stranger", job, 3, tls.flags("stranger"));
  ASSERT_TRUE(plain->wait_for_err("cannot connect to the coordinator", 20s))
      << plain->err();
  ASSERT_TRUE(stranger->wait_for_err("cannot connect to the coordinator", 20s))
      << stranger->err();
  // Both keep trying; neither got in.
  ASSERT_TRUE(plain->wait_for_err("retrying", 10s)) << plain->err();
  EXPECT_EQ(coordinator->err().find("registered"), std::string::npos)
      << coordinator->err();
  // Gone before the job starts; strangers during the job are the next
  // test's subject.
  plain->signal(SIGKILL);
  stranger->signal(SIGKILL);
  plain->wait(10s);
  stranger->wait(10s);
  std::vector<std::unique_ptr<child_process>> workers;
  for (int i = 1; i <= 3; ++i)
    workers.push_back(
        c_->start_worker("w" + std::to_string(i), job, 1, tls.flags("node")));
  ASSERT_EQ(coordinator->wait(90s), 0) << coordinator->err();
  for (auto& w : workers) EXPECT_EQ(w->wait(20s), 0) << w->err();
  auto err = coordinator->err();
  EXPECT_EQ(err.find("worker plain registered"), std::string::npos) << err;
  EXPECT_EQ(err.find("worker stranger registered"), std::string::npos) << err;
  expect_exact_output(readings);
  if (HasFailure()) {
    std::printf("coordinator:\n%s\n", err.c_str());
    for (auto& w : workers) std::printf("worker:\n%s\n", w->err().c_str());
  }
}

/// Connects to `port` on loopback, sends `bytes` (maybe none) and closes.
void send_garbage(std::uint16_t port, const std::string& bytes) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  if (!bytes.empty()) {
    EXPECT_EQ(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  // Give the server the chance to answer before the close.
  char buf[256];
  timeval tv{0, 200'000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  (void)::recv(fd, buf, sizeof buf, 0);
  ::close(fd);
}

TEST_F(cluster_tls_test, strangers_during_a_job_touch_no_registered_worker) {
  // Two good workers run a job of parallelism 2 (3 slots each would do; one
  // slot per worker means both hold tasks, so losing either would show as
  // a restart). Meanwhile, spread over a few seconds: 10 connections of
  // garbage, 3 TLS clients without a certificate, a plaintext worker, a
  // worker with a foreign CA's certificate and one with an expired one.
  c_ = std::make_unique<cluster>(
      std::string{STREAM_EXAMPLES_DIR} + "/exactly_once", "eo", 2);
  constexpr std::uint64_t readings = 200'000;
  tls_files tls{c_->dir()};
  std::vector<std::string> job{"--readings",
                               std::to_string(readings),
                               "--sensors",
                               std::to_string(sensors),
                               "--rate",
                               "25000",
                               "--checkpoint-interval",
                               "100ms"};
  auto coordinator = c_->start_coordinator(job, tls.flags("node"));
  ASSERT_TRUE(coordinator->wait_for_err("(TLS)", 10s)) << coordinator->err();
  std::vector<std::unique_ptr<child_process>> good;
  for (int i = 1; i <= 2; ++i)
    good.push_back(
        c_->start_worker("w" + std::to_string(i), job, 1, tls.flags("node")));
  ASSERT_TRUE(c_->wait_for_checkpoints(2, 30s)) << coordinator->err();
  const auto port = c_->cluster_port();
  const std::vector<std::string> garbage{
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
      std::string(64, '\0'),
      "\x16\x03\x01\xff\xff garbage",
      std::string(1000, 'z'),
      "",
  };
  for (int i = 0; i < 10; ++i) {
    send_garbage(port, garbage[static_cast<std::size_t>(i) % garbage.size()]);
    std::this_thread::sleep_for(100ms);  // spread out, as the issue asks
  }
  for (int i = 0; i < 3; ++i) {
    std::string out, err;
    // Its standard input at end of file: it closes after the handshake.
    stream::testing::run_command(
        {"/bin/sh", "-c",
         "exec /usr/bin/openssl s_client -connect 127.0.0.1:" +
             std::to_string(port) + " -CAfile " + c_->dir() +
             "/ca.pem </dev/null"},
        &out, &err);
    std::this_thread::sleep_for(100ms);
  }
  auto plain = c_->start_worker("plain", job, 1);
  auto foreign = c_->start_worker("foreign", job, 1, tls.flags("stranger"));
  auto expired = c_->start_worker("expired", job, 1, tls.flags("expired"));
  for (auto* w : {plain.get(), foreign.get(), expired.get()})
    EXPECT_TRUE(w->wait_for_err("cannot connect to the coordinator", 20s))
        << w->err();
  // The coordinator logged each kind of refusal, none of them as a worker.
  for (const char* reason :
       {"refused: not TLS", "refused: no certificate", "refused: unknown CA",
        "refused: expired certificate"})
    EXPECT_TRUE(coordinator->wait_for_err(reason, 10s)) << reason << "\n"
                                                        << coordinator->err();
  auto metrics = stream::testing::http_get(c_->rest_url() + "/metrics");
  for (auto* w : {plain.get(), foreign.get(), expired.get()}) {
    w->signal(SIGKILL);
    w->wait(10s);
  }
  ASSERT_EQ(coordinator->wait(90s), 0) << coordinator->err();
  for (auto& w : good) EXPECT_EQ(w->wait(20s), 0) << w->err();
  auto err = coordinator->err();
  EXPECT_EQ(
      stream::testing::sum_of(metrics, "stream_restarts_total", "job=\"eo\""),
      0)
      << err;
  EXPECT_EQ(stream::testing::sum_of(metrics, "stream_workers_lost_total",
                                    "job=\"eo\""),
            0)
      << err;
  EXPECT_EQ(err.find(" lost"), std::string::npos) << err;
  EXPECT_EQ(err.find("restart"), std::string::npos) << err;
  const auto not_tls = count_of(err, "refused: not TLS");
  const auto closed = count_of(err, "refused: closed during the handshake");
  std::printf(
      "refusals logged by the coordinator: %zu not TLS, %zu closed during "
      "the handshake, %zu no certificate, %zu unknown CA, %zu expired\n",
      not_tls, closed, count_of(err, "refused: no certificate"),
      count_of(err, "refused: unknown CA"),
      count_of(err, "refused: expired certificate"));
  // One line per garbage connection (some close without a byte), more for
  // the plaintext worker's attempts.
  EXPECT_GE(not_tls + closed, 10U + 1U) << err;
  EXPECT_GE(count_of(err, "refused: no certificate"), 3U) << err;
  EXPECT_EQ(count_of(err, "TLS peer 127.0.0.1:"), count_of(err, " refused: "))
      << "each line names its peer";
  expect_exact_output(readings);
}

}  // namespace
}  // namespace stream
