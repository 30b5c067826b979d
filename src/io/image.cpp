#include "io/image.h"

#include <png.h>
#include <turbojpeg.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "io/atomic_file.h"

namespace rewardgen {

at::Tensor to_rgb8(const at::Tensor& image) {
  const bool batch = image.dim() == 4;
  if ((image.dim() != 3 && !batch) || image.size(batch ? 1 : 0) != 3)
    throw Error(str("an image must be [3, H, W] (or a batch [B, 3, H, W]), got ", image.sizes()));
  // [-1, 1] -> [0, 255], rounded; NaN becomes 0 so that a broken image is visibly black, not UB.
  const at::Tensor x = at::nan_to_num(image.detach().to(at::kCPU, at::kFloat), 0.0).clamp(-1, 1);
  const at::Tensor rgb = ((x + 1) * 127.5).round().to(at::kByte);
  return (batch ? rgb.permute({0, 2, 3, 1}) : rgb.permute({1, 2, 0})).contiguous();  // [(B,) H, W, 3]
}

at::Tensor from_rgb8(const at::Tensor& rgb8) {
  return rgb8.to(at::kFloat).permute({2, 0, 1}).contiguous() / 127.5 - 1.0;  // [3, H, W]
}

void save_png(const std::string& path, const at::Tensor& image) {
  const at::Tensor rgb = to_rgb8(image);
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  png.width = static_cast<png_uint_32>(rgb.size(1));
  png.height = static_cast<png_uint_32>(rgb.size(0));
  png.format = PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  if (!png_image_write_to_memory(&png, nullptr, &size, 0, rgb.data_ptr(), 0, nullptr))
    throw Error(str("cannot encode PNG '", path, "': ", png.message));
  std::vector<char> buffer(size);
  if (!png_image_write_to_memory(&png, buffer.data(), &size, 0, rgb.data_ptr(), 0, nullptr))
    throw Error(str("cannot encode PNG '", path, "': ", png.message));
  AtomicFileWriter writer(path);
  writer.write(buffer.data(), size);
  writer.commit();
}

namespace {

// Decoded images are bounded before any pixel is decoded: libpng refuses a larger IHDR itself.
constexpr png_uint_32 kMaxPngSide = 16384;
constexpr uint64_t kMaxImagePixels = uint64_t{1} << 26;  // 8192 x 8192, for JPEGs too
constexpr uint64_t kMaxImageFileBytes = uint64_t{1} << 30;

struct PngSource {
  const uint8_t* data;
  size_t size, offset;
  char error[256];    // libpng's message, copied before its longjmp
  char warning[256];  // its last warning: the detail of some errors ("Invalid IHDR data")
  std::string message() const { return warning[0] == '\0' ? std::string(error) : str(error, " (", warning, ")"); }
};

void read_png_bytes(png_structp png, png_bytep out, png_size_t n) {
  auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
  if (n > source->size - source->offset) png_error(png, "the file ends inside the image (truncated?)");
  std::memcpy(out, source->data + source->offset, n);
  source->offset += n;
}

void on_png_error(png_structp png, png_const_charp message) {
  auto* source = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(source->error, sizeof source->error, "%s", message);
  png_longjmp(png, 1);
}

void on_png_warning(png_structp png, png_const_charp message) {  // kept, not printed: an error may follow
  auto* source = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(source->warning, sizeof source->warning, "%s", message);
}

// libpng reports errors by longjmp to the setjmp of these two functions: they hold no C++ object
// with a destructor (a jump would skip it), only pointers into what the caller owns.
bool read_png_header(png_structp png, png_infop info, png_uint_32& width, png_uint_32& height) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_read_info(png, info);
  width = png_get_image_width(png, info);
  height = png_get_image_height(png, info);
  return true;
}

// Every colour type and depth to 8-bit RGBA, taking the stored sample values as they are: no
// gamma or colour-space conversion (a checker judges the values a writer stored, as PIL reads them).
bool decode_png_rgba(png_structp png, png_infop info, png_bytepp rows, png_uint_32 width) {
  if (setjmp(png_jmpbuf(png))) return false;
  png_set_expand(png);    // palette -> RGB, grey of 1, 2, 4 bits -> 8, tRNS -> alpha
  png_set_scale_16(png);  // 16 -> 8 bits, rounded: v * 255 / 65535
  png_set_gray_to_rgb(png);
  png_set_add_alpha(png, 0xff, PNG_FILLER_AFTER);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != static_cast<png_size_t>(width) * 4) png_error(png, "unexpected row size after conversion");
  png_read_image(png, rows);
  return true;
}

// The bytes of an image file: a regular file of at most 1 GiB (`kind` names the format in errors).
std::string read_image_file(const std::string& path, const char* kind) {
  try {
    require_regular_file(path);
  } catch (const Error& e) {
    throw Error(str("cannot read ", kind, ": ", e.what()));
  }
  const uint64_t file_bytes = std::filesystem::file_size(path);
  if (file_bytes > kMaxImageFileBytes) throw Error(str("cannot read ", kind, " '", path, "': ", file_bytes, " bytes is more than 1 GiB"));
  return read_text_file(path);
}

bool has_png_signature(const std::string& bytes) {
  return bytes.size() >= 8 && png_sig_cmp(reinterpret_cast<png_const_bytep>(bytes.data()), 0, 8) == 0;
}

bool has_jpeg_signature(const std::string& bytes) {  // SOI, then the first marker's 0xFF
  return bytes.size() >= 3 && static_cast<uint8_t>(bytes[0]) == 0xff && static_cast<uint8_t>(bytes[1]) == 0xd8 &&
         static_cast<uint8_t>(bytes[2]) == 0xff;
}

}  // namespace

