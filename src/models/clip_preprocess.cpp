#include "models/clip_preprocess.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"

namespace rewardgen {

double pil_bicubic(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

at::Tensor bicubic_resample_matrix(int64_t in, int64_t out) {
  if (in < 1 || out < 1) throw Error(str("bicubic resize: sizes must be positive, got ", in, " -> ", out));
  constexpr double kSupport = 2.0;  // the bicubic kernel's half-width in input pixels at scale 1
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  const double filter_scale = std::max(scale, 1.0);  // antialias: stretch the kernel when shrinking
  const double support = kSupport * filter_scale;
  std::vector<double> r(static_cast<size_t>(in * out), 0.0);
  for (int64_t i = 0; i < out; ++i) {
    const double center = (static_cast<double>(i) + 0.5) * scale;  // output pixel centre in input coordinates
    // PIL truncates with a C cast; max() then clamps the negative side, as Resample.c does.
    const int64_t lo = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    const int64_t hi = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in);
    double total = 0.0;
    for (int64_t x = lo; x < hi; ++x) {
      const double w = pil_bicubic((static_cast<double>(x) - center + 0.5) / filter_scale);
      r[static_cast<size_t>(i * in + x)] = w;
      total += w;
    }
    if (total != 0.0)
      for (int64_t x = lo; x < hi; ++x) r[static_cast<size_t>(i * in + x)] /= total;  // weights sum to 1
  }
  return at::tensor(r, at::kDouble).view({out, in});
}

namespace {

// Resize matrices restricted to the rows kept by a crop: [rows, in] for both axes.
at::Tensor apply_resample(const at::Tensor& x, const at::Tensor& rh, const at::Tensor& rw) {
  const at::Tensor h = rh.to(x.options());
  const at::Tensor w = rw.to(x.options());
  return at::matmul(at::matmul(h, x), w.t());  // [..., H, W] -> [..., out_h, W] -> [..., out_h, out_w]
}

int64_t crop_offset(int64_t margin, bool torchvision) {
  // torchvision: int(round(margin / 2.0)), Python's round half to even; transformers: margin // 2.
  return torchvision ? static_cast<int64_t>(std::nearbyint(static_cast<double>(margin) / 2.0)) : margin / 2;
}

}  // namespace

at::Tensor resize_bicubic_antialias(const at::Tensor& x, int64_t out_h, int64_t out_w) {
  if (x.dim() < 2) throw Error(str("bicubic resize: expected [..., H, W], got ", x.sizes()));
  return apply_resample(x, bicubic_resample_matrix(x.size(-2), out_h), bicubic_resample_matrix(x.size(-1), out_w));
}

at::Tensor clip_preprocess(const at::Tensor& images, const ClipPreprocessOptions& o) {
  if (images.dim() != 4 || images.size(1) != 3)
    throw Error(str("CLIP preprocessing: images must be [B, 3, H, W], got ", images.sizes()));
  const int64_t H = images.size(2), W = images.size(3);
  const int64_t short_side = std::min(H, W), long_side = std::max(H, W);
  // int(size * long / short) in floating point, as transformers and torchvision compute it.
  const auto resized_long = static_cast<int64_t>(static_cast<double>(o.size) * static_cast<double>(long_side) /
                                                 static_cast<double>(short_side));
  const int64_t rh = H <= W ? o.size : resized_long, rw = H <= W ? resized_long : o.size;
  const int64_t top = crop_offset(rh - o.size, o.torchvision_crop), left = crop_offset(rw - o.size, o.torchvision_crop);
  const at::Tensor mh = bicubic_resample_matrix(H, rh).narrow(0, top, o.size);  // [size, H]
  const at::Tensor mw = bicubic_resample_matrix(W, rw).narrow(0, left, o.size);  // [size, W]
  const at::Tensor x = apply_resample(images, mh, mw);                          // [B, 3, size, size]
  const at::Tensor mean = at::tensor(std::vector<double>(o.mean.begin(), o.mean.end()), images.options()).view({1, 3, 1, 1});
  const at::Tensor stdev = at::tensor(std::vector<double>(o.std.begin(), o.std.end()), images.options()).view({1, 3, 1, 1});
  return ((x + 1) * 0.5 - mean) / stdev;  // [-1, 1] -> [0, 1] -> normalised
}

at::Tensor clip_image_embeddings(const ClipVisionModel& vision, const at::Tensor& images) {
  ClipPreprocessOptions options;
  options.size = vision.config().image_size;
  const at::Tensor pixels = clip_preprocess(images.to(vision.patch_embedding->weight.device()), options);
  const at::Tensor embeds = vision.forward(pixels).image_embeds.to(images.scalar_type());
  return embeds / embeds.norm(2, -1, true);
}

}  // namespace rewardgen
