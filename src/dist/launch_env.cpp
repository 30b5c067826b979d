#include "dist/launch_env.h"

#include <cstdlib>
#include <vector>

#include "core/error.h"

namespace rewardgen {

namespace {

// A whole decimal integer in [low, high], else Error naming the variable and its value.
int parse_int(const char* name, const std::string& text, int64_t low, int64_t high) {
  size_t used = 0;
  int64_t value = 0;
  try {
    value = std::stoll(text, &used, 10);
  } catch (const std::exception&) {
    used = 0;
  }
  if (text.empty() || used != text.size() || value < low || value > high)
    throw Error(str("launch environment: ", name, "='", text, "' must be an integer in [", low, ", ", high, "]"));
  return static_cast<int>(value);
}

}  // namespace

LaunchEnv read_launch_env(const std::function<const char*(const char*)>& lookup) {
  const std::vector<const char*> required = {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"};
  std::vector<std::string> missing;
  bool any = lookup("LOCAL_RANK") != nullptr;
  for (const char* name : required) {
    if (lookup(name) != nullptr) any = true;
    else missing.push_back(name);
  }
  LaunchEnv env;
  if (!any) return env;
  if (!missing.empty()) {
    std::string names;
    for (const std::string& name : missing) names += (names.empty() ? "" : ", ") + name;
    throw Error(str("launch environment: a data-parallel launch sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (as torchrun "
                    "does); ", names, missing.size() == 1 ? " is" : " are", " not set"));
  }
  env.world_size = parse_int("WORLD_SIZE", lookup("WORLD_SIZE"), 1, 65536);
  env.rank = parse_int("RANK", lookup("RANK"), 0, env.world_size - 1);
  env.local_rank = lookup("LOCAL_RANK") != nullptr ? parse_int("LOCAL_RANK", lookup("LOCAL_RANK"), 0, env.world_size - 1) : env.rank;
  env.master_addr = lookup("MASTER_ADDR");
  if (env.master_addr.empty()) throw Error("launch environment: MASTER_ADDR is empty");
  env.master_port = parse_int("MASTER_PORT", lookup("MASTER_PORT"), 1, 65535);
  return env;
}

LaunchEnv read_launch_env() {
  return read_launch_env([](const char* name) { return static_cast<const char*>(std::getenv(name)); });
}

}  // namespace rewardgen
