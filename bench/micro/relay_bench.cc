// Micro benchmark of the proxy's relay step, to decide where splice(2) measures faster (the proxy
// issue asks for it there): one chunk moved from a TCP socket to another through user space (read
// into a reused buffer, then write, as proxy/tunnel.cc does) against splice(2) through a pipe
// (socket to pipe, pipe to socket: no copy through user space, one more system call per chunk
// when a read would have sufficed, and a pipe per direction per connection).
//
// Each iteration: a client writes the chunk, the relay moves it, the far end reads it, all on
// loopback TCP. The client's write and the far end's read are the same for both variants, so
// the difference between the two is the difference between the relays.
// Run: build/bin/micro_bench --benchmark_filter=Relay
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace {

[[noreturn]] void Fail(const char* what) {
  throw std::runtime_error(std::string(what) + ": " + std::strerror(errno));
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// A connected pair of loopback TCP sockets with TCP_NODELAY, as the proxy sets it.
std::pair<Fd, Fd> TcpPair() {
  Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) Fail("bind");
  if (::listen(listener.get(), 1) != 0) Fail("listen");
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Fail("getsockname");
  }
  Fd a(::socket(AF_INET, SOCK_STREAM, 0));
  if (::connect(a.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0) Fail("connect");
  Fd b(::accept(listener.get(), nullptr, nullptr));
  if (b.get() < 0) Fail("accept");
  int one = 1;
  ::setsockopt(a.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::setsockopt(b.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return {std::move(a), std::move(b)};
}

void WriteAll(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w <= 0) Fail("write");
    data += w;
    n -= static_cast<size_t>(w);
  }
}

void ReadAll(int fd, char* data, size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, data, n);
    if (r <= 0) Fail("read");
    data += r;
    n -= static_cast<size_t>(r);
  }
}

// client → relay_in, relay_out → sink.
struct Path {
  Path() {
    std::tie(client, relay_in) = TcpPair();
    std::tie(relay_out, sink) = TcpPair();
  }
  Fd client, relay_in, relay_out, sink;
};

void BM_RelayReadWrite(benchmark::State& state) {
  size_t chunk = static_cast<size_t>(state.range(0));
  Path path;
  std::vector<char> payload(chunk, 'x'), buffer(64 * 1024), far(chunk);
  for (auto _ : state) {
    WriteAll(path.client.get(), payload.data(), chunk);
    // The relay forwards what each read returns, as the tunnel does.
    for (size_t moved = 0; moved < chunk;) {
      ssize_t r = ::read(path.relay_in.get(), buffer.data(), buffer.size());
      if (r <= 0) Fail("read");
      WriteAll(path.relay_out.get(), buffer.data(), static_cast<size_t>(r));
      moved += static_cast<size_t>(r);
    }
    ReadAll(path.sink.get(), far.data(), chunk);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * chunk));
}

void BM_RelaySplice(benchmark::State& state) {
  size_t chunk = static_cast<size_t>(state.range(0));
  Path path;
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) Fail("pipe2");
  Fd pipe_r(pipe_fds[0]), pipe_w(pipe_fds[1]);
  if (::fcntl(pipe_w.get(), F_SETPIPE_SZ, 64 * 1024) < 0) Fail("F_SETPIPE_SZ");
  std::vector<char> payload(chunk, 'x'), far(chunk);
  for (auto _ : state) {
    WriteAll(path.client.get(), payload.data(), chunk);
    for (size_t moved = 0; moved < chunk;) {
      ssize_t in =
          ::splice(path.relay_in.get(), nullptr, pipe_w.get(), nullptr, 64 * 1024, SPLICE_F_MOVE);
      if (in <= 0) Fail("splice in");
      for (ssize_t out = 0; out < in;) {
        ssize_t s = ::splice(pipe_r.get(), nullptr, path.relay_out.get(), nullptr,
                             static_cast<size_t>(in - out), SPLICE_F_MOVE);
        if (s <= 0) Fail("splice out");
        out += s;
      }
      moved += static_cast<size_t>(in);
    }
    ReadAll(path.sink.get(), far.data(), chunk);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * chunk));
}

BENCHMARK(BM_RelayReadWrite)->Arg(64)->Arg(1024)->Arg(16 * 1024)->Arg(64 * 1024);
BENCHMARK(BM_RelaySplice)->Arg(64)->Arg(1024)->Arg(16 * 1024)->Arg(64 * 1024);

}  // namespace
