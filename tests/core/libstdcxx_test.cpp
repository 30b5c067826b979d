// Who serves std::filesystem to the test binary: libstdc++, on Debian's LibTorch because nothing
// shadows it, on PyTorch's LibTorch 2.x because test_main re-executed with libstdc++ preloaded
// (core/libstdcxx.h). Either way a crash-prone foreign copy would fail here, by name.
#include "core/libstdcxx.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace rewardgen {
namespace {

TEST(LibStdCxx, IsLoadedAndFound) {
  const std::string file = loaded_libstdcxx();
  ASSERT_FALSE(file.empty());
  EXPECT_NE(file.find("libstdc++"), std::string::npos) << file;
  EXPECT_TRUE(std::filesystem::exists(file)) << file;
}

TEST(LibStdCxx, ServesStdFilesystemToThisProcess) {
  EXPECT_EQ(libstdcxx_shadow(), "");
  // The function (no copy of it can live in the program) comes from libstdc++ itself.
  EXPECT_EQ(shared_object_serving(libstdcxx_probe_symbols().front()), loaded_libstdcxx());
}

TEST(LibStdCxx, AnUndefinedSymbolIsServedByNothing) {
  EXPECT_EQ(shared_object_serving("rewardgen_no_such_symbol_anywhere"), "");
}

}  // namespace
}  // namespace rewardgen
