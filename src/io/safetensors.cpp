#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "core/error.h"
#include "io/atomic_file.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors IO assumes a little-endian host");

namespace rewardgen {

using Json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// dtypes

namespace {

struct DtypeName {
  const char* name;
  at::ScalarType dtype;
};
constexpr DtypeName kDtypes[] = {
    {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16},
    {"I64", at::kLong},   {"I32", at::kInt},   {"I16", at::kShort}, {"I8", at::kChar},
    {"U8", at::kByte},    {"BOOL", at::kBool},
};
constexpr const char* kDtypeList = "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL";

}  // namespace

at::ScalarType safetensors_dtype_from_name(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return d.dtype;
  throw Error(str("unsupported dtype '", name, "' (supported: ", kDtypeList, ")"));
}

std::string safetensors_dtype_name(at::ScalarType dtype) {
  for (const auto& d : kDtypes)
    if (dtype == d.dtype) return d.name;
  throw Error(str("dtype ", c10::toString(dtype), " cannot be stored in safetensors (supported: ",
                  kDtypeList, ")"));
}

// ---------------------------------------------------------------------------------------------
// storage: a private copy-on-write mapping of the file, or bytes held in memory

struct SafetensorsFile::Storage {
  const uint8_t* data = nullptr;
  uint64_t size = 0;
  void* mapping = nullptr;  // set when mmapped
  std::string bytes;        // set when in memory

  ~Storage() {
    if (mapping != nullptr) ::munmap(mapping, size);
  }
};

namespace {

struct ParsedHeader {
  uint64_t header_size = 0;
  std::vector<TensorInfo> tensors;
  Metadata metadata;
};

// Fails with a message naming the file, and the tensor when there is one.
[[noreturn]] void fail(const std::string& label, const std::string& what) {
  throw Error(str(label, ": invalid safetensors file: ", what));
}
[[noreturn]] void fail_tensor(const std::string& label, const std::string& tensor, const std::string& what) {
  throw Error(str(label, ": invalid safetensors file: tensor '", tensor, "': ", what));
}

// Finds a key repeated within one object (a parse keeps the last one silently). A SAX pass over
// the text: linear in the header, where a parse callback rescans the parent object at the end of
// every child (quadratic: 32k tensors took 17 s).
class DuplicateKeyFinder : public nlohmann::json_sax<Json> {
 public:
  std::string duplicate;

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys_.emplace_back();
    return true;
  }
  bool key(string_t& key) override {
    if (!keys_.back().insert(key).second && duplicate.empty()) duplicate = key;
    return true;
  }
  bool end_object() override {
    keys_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const Json::exception&) override { return false; }

 private:
  std::vector<std::unordered_set<std::string>> keys_;
};

// Parses JSON and rejects a key repeated within one object (the last one would silently win).
Json parse_json_rejecting_duplicates(const char* begin, const char* end, const std::string& label) {
  Json header;
  try {
    header = Json::parse(begin, end);
  } catch (const Json::exception& e) {
    fail(label, str("header is not valid JSON: ", e.what()));
  }
  DuplicateKeyFinder finder;
  Json::sax_parse(begin, end, &finder);  // valid JSON: the parse above succeeded
  if (!finder.duplicate.empty()) fail(label, str("header repeats the key '", finder.duplicate, "'"));
  return header;
}

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t value = 0;
  std::memcpy(&value, p, 8);
  return value;
}

Metadata parse_metadata(const Json& value, const std::string& label) {
  if (!value.is_object()) fail(label, "'__metadata__' must be an object of strings");
  Metadata metadata;
  for (const auto& [key, text] : value.items()) {
    if (!text.is_string()) fail(label, str("'__metadata__' value of '", key, "' must be a string, got ", text.dump()));
    metadata[key] = text.get<std::string>();
  }
  return metadata;
}

uint64_t non_negative_integer(const Json& value, const std::string& label, const std::string& tensor,
                              const char* field) {
  if (!value.is_number_unsigned())  // nlohmann stores every non-negative integer literal as unsigned
    fail_tensor(label, tensor, str("'", field, "' entries must be non-negative integers, got ", value.dump()));
  return value.get<uint64_t>();
}

