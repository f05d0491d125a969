// A real redis-server on a free loopback port for the duration of a test, without persistence,
// the helpers that wait on it, and a test fixture with a connected client.
#pragma once

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <fstream>
#include <functional>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "state/redis_client.h"

namespace state {

// A free loopback port below the kernel's ephemeral range, never handed out twice by this
// process. A port the kernel picks (bind to port 0) is in that range, where the kernel may give
// it to a client connection before redis-server binds it (tests/integration/conftest.py's
// free_port has the same rule). 0 if none is found.
inline uint16_t FreePort() {
  static std::set<int> handed_out;
  int ephemeral_low = 32768;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> ephemeral_low;
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> pick(std::min(10000, ephemeral_low / 2), ephemeral_low - 1);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    int port = pick(rng);
    if (handed_out.contains(port)) continue;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool free = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    if (!free) continue;
    handed_out.insert(port);
    return static_cast<uint16_t>(port);
  }
  return 0;
}

class RedisServer {
 public:
  // `options`: more command-line options for redis-server ("--maxmemory", "1", ...).
  explicit RedisServer(uint16_t port = FreePort(), std::vector<std::string> options = {})
      : port_(port), options_(std::move(options)) {
    Start();
  }
  ~RedisServer() { Stop(); }

  uint16_t port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }

  void Start() {
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<std::string> args = {
          "redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1", "--save", "",
          "--appendonly", "no",     "--loglevel",          "warning"};
      args.insert(args.end(), options_.begin(), options_.end());
      std::vector<char*> argv;
      for (std::string& a : args)
        argv.push_back(a.data());
      argv.push_back(nullptr);
      execvp("redis-server", argv.data());
      _exit(127);
    }
    // Ready when it accepts a connection; the deadline fails the test through the caller.
    for (int i = 0; i < 500 && !Accepts(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // A server that stops answering without closing anything.
  void Freeze() { kill(pid_, SIGSTOP); }
  void Thaw() { kill(pid_, SIGCONT); }

  bool Accepts() const {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    return ok;
  }

 private:
  uint16_t port_;
  std::vector<std::string> options_;
  pid_t pid_ = -1;
};

// Runs `io` until `done()` or the deadline; returns done().
inline bool RunUntil(boost::asio::io_context& io, const std::function<bool()>& done,
                     std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
  auto end = std::chrono::steady_clock::now() + deadline;
  while (!done() && std::chrono::steady_clock::now() < end) {
    io.restart();
    io.run_for(std::chrono::milliseconds(10));
  }
  return done();
}

// A started client, once connected; null when it did not connect in time.
inline std::shared_ptr<RedisClient> Connected(boost::asio::io_context& io, RedisOptions options) {
  auto c = RedisClient::Create(io, std::move(options));
  c->Start();
  return RunUntil(io, [&] { return c->connected(); }) ? c : nullptr;
}

// Sends one command and runs the loop until its answer.
inline absl::StatusOr<RedisReply> Exec(boost::asio::io_context& io, RedisClient& c,
                                       std::vector<std::string> args) {
  std::optional<absl::StatusOr<RedisReply>> result;
  c.Command(std::move(args), [&](absl::StatusOr<RedisReply> r) { result = std::move(r); });
  RunUntil(io, [&] { return result.has_value(); });
  return result.value_or(absl::DeadlineExceededError("test deadline"));
}

// A test with a redis-server of its own and a client connected to it.
class WithRedis : public ::testing::Test {
 protected:
  void SetUp() override {
    RedisOptions o;
    o.port = server.port();
    c = Connected(io, o);
    ASSERT_TRUE(c);
  }
  RedisServer server;
  boost::asio::io_context io;
  std::shared_ptr<RedisClient> c;
};

}  // namespace state
