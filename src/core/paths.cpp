#include "core/paths.h"

#include <cstdlib>
#include <filesystem>

#include "core/error.h"
#include "core/version.h"

namespace rewardgen {

std::string data_dir() {
  if (const char* env = std::getenv("REWARDGEN_DATA_DIR"); env != nullptr && *env != '\0') return env;
  return kSourceDataDir;
}

std::string shipped_file(const std::string& relative) {
  const std::string path = data_dir() + "/" + relative;
  if (!std::filesystem::exists(path))
    throw Error(str("shipped file '", relative, "' not found at '", path,
                    "' (set REWARDGEN_DATA_DIR to the project's data/ folder)"));
  return path;
}

}  // namespace rewardgen