TensorInfo parse_tensor_entry(const std::string& name, const Json& entry, const std::string& label) {
  if (name.empty()) fail(label, "a tensor has an empty name");
  if (!entry.is_object()) fail_tensor(label, name, "entry must be an object");
  for (const auto& [key, unused] : entry.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      fail_tensor(label, name, str("unexpected field '", key, "' (allowed: dtype, shape, data_offsets)"));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(field)) fail_tensor(label, name, str("missing field '", field, "'"));

  TensorInfo info;
  info.name = name;
  if (!entry["dtype"].is_string()) fail_tensor(label, name, "'dtype' must be a string");
  try {
    info.dtype = safetensors_dtype_from_name(entry["dtype"].get<std::string>());
  } catch (const Error& e) {
    fail_tensor(label, name, e.what());
  }
  const Json& shape = entry["shape"];
  if (!shape.is_array()) fail_tensor(label, name, "'shape' must be an array");
  uint64_t numel = 1;
  for (const Json& dim : shape) {
    const uint64_t d = non_negative_integer(dim, label, name, "shape");
    if (d > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, d, &numel))
      fail_tensor(label, name, str("shape ", shape.dump(), " overflows"));
    info.shape.push_back(static_cast<int64_t>(d));
  }
  const Json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2)
    fail_tensor(label, name, str("'data_offsets' must be [begin, end], got ", offsets.dump()));
  info.begin = non_negative_integer(offsets[0], label, name, "data_offsets");
  info.end = non_negative_integer(offsets[1], label, name, "data_offsets");
  if (info.end < info.begin)
    fail_tensor(label, name, str("data_offsets [", info.begin, ", ", info.end, "] end before they begin"));
  uint64_t expected_bytes = 0;
  if (__builtin_mul_overflow(numel, static_cast<uint64_t>(c10::elementSize(info.dtype)), &expected_bytes))
    fail_tensor(label, name, str("shape ", shape.dump(), " overflows"));
  if (info.nbytes() != expected_bytes)
    fail_tensor(label, name, str("dtype ", entry["dtype"].get<std::string>(), " and shape ", shape.dump(), " need ",
                                 expected_bytes, " bytes but data_offsets [", info.begin, ", ", info.end,
                                 "] span ", info.nbytes()));
  return info;
}

// The data section must be covered exactly: no overlaps, no holes, nothing past its end.
void check_coverage(std::vector<TensorInfo>& tensors, uint64_t data_size, const std::string& label) {
  for (const TensorInfo& t : tensors)
    if (t.end > data_size)
      fail_tensor(label, t.name, str("data_offsets [", t.begin, ", ", t.end, "] run past the end of the ",
                                     data_size, "-byte data section (truncated file?)"));
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : tensors) {
    if (t.begin < covered)
      fail_tensor(label, t.name, str("data_offsets [", t.begin, ", ", t.end, "] overlap tensor '",
                                     previous->name, "' [", previous->begin, ", ", previous->end, "]"));
    if (t.begin > covered)
      fail_tensor(label, t.name, str("data_offsets [", t.begin, ", ", t.end, "] leave a gap of ",
                                     t.begin - covered, " unindexed bytes before them"));
    covered = t.end;
    previous = &t;
  }
  if (covered != data_size)
    fail(label, str("the data section has ", data_size - covered,
                    " trailing bytes that no tensor indexes (data section ", data_size, " bytes)"));
}

ParsedHeader parse_header(const uint8_t* data, uint64_t size, const std::string& label) {
  if (size < 8) fail(label, str("file is ", size, " bytes, shorter than the 8-byte header length"));
  ParsedHeader parsed;
  parsed.header_size = read_u64_le(data);
  const uint64_t n = parsed.header_size;
  if (n > kSafetensorsMaxHeaderBytes)
    fail(label, str("header length ", n, " exceeds the limit of ", kSafetensorsMaxHeaderBytes, " bytes"));
  if (n > size - 8) fail(label, str("header length ", n, " runs past the end of the ", size, "-byte file"));
  if (n < 2 || data[8] != '{') fail(label, "header must be a JSON object starting with '{'");
  const char* text = reinterpret_cast<const char*>(data + 8);
  const Json header = parse_json_rejecting_duplicates(text, text + n, label);
  if (!header.is_object()) fail(label, "header must be a JSON object");
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__")
      parsed.metadata = parse_metadata(value, label);
    else
      parsed.tensors.push_back(parse_tensor_entry(key, value, label));
  }
  check_coverage(parsed.tensors, size - 8 - n, label);
  return parsed;
}

