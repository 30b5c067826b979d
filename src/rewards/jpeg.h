#pragma once
// JPEG compressibility / incompressibility (DDPO, arXiv 2305.13301 §6.1; RLCM, arXiv 2404.03673):
// the size of the image saved as JPEG at quality 95, in kB (bytes / 1000, as DDPO's
// `buffer.tell() / 1000`). compressibility = −size, incompressibility = +size. Not differentiable.
// The reference saves with PIL, `img.save(buf, format="JPEG", quality=95)`: libjpeg(-turbo) with
// 4:2:0 chroma subsampling, the islow DCT and the standard Huffman tables — what tjCompress2 does
// with TJSAMP_420 and TJFLAG_ACCURATEDCT, so the sizes agree byte for byte
// (tests/rewards/jpeg_test.cpp checks this against PIL).
#include "rewards/reward.h"

namespace rewardgen {

inline constexpr int kJpegQuality = 95;

// Size in bytes of the baseline JPEG of `rgb8` ([H, W, 3] uint8, as io/image.h's to_rgb8 gives).
int64_t jpeg_size_bytes(const at::Tensor& rgb8, int quality = kJpegQuality);

class JpegReward : public Reward {
 public:
  // sign −1: compressibility, +1: incompressibility. `name` replaces the registry name when set
  // (world.jpeg is the same reward under the world's name).
  JpegReward(bool compressibility, const RewardContext& context, std::string name = "");
  at::Tensor score(const at::Tensor& images, const std::vector<std::string>& prompts) override;
  bool differentiable() const override { return false; }
  std::string name() const override {
    return !name_.empty() ? name_ : compressibility_ ? "jpeg_compressibility" : "jpeg_incompressibility";
  }

 private:
  bool compressibility_;
  at::ScalarType dtype_;
  std::string name_;
};

}  // namespace rewardgen
