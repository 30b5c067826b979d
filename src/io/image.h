#pragma once
// Images on disk: PNG read/write through libpng, JPEG reading through libturbojpeg, and image grids. In memory an
// image is float [3, H, W] (a batch [B, 3, H, W]) in [-1, 1], the convention across rooms (docs/architecture.md).
#include <ATen/ATen.h>

#include <string>

namespace rewardgen {

// Writes an RGB PNG (values clamped to [-1, 1], rounded to 8 bits), atomically.
void save_png(const std::string& path, const at::Tensor& image);  // [3, H, W]
// Reads a PNG of any colour type and bit depth as RGB: [3, H, W] in [-1, 1], from the sample values
// as stored (16 bits rounded to 8, grey replicated, palette expanded, alpha composited onto black,
// no gamma conversion), so the same scene in any format decodes alike. At most 8192 x 8192 pixels,
// checked before decoding; Error naming the file otherwise.
at::Tensor load_png(const std::string& path);
// The same from the bytes of a PNG file; `label` names it in errors.
at::Tensor decode_png(const std::string& bytes, const std::string& label);
// A baseline or progressive JPEG (grey, YCbCr or RGB) as RGB [3, H, W] in [-1, 1], decoded with the
// accurate DCT; the same size limit, checked from the header. Corrupt or truncated data is an Error,
// never a partly grey image (libjpeg's warnings are fatal here), and so is a CMYK file.
at::Tensor decode_jpeg(const std::string& bytes, const std::string& label);
// A PNG or a JPEG, told apart by their signatures, not by the file's extension.
at::Tensor load_image(const std::string& path);
// 8-bit RGB bytes [H, W, 3] (uint8) <-> [3, H, W] in [-1, 1]. to_rgb8 also takes a batch
// [B, 3, H, W] -> [B, H, W, 3] (one pass instead of one per image).
at::Tensor to_rgb8(const at::Tensor& image);
at::Tensor from_rgb8(const at::Tensor& rgb8);

// Tiles a batch [B, 3, H, W] into rows of `columns` images with `padding` pixels of `fill` between.
at::Tensor make_grid(const at::Tensor& images, int64_t columns, int64_t padding = 2, double fill = 1.0);

}  // namespace rewardgen
