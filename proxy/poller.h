// Edge-triggered readiness for the tunnels of one worker, without a system call per wait.
//
// Asio re-arms a descriptor with epoll_ctl each time one waits for it, which for a proxy is one
// extra system call per message in each direction. The tunnels' sockets are therefore not Asio
// sockets: they live in an epoll set of their own, registered once, edge-triggered, for reading
// and writing. Asio waits on that set's descriptor like on any other; when it is readable, Poll()
// takes up to 256 events from it and hands each to its Handler. While batches keep coming, the
// next poll is posted behind the thread's other handlers instead of waiting again (which would
// cost Asio's epoll_ctl); only an empty poll goes back to waiting. So under load a batch of
// events costs one epoll_wait on this set and one on Asio's, however many tunnels it concerns.
//
// With `yield_before_sleep`, an empty poll first gives the core to any other thread waiting for
// it (sched_yield) and polls once more. Where the proxy shares its cores with the brokers and the
// clients, those threads are what produces the next events: the second poll finds a batch, where
// going to sleep would have cost a sleep and a wake-up for each small one. Measured in the proxy
// benchmark (docs/benchmarks.md): about a quarter fewer system calls per message and a tenth
// more throughput at saturation; but a yielded thread is runnable, so the events that arrive
// meanwhile do not wake it: they wait for the others' time slices, which shows in the p99 both
// at saturation and at a fixed rate below it. Hence off by default. With no other thread runnable
// the yield returns at once.
//
// Handlers must stay valid until the batch in which they were removed has been dispatched: the
// worker releases closed tunnels from a handler posted after the batch.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <cstdint>

namespace proxy {

class Poller {
 public:
  class Handler {
   public:
    virtual void OnEvents(uint32_t epoll_events) = 0;

   protected:
    ~Handler() = default;
  };

  Poller(boost::asio::io_context& io, bool yield_before_sleep);
  ~Poller();

  // Watches `fd` for reading and writing, edge-triggered; events go to `handler`. 0, or the errno
  // of a failure (ENOMEM, or ENOSPC past fs.epoll.max_user_watches): then no event ever comes.
  int Add(int fd, Handler* handler);
  void Remove(int fd);
  boost::asio::any_io_executor executor() { return descriptor_.get_executor(); }

 private:
  void Wait();
  void Poll();

  int epoll_fd_;
  bool yield_before_sleep_;
  boost::asio::posix::stream_descriptor descriptor_;
};

}  // namespace proxy
