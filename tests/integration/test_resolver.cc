// An LD_PRELOAD shim for the integration tests: a system resolver the test controls. Built as
// build/tests/libtest_resolver.so; every other name goes to libc's getaddrinfo().
//
//   NAME.slow.test  waits TEST_RESOLVER_SLOW_MS (default 4000), then resolves 127.0.0.1. With
//                   TEST_RESOLVER_MARK set, such a lookup first writes the process id to that
//                   file: the test knows the process is resolving.
//   NAME.map.test   resolves to the addresses in the file TEST_RESOLVER_MAP at the time of the
//                   lookup, one per line, in that order: the test moves the name, or reorders
//                   its addresses as round-robin DNS does, by rewriting the file. With
//                   TEST_RESOLVER_LOG set, each such lookup appends a line to that file.
#include <dlfcn.h>
#include <netdb.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>

namespace {

using Real = int (*)(const char*, const char*, const addrinfo*, addrinfo**);

// The map file's addresses, each resolved by libc (numeric: no lookup), as one list.
int Mapped(Real real, const char* service, const addrinfo* hints, addrinfo** res) {
  const char* map = std::getenv("TEST_RESOLVER_MAP");
  if (const char* log = std::getenv("TEST_RESOLVER_LOG"); log != nullptr) {
    std::ofstream(log, std::ios::app) << "lookup\n";
  }
  std::ifstream in(map != nullptr ? map : "");
  addrinfo* head = nullptr;
  addrinfo** tail = &head;
  for (std::string address; in >> address;) {
    addrinfo* one = nullptr;
    if (real(address.c_str(), service, hints, &one) != 0) continue;
    *tail = one;  // glibc's freeaddrinfo frees such a chain entry by entry
    while (*tail != nullptr)
      tail = &(*tail)->ai_next;
  }
  if (head == nullptr) return EAI_NONAME;
  *res = head;
  return 0;
}

}  // namespace

extern "C" int getaddrinfo(const char* node, const char* service, const addrinfo* hints,
                           addrinfo** res) {
  static const auto real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "getaddrinfo"));
  std::string_view name = node != nullptr ? node : "";
  if (name.ends_with(".map.test")) return Mapped(real, service, hints, res);
  if (name.ends_with(".slow.test")) {
    if (const char* mark = std::getenv("TEST_RESOLVER_MARK"); mark != nullptr) {
      std::ofstream(mark) << getpid() << "\n";
    }
    const char* ms = std::getenv("TEST_RESOLVER_SLOW_MS");
    std::this_thread::sleep_for(std::chrono::milliseconds(ms != nullptr ? std::atol(ms) : 4000));
    node = "127.0.0.1";
  }
  return real(node, service, hints, res);
}
