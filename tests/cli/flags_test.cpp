// Every numeric flag of every command refuses NaN, infinities, absurd magnitudes and (counts)
// negative values when the command line is parsed: before anything is built, started or written.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/error.h"
#include "core/threads.h"
#include "rewards/world_rewards.h"

namespace rewardgen::cli {
namespace {

struct Flag {
  std::vector<std::string> command;  // e.g. {"bench", "unet"}
  std::string name;                  // e.g. "--repeats"
  std::string type;                  // CLI11's type name: INT, UINT, FLOAT (then the validators)
};

void collect_numeric_flags(CLI::App* app, const std::vector<std::string>& command, std::vector<Flag>& out) {
  for (const CLI::Option* option : app->get_options()) {
    const std::string type = option->get_type_name();
    const bool numeric = type.rfind("INT", 0) == 0 || type.rfind("UINT", 0) == 0 || type.rfind("FLOAT", 0) == 0;
    if (!numeric || option->get_lnames().empty() || option->get_expected_max() == 0) continue;
    out.push_back({command, "--" + option->get_lnames().front(), type});
  }
  for (CLI::App* sub : app->get_subcommands([](CLI::App*) { return true; })) {
    std::vector<std::string> path = command;
    path.push_back(sub->get_name());
    collect_numeric_flags(sub, path, out);
  }
}

struct Cli {
  CLI::App app{"rewardgen", "rewardgen"};
  Context context;
  Commands commands;
  std::string log_level;
  Cli() { build_app(app, context, commands, log_level); }

  // "" when parsing `command --name=value` raises no conversion or validation error, else its message.
  std::string value_error(const Flag& flag, const std::string& value) {
    std::vector<std::string> args = flag.command;
    args.push_back(flag.name + "=" + value);
    std::reverse(args.begin(), args.end());  // CLI11 takes the arguments last first
    try {
      app.parse(args);
    } catch (const CLI::ValidationError& e) {
      return e.what();
    } catch (const CLI::ConversionError& e) {
      return e.what();
    } catch (const CLI::ParseError&) {  // missing required options, ...: the value itself passed
    }
    return "";
  }
};

std::string describe(const Flag& flag) {
  std::string text = "rewardgen";
  for (const std::string& c : flag.command) text += " " + c;
  return text + " " + flag.name + " (" + flag.type + ")";
}

TEST(CliFlags, EveryNumericFlagRefusesNonFiniteAndAbsurdValues) {
  Cli cli;
  std::vector<Flag> flags;
  collect_numeric_flags(&cli.app, {}, flags);
  ASSERT_GT(flags.size(), 40u);  // the walk reached the commands' flags, not only the global ones
  for (const Flag& flag : flags)
    for (const char* value : {"nan", "inf", "-inf", "1e300", "-1e300"})
      EXPECT_NE(cli.value_error(flag, value), "") << describe(flag) << " accepts " << value;
}

TEST(CliFlags, CountsRefuseNegativeValues) {
  Cli cli;
  std::vector<Flag> flags;
  collect_numeric_flags(&cli.app, {}, flags);
  size_t counts = 0;
  for (const Flag& flag : flags) {
    if (flag.type.rfind("FLOAT", 0) == 0) continue;
    ++counts;
    EXPECT_NE(cli.value_error(flag, "-5"), "") << describe(flag) << " accepts -5";
  }
  EXPECT_GT(counts, 20u);
}

TEST(CliFlags, SensibleValuesPass) {
  // The walk above would pass vacuously if every value failed: in-range values must parse.
  Cli cli;
  EXPECT_EQ(cli.value_error({{"sample"}, "--cfg", "FLOAT"}, "3"), "");
  EXPECT_EQ(cli.value_error({{"sample"}, "--eta", "FLOAT"}, "0.5"), "");
  EXPECT_EQ(cli.value_error({{"pretrain", "teacher"}, "--steps", "INT"}, "100"), "");
  EXPECT_EQ(cli.value_error({{}, "--threads", "INT"}, "2"), "");
  EXPECT_NE(cli.value_error({{"sample"}, "--cfg", "FLOAT"}, "1001"), "");
  EXPECT_NE(cli.value_error({{"pretrain", "teacher"}, "--steps", "INT"}, "0"), "");
  // A path flag that names a file to read refuses one that does not exist while parsing.
  EXPECT_NE(cli.value_error({{"pretrain", "verifier"}, "--pool", "TEXT"}, "/nonexistent/pool.safetensors"), "");
  EXPECT_EQ(cli.value_error({{"pretrain", "verifier"}, "--pool", "TEXT"}, world_model_dir() + "/model_index.json"), "");
}

TEST(Threads, CappedAtTheCores) {
  bool capped = true;
  EXPECT_EQ(usable_threads(0, 8, &capped), 8);
  EXPECT_FALSE(capped);
  EXPECT_EQ(usable_threads(3, 8, &capped), 3);
  EXPECT_FALSE(capped);
  EXPECT_EQ(usable_threads(8, 8, &capped), 8);
  EXPECT_FALSE(capped);
  EXPECT_EQ(usable_threads(1000000, 8, &capped), 8);
  EXPECT_TRUE(capped);
  EXPECT_THROW(usable_threads(-1, 8), Error);
}

}  // namespace
}  // namespace rewardgen::cli
