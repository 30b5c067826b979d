#pragma once
// PyTorch's official LibTorch 2.x exports std::filesystem functions and types (remove_all,
// filesystem_error, ...) compiled against the older libstdc++ of its build machine. Loaded ahead of
// the system's libstdc++ (and a toolchain's link order did not prevent it, docs/cuda.md), those
// copies serve our calls, and code built by a newer g++ crashes in them. The cure is to preload the
// system's libstdc++; the CLI, the tests and the benchmarks do it themselves by re-executing once.
#include <string>
#include <vector>

namespace rewardgen {

class Logger;

// The std::filesystem symbols whose provider is checked (mangled, the C++11 ABI).
std::vector<std::string> libstdcxx_probe_symbols();
// The file of the shared object that serves `symbol` to this process (the one the dynamic linker
// binds first), or "" when none defines it.
std::string shared_object_serving(const std::string& symbol);
// The file of the loaded libstdc++, or "" when none is loaded.
std::string loaded_libstdcxx();
// The shared object that serves a probe symbol in libstdc++'s place, or "" when libstdc++ (or this
// program itself, which may hold copies of data symbols) serves them all.
std::string libstdcxx_shadow();

// When a probe symbol is served by another object than libstdc++ and LD_PRELOAD does not already
// name libstdc++: re-executes this program once with the loaded libstdc++ first in LD_PRELOAD.
// Returns only when no re-execution happened (or it failed, which it says on stderr).
void preload_libstdcxx_if_shadowed(char** argv);
// Logs (debug) the re-execution that preload_libstdcxx_if_shadowed did for this process, if any.
void report_libstdcxx_preload(const Logger& log);

}  // namespace rewardgen
