#include "io/image.h"

#include <png.h>

#include <cstring>
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

at::Tensor load_png(const std::string& path) {
  png_image png;
  std::memset(&png, 0, sizeof png);
  png.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&png, path.c_str()))
    throw Error(str("cannot read PNG '", path, "': ", png.message));
  png.format = PNG_FORMAT_RGB;
  at::Tensor rgb = at::empty({static_cast<int64_t>(png.height), static_cast<int64_t>(png.width), 3}, at::kByte);
  if (!png_image_finish_read(&png, nullptr, rgb.data_ptr(), 0, nullptr)) {
    png_image_free(&png);
    throw Error(str("cannot decode PNG '", path, "': ", png.message));
  }
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
