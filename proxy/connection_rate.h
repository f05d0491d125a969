// A listener's max_connection_rate, over all the proxy's threads: new connections accepted per
// second (EMQX's max_conn_rate, HAProxy's rate-limit sessions). Past it, a thread stops
// accepting until the next place is free, and the connections wait in the kernel's accept queue,
// where a storm of reconnects costs neither the proxy nor the brokers behind it anything; a
// queue that overflows drops SYNs, which clients send again.
//
// GCRA (the generic cell rate algorithm, as in ATM and redis-cell): one atomic, the theoretical
// arrival time of the next connection. Bursts of a tenth of a second's worth (at least one) pass
// at once; beyond, connections are paced evenly.
#pragma once

#include <atomic>
#include <cstdint>

namespace proxy {

class ConnectionRate {
 public:
  // Takes a place for one connection at `now_ns` (a steady clock) under `per_second` (> 0): 0
  // when it has one, else the nanoseconds until the next is free (nothing taken).
  int64_t Take(int64_t now_ns, uint32_t per_second);
  // Gives back a place taken for a connection that was not there after all.
  void Return(uint32_t per_second);

 private:
  std::atomic<int64_t> next_{0};  // the theoretical arrival time of the next connection
};

}  // namespace proxy
