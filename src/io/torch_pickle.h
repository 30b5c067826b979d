#pragma once
// PyTorch checkpoints (`torch.save` since 1.6: a zip archive holding data.pkl and one record per
// storage) read as a flat name -> tensor map, so that `.pth`/`.pt` state dicts load like safetensors.
// The zip is read with LibTorch's PyTorchStreamReader; data.pkl with our own reader of the pickle
// subset torch.save emits (LibTorch 1.13's unpickler turns OrderedDict, i.e. every state_dict(),
// into None). Other Python objects in a checkpoint (argparse.Namespace, ...) are skipped, never run.
#include <string>

#include "io/safetensors.h"

namespace rewardgen {

// Reads `path` and returns its tensors (on the CPU, in their stored dtype). Nested dicts become
// dotted names unless the nesting is the usual training wrapper: when the top-level dict holds a
// "state_dict" (or "model") dict, only that dict is returned, and a leading "module." (DataParallel)
// is stripped from every name. Non-tensor entries (epoch counters, names) are skipped.
// Throws Error naming the file: missing, legacy (pre-1.6, non-zip) format, unreadable pickle.
TensorMap read_torch_checkpoint(const std::string& path);
// The same from the bytes of such a file; `label` names it in errors.
TensorMap read_torch_checkpoint_bytes(const std::string& bytes, const std::string& label);

// safetensors by extension (.safetensors), else a torch checkpoint (.pt, .pth, .bin, .ckpt).
TensorMap read_tensor_file(const std::string& path);

}  // namespace rewardgen
