// load_png reads every PNG colour type and bit depth to the sample values as stored, so the same
// scene in any format gets the same pixels and so the same checker verdict; sizes are checked
// before decoding. The files are encoded here, byte by byte, as other tools write them (no gAMA).
#include "io/image.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <chrono>
#include <string>

#include "io/atomic_file.h"
#include "test_util.h"
#include "world/checker.h"
#include "world/prompts.h"
#include "world/render.h"

namespace rewardgen {
namespace {

using testing::TempDir;
using testing::throws_error_containing;

void put_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}

void put_chunk(std::string& png, const char* type, const std::string& data) {
  put_u32(png, static_cast<uint32_t>(data.size()));
  const std::string typed = std::string(type, 4) + data;
  png += typed;
  put_u32(png, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(typed.data()), static_cast<uInt>(typed.size()))));
}

// A PNG of `height` rows of `samples` (packed as the colour type and depth say; each row unfiltered).
std::string encode_png(uint32_t width, uint32_t height, int bit_depth, int colour_type, const std::string& samples,
                       const std::string& palette = "", const std::string& transparency = "") {
  std::string png("\x89PNG\r\n\x1a\n", 8), header;
  put_u32(header, width);
  put_u32(header, height);
  header += {static_cast<char>(bit_depth), static_cast<char>(colour_type), 0, 0, 0};
  put_chunk(png, "IHDR", header);
  if (!palette.empty()) put_chunk(png, "PLTE", palette);
  if (!transparency.empty()) put_chunk(png, "tRNS", transparency);
  const size_t row_bytes = height == 0 ? 0 : samples.size() / height;
  std::string rows;
  for (uint32_t y = 0; y < height; ++y) rows += '\0' + samples.substr(y * row_bytes, row_bytes);  // filter 0: none
  uLongf size = compressBound(static_cast<uLong>(rows.size()));
  std::string compressed(size, '\0');
  compress2(reinterpret_cast<Bytef*>(compressed.data()), &size, reinterpret_cast<const Bytef*>(rows.data()),
            static_cast<uLong>(rows.size()), 6);
  compressed.resize(size);
  put_chunk(png, "IDAT", compressed);
  put_chunk(png, "IEND", "");
  return png;
}

// [H, W, 3] bytes of `image` in the layouts of each colour type.
std::string rgb_samples(const at::Tensor& rgb8, int bytes_per_sample, bool alpha) {
  std::string out;
  const uint8_t* p = rgb8.data_ptr<uint8_t>();
  for (int64_t i = 0; i < rgb8.numel(); ++i) {
    for (int b = 0; b < bytes_per_sample; ++b) out += static_cast<char>(p[i]);  // 16 bits: v·257, big-endian
    if (alpha && i % 3 == 2)
      for (int b = 0; b < bytes_per_sample; ++b) out += '\xff';
  }
  return out;
}

at::Tensor decoded_rgb8(const TempDir& dir, const std::string& name, const std::string& png) {
  write_file_atomic(dir.file(name), png);
  return to_rgb8(load_png(dir.file(name)));
}

TEST(Png, TheSameSceneInEveryRgbFormatDecodesAlikeAndGetsTheSameVerdict) {
  TempDir dir;
  const std::string prompt = "a red circle to the left of a blue square";
  world::Rng rng(7);
  const at::Tensor scene = world::render(world::scene_for_prompt(world::parse_prompt(prompt), rng));
  const at::Tensor rgb8 = to_rgb8(scene);  // [64, 64, 3]
  ASSERT_TRUE(world::check(from_rgb8(rgb8), world::parse_prompt(prompt)).passed);
  save_png(dir.file("ours.png"), scene);
  const std::vector<std::pair<std::string, std::string>> files = {
      {"ours", read_text_file(dir.file("ours.png"))},
      {"rgb8", encode_png(64, 64, 8, 2, rgb_samples(rgb8, 1, false))},
      {"rgb16", encode_png(64, 64, 16, 2, rgb_samples(rgb8, 2, false))},
      {"rgba8", encode_png(64, 64, 8, 6, rgb_samples(rgb8, 1, true))},
      {"rgba16", encode_png(64, 64, 16, 6, rgb_samples(rgb8, 2, true))}};
  for (const auto& [name, png] : files) {
    const at::Tensor decoded = decoded_rgb8(dir, name + ".png", png);
    EXPECT_TRUE(at::equal(decoded, rgb8)) << name;
    EXPECT_TRUE(world::check(from_rgb8(decoded), world::parse_prompt(prompt)).passed) << name;
  }
}