std::shared_ptr<SafetensorsFile::Storage> map_file(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat below then refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) throw Error(str("cannot open '", path, "': ", std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(str("cannot read '", path, "': it is not a regular file"));
  }
  auto storage = std::make_shared<SafetensorsFile::Storage>();
  storage->size = static_cast<uint64_t>(st.st_size);
  if (storage->size > 0) {
    // Private + writable: tensors viewing the map may be modified in place without touching the file.
    void* p = ::mmap(nullptr, storage->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      throw Error(str("cannot map '", path, "': ", std::strerror(err)));
    }
    storage->mapping = p;
    storage->data = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return storage;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// reading

SafetensorsFile::SafetensorsFile(std::shared_ptr<const Storage> storage, std::string label)
    : storage_(std::move(storage)), label_(std::move(label)) {
  ParsedHeader parsed = parse_header(storage_->data, storage_->size, label_);
  file_size_ = storage_->size;
  header_size_ = parsed.header_size;
  tensors_ = std::move(parsed.tensors);
  metadata_ = std::move(parsed.metadata);
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) { return SafetensorsFile(map_file(path), path); }

SafetensorsFile SafetensorsFile::from_bytes(std::string bytes, const std::string& label) {
  auto storage = std::make_shared<Storage>();
  storage->bytes = std::move(bytes);
  storage->data = reinterpret_cast<const uint8_t*>(storage->bytes.data());
  storage->size = storage->bytes.size();
  return SafetensorsFile(std::move(storage), label);
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end())
    throw Error(str(label_, ": no tensor named '", name, "' (the file holds ", tensors_.size(), " tensors)"));
  return tensors_[it->second];
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const { return make_tensor(info(name)); }

at::Tensor SafetensorsFile::make_tensor(const TensorInfo& info) const {
  const auto options = at::TensorOptions().dtype(info.dtype).device(at::kCPU);
  const uint8_t* bytes = storage_->data + 8 + header_size_ + info.begin;
  if (info.dtype == at::kBool)
    for (uint64_t i = 0; i < info.nbytes(); ++i)
      if (bytes[i] > 1)
        throw Error(str(label_, ": tensor '", info.name, "': BOOL byte ", i, " holds ", int(bytes[i]),
                        " (must be 0 or 1)"));
  if (info.nbytes() == 0) return at::empty(info.shape, options);
  if (reinterpret_cast<uintptr_t>(bytes) % c10::elementSize(info.dtype) == 0) {
    // Zero-copy: the tensor keeps the storage (and so the mapping) alive through its deleter.
    std::shared_ptr<const Storage> keep = storage_;
    return at::from_blob(const_cast<uint8_t*>(bytes), info.shape, [keep](void*) {}, options);
  }
  at::Tensor copy = at::empty(info.shape, options);
  std::memcpy(copy.data_ptr(), bytes, info.nbytes());
  return copy;
}

TensorMap SafetensorsFile::load_all() const {
  TensorMap out;
  for (const TensorInfo& t : tensors_) out[t.name] = make_tensor(t);
  return out;
}

// ---------------------------------------------------------------------------------------------
// writing

namespace {

struct Layout {
  std::string prefix;  // 8-byte length + padded header
  std::vector<at::Tensor> data;  // CPU, contiguous, in data order
};

Layout plan_layout(const TensorMap& tensors, const Metadata& metadata) {
  std::vector<std::pair<std::string, at::Tensor>> ordered;
  for (const auto& [name, t] : tensors) {
    if (name.empty()) throw Error("safetensors: a tensor has an empty name");
    if (name == "__metadata__") throw Error("safetensors: '__metadata__' is reserved and cannot name a tensor");
    if (!t.defined()) throw Error(str("safetensors: tensor '", name, "' is undefined"));
    safetensors_dtype_name(t.scalar_type());  // throws for unsupported dtypes
    ordered.emplace_back(name, t);
  }
  // Largest element first: every tensor then begins at a multiple of its element size.
  std::stable_sort(ordered.begin(), ordered.end(), [](const auto& a, const auto& b) {
    return a.second.element_size() > b.second.element_size();
  });
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  Layout layout;
  uint64_t offset = 0;
  for (const auto& [name, t] : ordered) {
    at::Tensor cpu = t.detach().to(at::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(cpu.numel()) * cpu.element_size();
    header[name] = {{"dtype", safetensors_dtype_name(cpu.scalar_type())},
                    {"shape", cpu.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    layout.data.push_back(std::move(cpu));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
  const uint64_t n = text.size();
  layout.prefix.assign(reinterpret_cast<const char*>(&n), 8);
  layout.prefix += text;
  return layout;
}

}  // namespace

void save_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata) {
  const Layout layout = plan_layout(tensors, metadata);
  AtomicFileWriter writer(path);
  writer.write(layout.prefix);
  for (const at::Tensor& t : layout.data) writer.write(t.data_ptr(), t.numel() * t.element_size());
  writer.commit();
}

std::string serialize_safetensors(const TensorMap& tensors, const Metadata& metadata) {
  const Layout layout = plan_layout(tensors, metadata);
  std::string out = layout.prefix;
  for (const at::Tensor& t : layout.data)
    out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  return out;
}

}  // namespace rewardgen
