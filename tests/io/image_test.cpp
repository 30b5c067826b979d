// load_png reads every PNG colour type and bit depth to the sample values as stored, so the same
// scene in any format gets the same pixels and so the same checker verdict; sizes are checked
// before decoding. The files are encoded here, byte by byte, as other tools write them (no gAMA).
// JPEGs (load_image) are encoded here by libturbojpeg in the layouts cameras and tools write.
#include "io/image.h"

#include <gtest/gtest.h>
#include <turbojpeg.h>
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

// The JPEG of `rgb8` ([H, W, 3] bytes) as libturbojpeg writes it; TJSAMP_GRAY stores the luma only.
std::string encode_jpeg(const at::Tensor& rgb8, int subsampling, int quality, bool progressive = false,
                        int pixel_format = TJPF_RGB) {
  tjhandle handle = tjInitCompress();
  unsigned char* out = nullptr;
  unsigned long size = 0;
  const int width = static_cast<int>(rgb8.size(1)), height = static_cast<int>(rgb8.size(0));
  const int flags = TJFLAG_ACCURATEDCT | (progressive ? TJFLAG_PROGRESSIVE : 0);
  const int status = tjCompress2(handle, rgb8.data_ptr<uint8_t>(), width, 0, height, pixel_format, &out, &size,
                                 subsampling, quality, flags);
  std::string bytes = status == 0 ? std::string(reinterpret_cast<const char*>(out), size) : std::string();
  tjFree(out);
  tjDestroy(handle);
  EXPECT_EQ(status, 0) << "tjCompress2 failed";
  return bytes;
}

at::Tensor loaded_rgb8(const TempDir& dir, const std::string& name, const std::string& bytes) {
  write_file_atomic(dir.file(name), bytes);
  return to_rgb8(load_image(dir.file(name)));
}

TEST(Jpeg, EveryLayoutDecodesCloseToTheSceneAndGetsTheSameVerdict) {
  TempDir dir;
  const std::string prompt = "a red circle to the left of a blue square";
  world::Rng rng(7);
  const at::Tensor scene = world::render(world::scene_for_prompt(world::parse_prompt(prompt), rng));
  const at::Tensor rgb8 = to_rgb8(scene);  // [64, 64, 3]
  struct Layout {
    std::string name;
    int subsampling, quality;
    bool progressive;
    int max_error;  // the largest |decoded - scene| over pixels and channels that the layout allows
  };
  // 4:4:4 at quality 100 loses only rounding; 4:2:0 blurs the colour edges of the shapes.
  for (const Layout& layout : {Layout{"444_q100", TJSAMP_444, 100, false, 4}, Layout{"420_q95", TJSAMP_420, 95, false, 128},
                               Layout{"422_q90_progressive", TJSAMP_422, 90, true, 128}}) {
    const at::Tensor decoded = loaded_rgb8(dir, layout.name + ".jpg", encode_jpeg(rgb8, layout.subsampling, layout.quality, layout.progressive));
    ASSERT_EQ(decoded.sizes(), rgb8.sizes()) << layout.name;
    const int max_error = (decoded.to(at::kInt) - rgb8.to(at::kInt)).abs().max().item<int>();
    EXPECT_LE(max_error, layout.max_error) << layout.name;
    EXPECT_GT((decoded.to(at::kInt) - rgb8.to(at::kInt)).abs().to(at::kFloat).mean().item<float>(), 0.0f) << layout.name << ": lossy, not a copy";
    EXPECT_TRUE(world::check(from_rgb8(decoded), world::parse_prompt(prompt)).passed) << layout.name;
  }
  // Grey: the luma replicated to r = g = b.
  const at::Tensor grey = loaded_rgb8(dir, "grey.jpg", encode_jpeg(rgb8, TJSAMP_GRAY, 95));
  EXPECT_TRUE(at::equal(grey.select(2, 0), grey.select(2, 1)) && at::equal(grey.select(2, 1), grey.select(2, 2)));
  // load_image reads a PNG as load_png does, whatever the file is called.
  save_png(dir.file("scene.jpg"), scene);
  EXPECT_TRUE(at::equal(to_rgb8(load_image(dir.file("scene.jpg"))), rgb8));
}

TEST(Jpeg, SizesAreCheckedFromTheHeaderAndCorruptDataIsAnError) {
  TempDir dir;
  const at::Tensor rgb8 = at::randint(0, 256, {64, 64, 3}, at::kByte);  // noise: the scan is most of the file
  const std::string good = encode_jpeg(rgb8, TJSAMP_420, 90);
  // A frame header (SOF0: FF C0, length, precision, height, width) patched to 60000 x 60000.
  std::string huge = good;
  const size_t sof = huge.find("\xff\xc0");
  ASSERT_NE(sof, std::string::npos);
  huge[sof + 5] = huge[sof + 7] = static_cast<char>(60000 >> 8);
  huge[sof + 6] = huge[sof + 8] = static_cast<char>(60000 & 0xff);
  const auto start = std::chrono::steady_clock::now();
  write_file_atomic(dir.file("huge.jpg"), huge);
  EXPECT_TRUE(throws_error_containing([&] { load_image(dir.file("huge.jpg")); }, "60000 x 60000 pixels is more than"));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 5.0);
  // Cut inside the scan data: libjpeg would fill the rest with grey and call it a warning.
  write_file_atomic(dir.file("cut.jpg"), good.substr(0, good.size() * 2 / 3));
  EXPECT_TRUE(throws_error_containing([&] { load_image(dir.file("cut.jpg")); }, "cannot decode JPEG"));
  // CMYK (written by print workflows) is refused by name, not decoded to wrong colours.
  const at::Tensor cmyk = at::randint(0, 256, {16, 16, 4}, at::kByte);
  write_file_atomic(dir.file("cmyk.jpg"), encode_jpeg(cmyk, TJSAMP_444, 90, false, TJPF_CMYK));
  EXPECT_TRUE(throws_error_containing([&] { load_image(dir.file("cmyk.jpg")); }, "CMYK"));
  // Neither format; a PNG signature with a JPEG body; a bare start marker.
  write_file_atomic(dir.file("text.jpg"), "hello, world");
  EXPECT_TRUE(throws_error_containing([&] { load_image(dir.file("text.jpg")); }, "neither a PNG nor a JPEG"));
  write_file_atomic(dir.file("soi.jpg"), std::string("\xff\xd8\xff", 3));
  EXPECT_TRUE(throws_error_containing([&] { load_image(dir.file("soi.jpg")); }, "soi.jpg"));
  EXPECT_TRUE(throws_error_containing([&] { decode_jpeg(std::string(), "empty"); }, "not a JPEG file"));
  EXPECT_TRUE(throws_error_containing([&] { load_image(dir.file("missing.jpg")); }, "cannot read image"));
}

}  // namespace
}  // namespace rewardgen
