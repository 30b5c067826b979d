#pragma once
// CLIP's image preprocessing, differentiable so that gradient methods can backprop through a
// CLIP-based reward. The references run on PIL images: transformers' CLIPImageProcessor and
// open_clip's eval transform both resize the shorter side to `size` with PIL's bicubic filter
// (antialiased: the kernel is stretched by the downscale factor), the longer side to
// int(size · long / short), centre crop size×size, then normalise with CLIP's mean/std.
// Here the resize is two matrix products, y = R_h x R_wᵀ, whose rows are PIL's filter weights
// (libImaging/Resample.c precompute_coeffs); the crop keeps rows of R_h and R_w. The references
// round the resized image to 8 bits; this does not (a difference of at most 1/255 per pixel).
#include <ATen/ATen.h>

#include <array>

#include "models/clip.h"

namespace rewardgen {

// PIL's bicubic kernel, a = −0.5 (Keys 1981): 1 − 2.5x² + 1.5|x|³ on |x| < 1,
// −0.5(|x|³ − 5x² + 8|x| − 4) on 1 ≤ |x| < 2, 0 beyond.
double pil_bicubic(double x);
// R [out, in] (float64) such that y = R x resamples a length-`in` signal to `out` samples like PIL's
// BICUBIC resize (= torch's interpolate(mode="bicubic", antialias=True, align_corners=False)).
at::Tensor bicubic_resample_matrix(int64_t in, int64_t out);
// Separable antialiased bicubic resize of x [..., H, W] -> [..., out_h, out_w], differentiable in x.
at::Tensor resize_bicubic_antialias(const at::Tensor& x, int64_t out_h, int64_t out_w);

struct ClipPreprocessOptions {
  int64_t size = 224;             // the vision tower's image_size
  bool torchvision_crop = false;  // crop offset round(margin/2) (torchvision, open_clip) vs margin/2 floored (transformers)
  std::array<double, 3> mean{0.48145466, 0.4578275, 0.40821073};
  std::array<double, 3> std{0.26862954, 0.26130258, 0.27577711};
};

// images [B, 3, H, W] in [-1, 1] -> pixel_values [B, 3, size, size] (CLIP-normalised), in the
// images' dtype and device.
at::Tensor clip_preprocess(const at::Tensor& images, const ClipPreprocessOptions& options = {});

// Unit-length image embeddings of a vision tower with projection: images [B, 3, H, W] in [-1, 1]
// are moved to the tower's device and preprocessed to its image_size; differentiable.
at::Tensor clip_image_embeddings(const ClipVisionModel& vision, const at::Tensor& images);

}  // namespace rewardgen
