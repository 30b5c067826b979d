// The launch environment, read as torchrun publishes it: none set is one process; a partial set
// names what is missing; every value range-checked.
#include "dist/launch_env.h"

#include <gtest/gtest.h>

#include <map>

#include "test_util.h"

namespace rewardgen {
namespace {

LaunchEnv read(const std::map<std::string, std::string>& vars) {
  return read_launch_env([&](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

TEST(LaunchEnv, NothingSetIsOneProcess) {
  const LaunchEnv env = read({});
  EXPECT_EQ(env.rank, 0);
  EXPECT_EQ(env.world_size, 1);
  EXPECT_FALSE(env.distributed());
}

TEST(LaunchEnv, ReadsTorchrunsVariables) {
  const LaunchEnv env = read({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "29500"}});
  EXPECT_EQ(env.rank, 3);
  EXPECT_EQ(env.world_size, 4);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.master_addr, "node7");
  EXPECT_EQ(env.master_port, 29500);
  EXPECT_TRUE(env.distributed());
  EXPECT_EQ(read({{"RANK", "2"}, {"WORLD_SIZE", "3"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "1"}}).local_rank, 2);  // LOCAL_RANK = RANK
}

TEST(LaunchEnv, APartialSetNamesWhatIsMissing) {
  EXPECT_TRUE(testing::throws_error_containing([] { read({{"RANK", "0"}, {"WORLD_SIZE", "2"}}); }, "MASTER_ADDR, MASTER_PORT are not set"));
  EXPECT_TRUE(testing::throws_error_containing([] { read({{"LOCAL_RANK", "0"}}); }, "RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT are not set"));
  EXPECT_TRUE(testing::throws_error_containing([] { read({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}}); }, "MASTER_PORT is not set"));
}

TEST(LaunchEnv, ValuesAreRangeChecked) {
  auto with = [](const std::string& name, const std::string& value) {
    std::map<std::string, std::string> vars{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "29500"}};
    vars[name] = value;
    return vars;
  };
  EXPECT_TRUE(testing::throws_error_containing([&] { read(with("RANK", "2")); }, "RANK='2' must be an integer in [0, 1]"));
  EXPECT_TRUE(testing::throws_error_containing([&] { read(with("RANK", "-1")); }, "RANK='-1'"));
  EXPECT_TRUE(testing::throws_error_containing([&] { read(with("WORLD_SIZE", "0")); }, "WORLD_SIZE='0'"));
  EXPECT_TRUE(testing::throws_error_containing([&] { read(with("WORLD_SIZE", "2x")); }, "WORLD_SIZE='2x'"));
  EXPECT_TRUE(testing::throws_error_containing([&] { read(with("MASTER_PORT", "70000")); }, "MASTER_PORT='70000'"));
  EXPECT_TRUE(testing::throws_error_containing([&] { read(with("MASTER_PORT", "")); }, "MASTER_PORT=''"));
  EXPECT_TRUE(testing::throws_error_containing([&] { read(with("LOCAL_RANK", "5")); }, "LOCAL_RANK='5'"));
  EXPECT_TRUE(testing::throws_error_containing([&] { read(with("MASTER_ADDR", "")); }, "MASTER_ADDR is empty"));
}

}  // namespace
}  // namespace rewardgen
