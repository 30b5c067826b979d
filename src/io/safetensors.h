#pragma once
// safetensors (https://github.com/huggingface/safetensors, format spec in its README):
//   [8 bytes: N, little-endian u64] [N bytes: JSON header] [data section]
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative
// to the data section) plus an optional "__metadata__" string->string map. Reading maps the file
// (copy-on-write) and returns tensors that view it when their bytes are aligned, copies otherwise.
// Every structural rule of the format is validated on open; see docs/safetensors.md.
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace rewardgen {

using TensorMap = std::map<std::string, at::Tensor>;
using Metadata = std::map<std::string, std::string>;

inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;  // the reference reader's bound

// "F32" <-> at::kFloat, ... for F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL; throws Error otherwise.
at::ScalarType safetensors_dtype_from_name(const std::string& name);
std::string safetensors_dtype_name(at::ScalarType dtype);

struct TensorInfo {
  std::string name;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range within the data section
  uint64_t nbytes() const { return end - begin; }
};

class SafetensorsFile {
 public:
  // Maps and validates `path`; throws Error naming the file (and tensor) on any violation.
  static SafetensorsFile open(const std::string& path);
  // Validates a file image held in memory; `label` names it in errors.
  static SafetensorsFile from_bytes(std::string bytes, const std::string& label);

  const std::string& label() const { return label_; }
  uint64_t file_size() const { return file_size_; }
  uint64_t header_size() const { return header_size_; }  // N
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in data-offset order
  const Metadata& metadata() const { return metadata_; }

  bool contains(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // throws Error naming file and tensor
  // The tensor's values on the CPU in its stored dtype. Views the mapping when aligned; the
  // mapping stays alive as long as any returned tensor does. Writes never reach the file.
  at::Tensor tensor(const std::string& name) const;
  TensorMap load_all() const;

  struct Storage;  // the file's bytes: a private mapping or an in-memory copy (opaque)

 private:
  SafetensorsFile(std::shared_ptr<const Storage> storage, std::string label);
  at::Tensor make_tensor(const TensorInfo& info) const;

  std::shared_ptr<const Storage> storage_;
  std::string label_;
  uint64_t file_size_ = 0, header_size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  Metadata metadata_;
};

// Writes atomically (temp file + fsync + rename). Tensors may live on any device and be
// non-contiguous; they are written in C order. Data is laid out largest element size first, so
// every tensor starts aligned to its element size, and the header is padded to 8 bytes.
void save_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata = {});
// The same bytes, in memory (tests, small files).
std::string serialize_safetensors(const TensorMap& tensors, const Metadata& metadata = {});

}  // namespace rewardgen
