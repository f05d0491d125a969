// IoThreads: each context is kept alive by a work guard until Stop().
#include "net/io_threads.h"

#include <pthread.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace net {

// An io_context whose pending handlers can be destroyed (shutdown) before it is: see ~IoThreads.
class IoThreads::Context : public boost::asio::io_context {
 public:
  using boost::asio::execution_context::shutdown;
  using io_context::io_context;
};

size_t DefaultThreadCount() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : n;
}

IoThreads::IoThreads(size_t count, std::string name) : name_(std::move(name)) {
  if (count == 0) count = DefaultThreadCount();
  for (size_t i = 0; i < count; ++i) {
    // Concurrency hint 1: each context is run by exactly one thread, so Asio can skip locking.
    contexts_.push_back(std::make_unique<Context>(1));
  }
}

IoThreads::~IoThreads() {
  Stop();
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  // A pending handler of one context may hold the last reference to an object with a timer or
  // socket on another (a connection's hooks holding a store with a client per thread). Destroying
  // the contexts one by one would destroy such a handler after the other context's services are
  // gone (a use after free, found by AddressSanitizer at a proxy's exit). So every context's
  // handlers go first, while every context still exists.
  for (auto& c : contexts_)
    c->shutdown();
}

boost::asio::io_context& IoThreads::context(size_t i) {
  return *contexts_[i];
}

void IoThreads::Run() {
  std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guards;
  for (auto& c : contexts_)
    guards.push_back(boost::asio::make_work_guard(*c));
  for (size_t i = 1; i < contexts_.size(); ++i) {
    threads_.emplace_back([this, i] { RunOne(i); });
  }
  contexts_[0]->run();
  for (auto& g : guards)
    g.reset();
  for (std::thread& t : threads_)
    t.join();
  threads_.clear();
}

void IoThreads::Start() {
  using Guard = boost::asio::executor_work_guard<boost::asio::io_context::executor_type>;
  for (size_t i = 0; i < contexts_.size(); ++i) {
    guards_.emplace_back(new Guard(boost::asio::make_work_guard(*contexts_[i])),
                         [](void* g) { delete static_cast<Guard*>(g); });
    threads_.emplace_back([this, i] { RunOne(i); });
  }
}

void IoThreads::RunOne(size_t i) {
  std::string name = (name_ + "-" + std::to_string(i)).substr(0, 15);  // the kernel's limit
  pthread_setname_np(pthread_self(), name.c_str());
  contexts_[i]->run();
}

void IoThreads::Join() {
  guards_.clear();
  for (std::thread& t : threads_)
    t.join();
  threads_.clear();
}

void IoThreads::Stop() {
  for (auto& c : contexts_)
    c->stop();
}

}  // namespace net
