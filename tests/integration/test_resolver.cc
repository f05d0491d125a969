// An LD_PRELOAD shim for the integration tests: a system resolver the test controls. Built as
// build/tests/libtest_resolver.so; every other name goes to libc's getaddrinfo().
//
//   NAME.slow.test  waits TEST_RESOLVER_SLOW_MS (default 4000), then resolves 127.0.0.1. With
//                   TEST_RESOLVER_MARK set, such a lookup first writes the process id to that
//                   file: the test knows the process is resolving.
//   NAME.map.test   resolves to the address written in the file TEST_RESOLVER_MAP at the time
//                   of the lookup: the test moves the name by rewriting the file.
#include <dlfcn.h>
#include <netdb.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>

extern "C" int getaddrinfo(const char* node, const char* service, const addrinfo* hints,
                           addrinfo** res) {
  using Real = int (*)(const char*, const char*, const addrinfo*, addrinfo**);
  static const auto real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "getaddrinfo"));
  std::string mapped;
  if (node != nullptr && std::string_view(node).ends_with(".slow.test")) {
    if (const char* mark = std::getenv("TEST_RESOLVER_MARK"); mark != nullptr) {
      std::ofstream(mark) << getpid() << "\n";
    }
    const char* ms = std::getenv("TEST_RESOLVER_SLOW_MS");
    std::this_thread::sleep_for(std::chrono::milliseconds(ms != nullptr ? std::atol(ms) : 4000));
    node = "127.0.0.1";
  } else if (node != nullptr && std::string_view(node).ends_with(".map.test")) {
    const char* map = std::getenv("TEST_RESOLVER_MAP");
    if (map == nullptr || !(std::ifstream(map) >> mapped)) return EAI_NONAME;
    node = mapped.c_str();
  }
  return real(node, service, hints, res);
}
