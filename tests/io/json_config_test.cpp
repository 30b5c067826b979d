#include "io/json_config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>

#include "core/log.h"
#include "io/atomic_file.h"
#include "test_util.h"

namespace rewardgen {
namespace {

using testing::TempDir;
using testing::throws_error_containing;

struct Example {
  int64_t steps = 10;
  double lr = 1e-4;
  bool ema = false;
  std::string method = "r0";
  std::vector<int64_t> timesteps{999, 499};
  int batch = 8;
};

void read(ConfigReader& r, Example& e) {
  r.optional("steps", e.steps, at_least(1))
      .optional("lr", e.lr, positive())
      .optional("ema", e.ema)
      .optional_choice("method", e.method, {"r0", "rlcm"})
      .optional("timesteps", e.timesteps);
  r.child("data").optional("batch", e.batch, between(1, 1024));
}

TEST(JsonConfig, ANumberBeyondADoubleNamesTheFile) {
  TempDir dir;
  write_file_atomic(dir.file("run.json"), R"({"trainer": {"lr": 1e999}})");
  EXPECT_TRUE(throws_error_containing([&] { load_json_file(dir.file("run.json")); }, "run.json: invalid JSON: [json.exception.out_of_range.406]"));
}

TEST(JsonConfig, KeepsDefaultsAndReadsPresentKeys) {
  const Json j = Json::parse(R"({"lr": 0.5, "ema": true, "timesteps": [999, 749, 499], "data": {"batch": 64}})");
  Example e;
  ConfigReader r(j, "run.json");
  read(r, e);
  EXPECT_EQ(e.steps, 10);  // default kept
  EXPECT_DOUBLE_EQ(e.lr, 0.5);
  EXPECT_TRUE(e.ema);
  EXPECT_EQ(e.method, "r0");
  EXPECT_EQ(e.timesteps, (std::vector<int64_t>{999, 749, 499}));
  EXPECT_EQ(e.batch, 64);
  EXPECT_TRUE(r.unknown_keys().empty());
}

TEST(JsonConfig, WrongTypesAndRangesNameFileKeyAndValue) {
  auto fails = [](const char* text, const std::string& message) {
    const Json j = Json::parse(text);
    Example e;
    ConfigReader r(j, "cfg.json");
    return throws_error_containing([&] { read(r, e); }, message);
  };
  EXPECT_TRUE(fails(R"({"steps": 2.5})", "cfg.json: key 'steps' must be an integer, got 2.5"));
  EXPECT_TRUE(fails(R"({"steps": 0})", "cfg.json: key 'steps' must be >= 1, got 0"));
  EXPECT_TRUE(fails(R"({"lr": "fast"})", "key 'lr' must be a number, got \"fast\""));
  EXPECT_TRUE(fails(R"({"lr": 0})", "key 'lr' must be > 0, got 0"));
  EXPECT_TRUE(fails(R"({"ema": 1})", "key 'ema' must be true or false, got 1"));
  EXPECT_TRUE(fails(R"({"method": "ddpm"})", "key 'method' must be one of {r0, rlcm}, got \"ddpm\""));
  EXPECT_TRUE(fails(R"({"timesteps": [999, "x"]})", "key 'timesteps' must be an array of integers"));
  EXPECT_TRUE(fails(R"({"data": {"batch": 4096}})", "key 'data.batch' must be [1, 1024], got 4096"));
  EXPECT_TRUE(fails(R"({"data": 3})", "key 'data' must be an object, got 3"));
}

TEST(JsonConfig, ReportsUnknownKeysWithTheirDottedPaths) {
  const Json j = Json::parse(R"({"lr": 1e-3, "lrr": 1, "data": {"batch": 4, "bacth": 5}, "extra": {"x": 1}})");
  Example e;
  ConfigReader r(j, "typo.json");
  read(r, e);
  EXPECT_EQ(r.unknown_keys(), (std::vector<std::string>{"data.bacth", "extra", "lrr"}));
  std::ostringstream sink;
  r.warn_unknown(Logger(LogLevel::info, sink));
  EXPECT_EQ(sink.str(), "warning: typo.json: ignoring unknown key(s) 'data.bacth', 'extra', 'lrr'\n");
  EXPECT_TRUE(throws_error_containing([&] { r.reject_unknown(); }, "typo.json: unknown key(s) 'data.bacth'"));
}

TEST(JsonConfig, NullMeansDefaultAndIntOrListKeysBecomeLists) {
  const Json j = Json::parse(R"({"_class_name": "X", "lr": null, "heads": 8, "dims": [5, 10], "bad": "x"})");
  ConfigReader r(j, "d.json");
  double lr = 0.5;
  std::vector<int64_t> heads, dims;
  r.optional("lr", lr).optional_int_or_list("heads", heads).optional_int_or_list("dims", dims);
  EXPECT_EQ(lr, 0.5);
  EXPECT_EQ(heads, (std::vector<int64_t>{8}));
  EXPECT_EQ(dims, (std::vector<int64_t>{5, 10}));
  EXPECT_EQ(r.unknown_keys(), (std::vector<std::string>{"bad"}));
  EXPECT_TRUE(throws_error_containing([&] { r.optional_int_or_list("bad", dims); },
                                      "key 'bad' must be an integer or an array of integers, got \"x\""));
  EXPECT_TRUE(throws_error_containing([&] { r.required("lr", lr); }, "missing required key 'lr'"));
}

TEST(JsonConfig, RangesHoldOnlyFiniteNumbersAndCheckEveryElement) {
  EXPECT_FALSE(at_least(1).contains(std::numeric_limits<double>::infinity()));  // an open end is still finite
  EXPECT_FALSE(positive().contains(std::nan("")));
  EXPECT_TRUE(at_least(1).contains(1e300));
  EXPECT_EQ(between(1, 1 << 22).describe(), "[1, 4194304]");
  const Json j = Json::parse(R"({"heads": 8, "dims": [5, 0, 7], "zero": 0, "scales": [0.5, -1.5], "n": 3})");
  ConfigReader r(j, "e.json");
  std::vector<int64_t> heads, dims;
  std::vector<double> scales;
  r.optional_int_or_list("heads", heads, at_least(1));
  EXPECT_EQ(heads, (std::vector<int64_t>{8}));
  EXPECT_TRUE(throws_error_containing([&] { r.optional("dims", dims, at_least(1)); }, "e.json: key 'dims[1]' must be >= 1, got 0"));
  EXPECT_TRUE(throws_error_containing([&] { r.optional_int_or_list("dims", dims, at_least(1)); }, "key 'dims[1]' must be >= 1"));
  EXPECT_TRUE(throws_error_containing([&] { r.optional_int_or_list("zero", heads, at_least(1)); }, "key 'zero' must be >= 1, got 0"));
  EXPECT_TRUE(throws_error_containing([&] { r.optional("scales", scales, positive()); }, "key 'scales[1]' must be > 0, got -1.5"));
  int64_t n = 0;
  EXPECT_TRUE(throws_error_containing([&] { r.required("missing", n, at_least(1)); }, "missing required key 'missing' (an integer, >= 1)"));
  r.required("n", n, between(1, 4));
  EXPECT_EQ(n, 3);
}

TEST(JsonConfig, RequiredKeysMustBePresent) {
  const Json j = Json::parse(R"({"a": 1})");
  ConfigReader r(j, "req.json");
  std::string name;
  EXPECT_TRUE(throws_error_containing([&] { r.required("name", name); }, "req.json: missing required key 'name' (a string)"));
}

TEST(JsonConfig, SyntaxErrorsGiveLineAndColumn) {
  TempDir dir;
  write_file_atomic(dir.file("bad.json"), "{\n  \"lr\": 0.1,\n  \"steps\": ,\n}\n");
  EXPECT_TRUE(throws_error_containing([&] { load_json_file(dir.file("bad.json")); }, "bad.json:3:12: invalid JSON"));
  EXPECT_TRUE(throws_error_containing([&] { load_json_file(dir.file("missing.json")); }, "cannot open"));
}

TEST(JsonConfig, SavedFilesLoadBack) {
  TempDir dir;
  const Json j = {{"lr", 0.25}, {"nested", {{"k", "v"}}}};
  save_json_file(dir.file("c.json"), j);
  EXPECT_EQ(load_json_file(dir.file("c.json")), j);
}

}  // namespace
}  // namespace rewardgen
