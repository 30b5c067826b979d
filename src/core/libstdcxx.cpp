#include "core/libstdcxx.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "core/error.h"
#include "core/log.h"

namespace rewardgen {

namespace {

// Set in the re-executed process: the object that served std::filesystem before.
constexpr const char* kLibstdcxxReexecMarker = "REWARDGEN_LIBSTDCXX_REEXEC_FROM";

bool is_libstdcxx(const std::string& file) {
  const size_t slash = file.rfind('/');
  return file.compare(slash == std::string::npos ? 0 : slash + 1, 9, "libstdc++") == 0;
}

std::string file_of(const void* address) {
  Dl_info info{};
  if (address == nullptr || dladdr(address, &info) == 0 || info.dli_fname == nullptr) return "";
  return info.dli_fname;
}

}  // namespace

std::vector<std::string> libstdcxx_probe_symbols() {
  return {"_ZNSt10filesystem10remove_allERKNS_7__cxx114pathE",      // std::filesystem::remove_all(const path&)
          "_ZTINSt10filesystem7__cxx1116filesystem_errorE"};        // typeinfo of std::filesystem::filesystem_error
}

std::string shared_object_serving(const std::string& symbol) { return file_of(dlsym(RTLD_DEFAULT, symbol.c_str())); }

std::string loaded_libstdcxx() {
  void* handle = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD);
  if (handle == nullptr) return "";
  // A symbol looked up in libstdc++'s own handle is its own definition, whatever shadows it globally.
  const std::string file = file_of(dlsym(handle, libstdcxx_probe_symbols().front().c_str()));
  dlclose(handle);
  return file;
}

std::string libstdcxx_shadow() {
  const std::string self = file_of(reinterpret_cast<const void*>(&libstdcxx_shadow));
  for (const std::string& symbol : libstdcxx_probe_symbols()) {
    const std::string file = shared_object_serving(symbol);
    if (!file.empty() && !is_libstdcxx(file) && file != self) return file;
  }
  return "";
}

void preload_libstdcxx_if_shadowed(char** argv) {
  if (std::getenv(kLibstdcxxReexecMarker)) return;  // already re-executed once: never loop
  const std::string shadow = libstdcxx_shadow();
  if (shadow.empty()) return;
  const std::string libstdcxx = loaded_libstdcxx();
  const char* preload = std::getenv("LD_PRELOAD");
  if (libstdcxx.empty() || (preload != nullptr && std::strstr(preload, "libstdc++") != nullptr)) return;
  const std::string value = preload != nullptr && *preload != '\0' ? libstdcxx + ":" + preload : libstdcxx;
  setenv("LD_PRELOAD", value.c_str(), 1);
  setenv(kLibstdcxxReexecMarker, shadow.c_str(), 1);
  std::cerr.flush();
  execv("/proc/self/exe", argv);
  const int error = errno;  // only reached when exec failed
  unsetenv(kLibstdcxxReexecMarker);
  std::cerr << "warning: std::filesystem is served by " << shadow << ", not libstdc++, and re-executing with LD_PRELOAD="
            << libstdcxx << " failed (" << std::strerror(error) << "); file operations may crash: set LD_PRELOAD yourself\n";
}

void report_libstdcxx_preload(const Logger& log) {
  const char* from = std::getenv(kLibstdcxxReexecMarker);
  if (!from) return;
  // debug, not info: it happens on every start with such a LibTorch, and changes no result.
  log.debug(str("std::filesystem was served by ", from, " (PyTorch's LibTorch exports its own copies); re-executed with the "
               "system's libstdc++ preloaded (docs/cuda.md)"));
  unsetenv(kLibstdcxxReexecMarker);  // child processes inherit LD_PRELOAD; they need not say it again
}

}  // namespace rewardgen