TEST(Png, GreyPaletteAndSixteenBitSamplesKeepTheirValues) {
  TempDir dir;
  // Grey 8 and 16 bits: r = g = b = the stored value; 16 bits round v·255/65535 to the nearest.
  const std::string grey8 = {'\x00', '\x7f', '\x80', '\xff'};
  const at::Tensor expected_grey = at::tensor({0, 127, 128, 255}, at::kByte).view({1, 4, 1}).expand({1, 4, 3});
  EXPECT_TRUE(at::equal(decoded_rgb8(dir, "g8.png", encode_png(4, 1, 8, 0, grey8)), expected_grey));
  const std::string grey16 = {'\x00', '\x00', '\x7f', '\xff', '\x80', '\x80', '\xff', '\xff'};  // 0, 32767, 32896, 65535
  EXPECT_TRUE(at::equal(decoded_rgb8(dir, "g16.png", encode_png(4, 1, 16, 0, grey16)), expected_grey));
  // Grey of 2 bits: 0..3 -> 0, 85, 170, 255.
  const std::string grey2 = {'\x1b'};  // 00 01 10 11
  const at::Tensor expected_grey2 = at::tensor({0, 85, 170, 255}, at::kByte).view({1, 4, 1}).expand({1, 4, 3});
  EXPECT_TRUE(at::equal(decoded_rgb8(dir, "g2.png", encode_png(4, 1, 2, 0, grey2)), expected_grey2));
  // Palette of 4 bits: indices 1, 0 into {red, blue}.
  const std::string palette = {'\xff', '\x00', '\x00', '\x00', '\x00', '\xff'};
  const at::Tensor expected_palette = at::tensor({0, 0, 255, 255, 0, 0}, at::kByte).view({1, 2, 3});
  EXPECT_TRUE(at::equal(decoded_rgb8(dir, "p4.png", encode_png(2, 1, 4, 3, std::string(1, '\x10'), palette)), expected_palette));
  // Alpha: composited onto black, (c·a + 127) / 255.
  const std::string grey_alpha = {'\xff', '\x00', '\xff', '\x80', '\xff', '\xff'};
  const at::Tensor expected_alpha = at::tensor({0, 128, 255}, at::kByte).view({1, 3, 1}).expand({1, 3, 3});
  EXPECT_TRUE(at::equal(decoded_rgb8(dir, "ga8.png", encode_png(3, 1, 8, 4, grey_alpha)), expected_alpha));
}

TEST(Png, SizesAreCheckedBeforeDecodingAndBrokenFilesNamed) {
  TempDir dir;
  const auto start = std::chrono::steady_clock::now();
  // Headers that claim huge images, with one byte of data: refused from the header alone.
  write_file_atomic(dir.file("wide.png"), encode_png(100000, 1, 8, 2, "x"));
  EXPECT_TRUE(throws_error_containing([&] { load_png(dir.file("wide.png")); }, "exceeds user limit"));
  write_file_atomic(dir.file("big.png"), encode_png(9000, 9000, 8, 2, std::string(9000, 'x')));
  EXPECT_TRUE(throws_error_containing([&] { load_png(dir.file("big.png")); }, "pixels is more than"));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0);
  // Truncated, not a PNG, missing.
  const std::string good = encode_png(4, 1, 8, 0, std::string(4, '\x10'));
  write_file_atomic(dir.file("cut.png"), good.substr(0, good.size() - 20));
  EXPECT_TRUE(throws_error_containing([&] { load_png(dir.file("cut.png")); }, "cut.png"));
  write_file_atomic(dir.file("text.png"), "hello, world");
  EXPECT_TRUE(throws_error_containing([&] { load_png(dir.file("text.png")); }, "not a PNG file"));
  EXPECT_TRUE(throws_error_containing([&] { load_png(dir.file("missing.png")); }, "cannot read PNG"));
}

}  // namespace
}  // namespace rewardgen
