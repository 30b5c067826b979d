#include "rewards/jpeg.h"

#include <turbojpeg.h>

#include <memory>

#include "core/error.h"
#include "io/image.h"

namespace rewardgen {
namespace {

struct TjHandle {
  tjhandle handle = tjInitCompress();
  ~TjHandle() {
    if (handle) tjDestroy(handle);
  }
};

}  // namespace

int64_t jpeg_size_bytes(const at::Tensor& rgb8, int quality) {
  if (rgb8.dim() != 3 || rgb8.size(2) != 3 || rgb8.scalar_type() != at::kByte)
    throw Error(str("JPEG encoding: expected uint8 [H, W, 3], got ", rgb8.scalar_type(), " ", rgb8.sizes()));
  if (quality < 1 || quality > 100) throw Error(str("JPEG encoding: quality ", quality, " is outside [1, 100]"));
  const at::Tensor pixels = rgb8.to(at::kCPU).contiguous();
  const int width = static_cast<int>(pixels.size(1)), height = static_cast<int>(pixels.size(0));
  TjHandle tj;
  if (!tj.handle) throw Error("JPEG encoding: tjInitCompress failed");
  // Encode into a buffer of the worst-case size so that libturbojpeg never reallocates.
  std::vector<unsigned char> buffer(tjBufSize(width, height, TJSAMP_420));
  unsigned char* out = buffer.data();
  unsigned long size = static_cast<unsigned long>(buffer.size());
  // TJFLAG_ACCURATEDCT: below quality 96 TurboJPEG would pick the fast integer DCT; PIL (libjpeg's
  // default) uses the accurate islow DCT, and the sizes differ by a few bytes.
  if (tjCompress2(tj.handle, pixels.data_ptr<uint8_t>(), width, 0, height, TJPF_RGB, &out, &size, TJSAMP_420, quality,
                  TJFLAG_NOREALLOC | TJFLAG_ACCURATEDCT) != 0)
    throw Error(str("JPEG encoding of a ", width, "x", height, " image failed: ", tjGetErrorStr2(tj.handle)));
  return static_cast<int64_t>(size);
}

JpegReward::JpegReward(bool compressibility, const RewardContext& context, std::string name)
    : compressibility_(compressibility), dtype_(context.dtype), name_(std::move(name)) {}

at::Tensor JpegReward::score(const at::Tensor& images, const std::vector<std::string>& prompts) {
  check_reward_inputs(name(), images, prompts);
  const int64_t B = images.size(0);
  const at::Tensor rgb8 = to_rgb8(images);  // [B, H, W, 3], the whole batch in one pass
  std::vector<double> kb(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i)
    kb[static_cast<size_t>(i)] = static_cast<double>(jpeg_size_bytes(rgb8[i])) / 1000.0;
  const at::Tensor size = at::tensor(kb, at::kDouble);  // [B], kB
  return (compressibility_ ? -size : size).to(images.device(), dtype_);
}

}  // namespace rewardgen
