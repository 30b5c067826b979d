#include "io/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/import_read.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace rewardgen {
namespace {

// A zip archive starts with a local file header, "PK\3\4"; torch.save's legacy format starts with
// a pickled magic number (protocol 2: 0x80 0x02).
bool is_zip(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

void flatten(const c10::IValue& value, const std::string& prefix, TensorMap& out, const std::string& path) {
  if (value.isTensor()) {
    if (prefix.empty()) throw Error(str(path, ": holds a single tensor, not a dict of named tensors"));
    out[prefix] = value.toTensor();
    return;
  }
  if (!value.isGenericDict()) return;  // numbers, strings, lists: bookkeeping, not weights
  for (const auto& entry : value.toGenericDict()) {
    if (!entry.key().isString()) continue;
    const std::string name = entry.key().toStringRef();
    flatten(entry.value(), prefix.empty() ? name : prefix + "." + name, out, path);
  }
}

// The dict of weights inside a training checkpoint: {"state_dict": {...}, "epoch": ...}.
c10::IValue weights_of(const c10::IValue& root) {
  if (!root.isGenericDict()) return root;
  const auto dict = root.toGenericDict();
  for (const char* key : {"state_dict", "model"}) {
    auto it = dict.find(c10::IValue(std::string(key)));
    if (it != dict.end() && it->value().isGenericDict()) return it->value();
  }
  return root;
}

}  // namespace

TensorMap read_torch_checkpoint(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw Error(str("cannot open '", path, "': no such file"));
  if (!is_zip(path))
    throw Error(str(path, ": not a zip-format PyTorch checkpoint (the legacy format of torch < 1.6 is not read); "
                    "re-save it with a newer torch.save or convert it to safetensors"));
  c10::IValue root;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    root = torch::jit::readArchiveAndTensors("data", "", "", c10::nullopt, c10::nullopt, at::Device(at::kCPU), reader);
  } catch (const c10::Error& e) {
    const std::string message = e.what_without_backtrace();
    throw Error(str(path, ": cannot read the PyTorch checkpoint: ", message.substr(0, message.find('\n'))));
  }
  TensorMap out;
  flatten(weights_of(root), "", out, path);
  if (out.empty()) throw Error(str(path, ": the checkpoint holds no tensors"));
  bool all_wrapped = true;  // nn.DataParallel saves "module.<name>"
  for (const auto& [name, t] : out) all_wrapped = all_wrapped && name.rfind("module.", 0) == 0;
  if (!all_wrapped) return out;
  TensorMap stripped;
  for (auto& [name, t] : out) stripped[name.substr(7)] = t;
  return stripped;
}

TensorMap read_tensor_file(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".safetensors") return SafetensorsFile::open(path).load_all();
  return read_torch_checkpoint(path);
}

}  // namespace rewardgen
