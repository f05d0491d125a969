// A fixed set of threads, each running its own io_context.
//
// One io_context per thread, rather than one shared by all, means a handler never migrates and
// the contexts never contend on a shared queue: whatever lives on context i (a connection, a
// broker shard) is touched by thread i only, without locks. Work crosses threads only by
// asio::post to another context.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace net {

class IoThreads {
 public:
  // `count` 0 means one per hardware thread. Thread i of them is named "NAME-i" (top -H, ps -L,
  // /proc/PID/task/TID/comm; at most 15 characters), except the calling thread of Run().
  IoThreads(size_t count, std::string name);
  ~IoThreads();
  IoThreads(const IoThreads&) = delete;
  IoThreads& operator=(const IoThreads&) = delete;

  size_t size() const { return contexts_.size(); }
  boost::asio::io_context& context(size_t i);

  // Runs every context on its own thread, the first on the calling thread; returns when all
  // contexts have stopped.
  void Run();
  // Runs every context on a thread of its own and returns at once; Join() waits for them.
  void Start();
  void Join();
  // Stops every context; safe from any thread.
  void Stop();

 private:
  class Context;
  // Runs context `i` on the calling thread, named for it.
  void RunOne(size_t i);

  std::string name_;
  std::vector<std::unique_ptr<Context>> contexts_;
  std::vector<std::thread> threads_;
  std::vector<std::unique_ptr<void, void (*)(void*)>> guards_;
};

// The thread count a "threads = 0" setting stands for.
size_t DefaultThreadCount();

}  // namespace net
