// The one-line progress display: messages sent and received per second, once a second, on stderr.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>
#include <utility>

namespace loadgen {

class Progress {
 public:
  // `counts` returns the totals (sent, received) so far.
  Progress(bool quiet, std::function<std::pair<uint64_t, uint64_t>()> counts);
  ~Progress();
  // Shows the rates for `length`, labelled `phase`, and returns after it.
  void Phase(std::string_view phase, std::chrono::duration<double> length);

 private:
  bool quiet_;
  bool tty_;
  std::function<std::pair<uint64_t, uint64_t>()> counts_;
};

}  // namespace loadgen
