// An LD_PRELOAD shim for the integration tests: a slow system resolver. getaddrinfo() of a host
// name ending in ".slow.test" waits SLOW_RESOLVER_MS (default 4000) and then resolves 127.0.0.1;
// every other name goes to libc's. With SLOW_RESOLVER_MARK set, a slow lookup first writes the
// process id to that file: the test knows the process is resolving. Built as
// build/tests/libslow_resolver.so.
#include <dlfcn.h>
#include <netdb.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string_view>
#include <thread>

extern "C" int getaddrinfo(const char* node, const char* service, const addrinfo* hints,
                           addrinfo** res) {
  using Real = int (*)(const char*, const char*, const addrinfo*, addrinfo**);
  static const auto real = reinterpret_cast<Real>(dlsym(RTLD_NEXT, "getaddrinfo"));
  if (node != nullptr && std::string_view(node).ends_with(".slow.test")) {
    if (const char* mark = std::getenv("SLOW_RESOLVER_MARK"); mark != nullptr) {
      std::ofstream(mark) << getpid() << "\n";
    }
    const char* ms = std::getenv("SLOW_RESOLVER_MS");
    std::this_thread::sleep_for(std::chrono::milliseconds(ms != nullptr ? std::atol(ms) : 4000));
    node = "127.0.0.1";
  }
  return real(node, service, hints, res);
}
