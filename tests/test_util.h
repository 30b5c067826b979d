#pragma once
// Helpers shared by the tests: a temporary folder removed on scope exit, and expecting an Error
// whose message contains a text.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <string>

#include "core/error.h"
#include "models/layers.h"

namespace rewardgen::testing {

// The largest |a − b| over the elements, computed in double.
inline double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// Builds a model's parameters on the meta device: names, shapes and counts without their memory.
inline ModelOptions on_meta() {
  ModelOptions o;
  o.tensor = at::TensorOptions().dtype(at::kFloat).device(at::kMeta);
  return o;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "rewardgen_test_XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs `body`; passes when it throws rewardgen::Error whose message contains `needle`.
inline ::testing::AssertionResult throws_error_containing(const std::function<void()>& body, const std::string& needle) {
  try {
    body();
  } catch (const Error& e) {
    if (std::string(e.what()).find(needle) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "message '" << e.what() << "' lacks '" << needle << "'";
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw a non-rewardgen exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw (expected an error containing '" << needle << "')";
}

}  // namespace rewardgen::testing
