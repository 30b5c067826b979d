#include "io/output_paths.h"

#include <filesystem>

#include "core/error.h"
#include "io/atomic_file.h"

namespace rewardgen {
namespace fs = std::filesystem;

namespace {

fs::path resolved(const std::string& path) { return fs::weakly_canonical(fs::absolute(path)); }

// True when `inner` is `outer` or lies inside it, component by component ("/a/bc" is not in "/a/b").
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;  // a trailing separator
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

}  // namespace

void refuse_output_over_inputs(const std::string& output, const std::vector<std::string>& inputs, const std::string& flag) {
  if (output.empty()) throw Error(str(flag, " is empty"));
  const fs::path out = resolved(output);
  for (const std::string& input : inputs) {
    if (input.empty()) continue;
    const fs::path in = resolved(input);
    if (in == out) throw Error(str(flag, " '", output, "' is the input '", input, "': writing there would replace it; choose another ", flag));
    if (is_within(in, out))
      throw Error(str(flag, " '", output, "' holds the input '", input, "': writing there could replace or mix with it; choose another ", flag));
  }
}

void prepare_output_folder(const std::string& dir, bool must_be_empty, const std::string& flag) {
  if (dir.empty()) throw Error(str(flag, " is empty"));
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) throw Error(str(flag, " '", dir, "' exists and is not a folder"));
  if (must_be_empty && fs::is_directory(dir, ec) && !fs::is_empty(dir, ec))
    throw Error(str(flag, " '", dir, "' already holds files: new outputs would mix with them; choose a new or empty folder"));
  fs::create_directories(dir, ec);
  if (ec) throw Error(str("cannot create ", flag, " folder '", dir, "': ", ec.message()));
  try {
    AtomicFileWriter probe(dir + "/.write-test");  // never committed: removed when it goes out of scope
    probe.write("x", 1);
  } catch (const Error& e) {
    throw Error(str(flag, " folder '", dir, "' is not writable: ", e.what()));
  }
}

}  // namespace rewardgen