at::Tensor load_png(const std::string& path) { return decode_png(read_image_file(path, "PNG"), path); }

at::Tensor load_image(const std::string& path) {
  const std::string bytes = read_image_file(path, "image");
  if (has_png_signature(bytes)) return decode_png(bytes, path);
  if (has_jpeg_signature(bytes)) return decode_jpeg(bytes, path);
  throw Error(str("cannot read image '", path, "': neither a PNG nor a JPEG file (no PNG signature, no JPEG start marker)"));
}

at::Tensor decode_png(const std::string& bytes, const std::string& path) {
  if (!has_png_signature(bytes))
    throw Error(str("cannot read PNG '", path, "': not a PNG file (no PNG signature)"));
  PngSource source{reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), 0, {}, {}};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, on_png_error, on_png_warning);
  png_infop info = png == nullptr ? nullptr : png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    throw Error(str("cannot read PNG '", path, "': out of memory"));
  }
  struct Release {  // frees libpng's structs on every path out of this function
    png_structp* png;
    png_infop* info;
    ~Release() { png_destroy_read_struct(png, info, nullptr); }
  } release{&png, &info};
  png_set_read_fn(png, &source, read_png_bytes);
  png_set_user_limits(png, kMaxPngSide, kMaxPngSide);
  png_uint_32 width = 0, height = 0;
  if (!read_png_header(png, info, width, height)) throw Error(str("cannot read PNG '", path, "': ", source.message()));
  if (uint64_t{width} * height > kMaxImagePixels)
    throw Error(str("cannot read PNG '", path, "': ", width, " x ", height, " pixels is more than ", kMaxImagePixels, " (8192 x 8192)"));
  at::Tensor rgba = at::empty({static_cast<int64_t>(height), static_cast<int64_t>(width), 4}, at::kByte);
  std::vector<png_bytep> rows(height);
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = rgba.data_ptr<uint8_t>() + static_cast<size_t>(y) * width * 4;
  if (!decode_png_rgba(png, info, rows.data(), width)) throw Error(str("cannot decode PNG '", path, "': ", source.message()));
  // Transparent pixels composited onto black, rounded: (c·a + 127) / 255 keeps c when a = 255.
  const at::Tensor wide = rgba.to(at::kInt);
  const at::Tensor rgb = (wide.slice(2, 0, 3) * wide.slice(2, 3, 4) + 127).div(255, "floor").to(at::kByte);
  return from_rgb8(rgb.contiguous());
}

at::Tensor decode_jpeg(const std::string& bytes, const std::string& label) {
  if (!has_jpeg_signature(bytes)) throw Error(str("cannot read JPEG '", label, "': not a JPEG file (no start-of-image marker)"));
  tjhandle handle = tjInitDecompress();
  if (handle == nullptr) throw Error(str("cannot read JPEG '", label, "': ", tjGetErrorStr2(nullptr)));
  struct Release {  // the decompressor, on every path out of this function
    tjhandle handle;
    ~Release() { tjDestroy(handle); }
  } release{handle};
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned long size = bytes.size();
  int width = 0, height = 0, subsampling = 0, colour_space = 0;
  if (tjDecompressHeader3(handle, data, size, &width, &height, &subsampling, &colour_space) != 0)
    throw Error(str("cannot read JPEG '", label, "': ", tjGetErrorStr2(handle)));
  if (width < 1 || height < 1) throw Error(str("cannot read JPEG '", label, "': its header gives ", width, " x ", height, " pixels"));
  if (uint64_t(width) * uint64_t(height) > kMaxImagePixels)
    throw Error(str("cannot read JPEG '", label, "': ", width, " x ", height, " pixels is more than ", kMaxImagePixels, " (8192 x 8192)"));
  if (colour_space == TJCS_CMYK || colour_space == TJCS_YCCK)
    throw Error(str("cannot read JPEG '", label, "': a CMYK image (convert it to RGB first)"));
  at::Tensor rgb = at::empty({height, width, 3}, at::kByte);
  // A warning (corrupt or missing data, which libjpeg fills with grey) stops the decoding, and so
  // does a progressive file of more than 500 scans (a file crafted to take minutes).
  const int flags = TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;
  if (tjDecompress2(handle, data, size, rgb.data_ptr<uint8_t>(), width, 0, height, TJPF_RGB, flags) != 0)
    throw Error(str("cannot decode JPEG '", label, "': ", tjGetErrorStr2(handle)));
  return from_rgb8(rgb);
}

at::Tensor make_grid(const at::Tensor& images, int64_t columns, int64_t padding, double fill) {
  if (images.dim() != 4 || images.size(1) != 3) throw Error(str("make_grid needs [B, 3, H, W], got ", images.sizes()));
  const int64_t B = images.size(0), H = images.size(2), W = images.size(3);
  const int64_t cols = std::max<int64_t>(1, std::min(columns, B)), rows = (B + cols - 1) / cols;
  at::Tensor grid = at::full({3, rows * (H + padding) + padding, cols * (W + padding) + padding}, fill, images.options());
  for (int64_t i = 0; i < B; ++i) {
    const int64_t top = padding + (i / cols) * (H + padding), left = padding + (i % cols) * (W + padding);
    grid.slice(1, top, top + H).slice(2, left, left + W).copy_(images[i]);
  }
  return grid;  // [3, rows·(H+p)+p, cols·(W+p)+p]
}

}  // namespace rewardgen
