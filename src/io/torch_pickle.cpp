#include "io/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <filesystem>
#include <sstream>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "io/atomic_file.h"

namespace rewardgen {
namespace {

// LibTorch's own unpickler (torch::jit::readArchiveAndTensors) turns collections.OrderedDict into
// None — it only expects OrderedDicts as a tensor's empty backward hooks — so it cannot read a
// state_dict(). This is a reader of the pickle subset torch.save emits (protocol 2, plus the
// protocol 4 framing opcodes): containers, numbers, strings, globals, REDUCE of the tensor
// rebuild functions and persistent ids naming storages in the zip archive. Nothing is executed:
// an unknown class becomes an opaque value, an error only if a tensor would depend on it.
struct Node;
using Ref = std::shared_ptr<Node>;
struct Node {
  enum class Kind { none, boolean, integer, floating, string, tuple, list, dict, global, tensor, mark, opaque } kind;
  int64_t i = 0;
  double d = 0;
  std::string s;                           // string, or "module.name" of a global
  std::vector<Ref> items;                  // tuple, list
  std::vector<std::pair<Ref, Ref>> entries;  // dict, in insertion order
  at::Tensor tensor;
};

Ref make(Node::Kind kind) {
  auto n = std::make_shared<Node>();
  n->kind = kind;
  return n;
}

at::ScalarType storage_dtype(const std::string& global, const std::string& source) {
  static const std::map<std::string, at::ScalarType> kTypes{
      {"torch.DoubleStorage", at::kDouble}, {"torch.FloatStorage", at::kFloat},  {"torch.HalfStorage", at::kHalf},
      {"torch.BFloat16Storage", at::kBFloat16}, {"torch.LongStorage", at::kLong}, {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort}, {"torch.CharStorage", at::kChar},      {"torch.ByteStorage", at::kByte},
      {"torch.BoolStorage", at::kBool}};
  auto it = kTypes.find(global);
  if (it == kTypes.end()) throw Error(str(source, ": unsupported storage type '", global, "'"));
  return it->second;
}

class Unpickler {
 public:
  Unpickler(caffe2::serialize::PyTorchStreamReader& reader, std::string source)
      : reader_(reader), source_(std::move(source)) {
    auto [ptr, size] = reader_.getRecord("data.pkl");
    data_.assign(static_cast<const char*>(ptr.get()), size);
  }
  ~Unpickler() {
    for (const Ref& node : nodes_) {
      node->items.clear();
      node->entries.clear();
    }
  }
  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;

  Ref run() {
    for (;;) {
      const auto op = static_cast<uint8_t>(byte());
      switch (op) {
        case 0x80: byte(); break;                // PROTO
        case 0x95: bytes(8); break;              // FRAME (protocol 4)
        case '.': return pop();                  // STOP
        case '(': push(make(Node::Kind::mark)); break;
        case 'N': push(make(Node::Kind::none)); break;
        case 0x88: case 0x89: {                  // NEWTRUE, NEWFALSE
          Ref b = make(Node::Kind::boolean);
          b->i = op == 0x88;
          push(b);
          break;
        }
        case 'J': push_int(static_cast<int32_t>(le(4))); break;   // BININT
        case 'K': push_int(static_cast<int64_t>(le(1))); break;   // BININT1
        case 'M': push_int(static_cast<int64_t>(le(2))); break;   // BININT2
        case 0x8a: push_long(static_cast<size_t>(le(1))); break;  // LONG1
        case 'G': {                                               // BINFLOAT, big-endian
          const std::string b = bytes(8);
          uint64_t bits = 0;
          for (char c : b) bits = (bits << 8) | static_cast<uint8_t>(c);
          Ref f = make(Node::Kind::floating);
          std::memcpy(&f->d, &bits, 8);
          push(f);
          break;
        }
        case 'X': case 'T': case 'B': push_string(bytes(static_cast<size_t>(le(4)))); break;  // BINUNICODE, BINSTRING, BINBYTES
        case 0x8c: case 'U': case 'C': push_string(bytes(static_cast<size_t>(le(1)))); break;  // SHORT_*
        case '}': push(make(Node::Kind::dict)); break;
        case ']': push(make(Node::Kind::list)); break;
        case ')': push(make(Node::Kind::tuple)); break;
        case 't': { Ref t = make(Node::Kind::tuple); t->items = pop_to_mark(); push(t); break; }
        case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
          Ref t = make(Node::Kind::tuple);
          t->items.resize(op - 0x84);
          for (size_t k = t->items.size(); k-- > 0;) t->items[k] = pop();
          push(t);
          break;
        }
        case 'a': { Ref v = pop(); top(Node::Kind::list, "APPEND")->items.push_back(v); break; }
        case 'e': { auto v = pop_to_mark(); auto& l = top(Node::Kind::list, "APPENDS")->items; l.insert(l.end(), v.begin(), v.end()); break; }
        case 's': { Ref v = pop(), k = pop(); set_item(top(Node::Kind::dict, "SETITEM"), k, v); break; }
        case 'u': {
          auto v = pop_to_mark();
          Ref d = top(Node::Kind::dict, "SETITEMS");
          for (size_t k = 0; k + 1 < v.size(); k += 2) set_item(d, v[k], v[k + 1]);
          break;
        }
        case 'q': memo_[le(1)] = peek("BINPUT"); break;
        case 'r': memo_[le(4)] = peek("LONG_BINPUT"); break;
        case 0x94: memo_[memo_.size()] = peek("MEMOIZE"); break;
        case 'h': push(memo(le(1))); break;             // BINGET
        case 'j': push(memo(le(4))); break;             // LONG_BINGET
        case 'c': {                                      // GLOBAL "module\nname\n"
          const std::string module = line(), name = line();
          push_global(module + "." + name);
          break;
        }
        case 0x93: { Ref name = pop(), module = pop(); push_global(module->s + "." + name->s); break; }  // STACK_GLOBAL
        case 'R': { Ref args = pop(), callable = pop(); push(reduce(callable, args)); break; }
        case 0x81: { pop(); pop(); push(make(Node::Kind::opaque)); break; }  // NEWOBJ: an object we do not need
        case 'b': pop(); break;  // BUILD: instance state (an OrderedDict's _metadata, an object's __dict__): unused
        case 'Q': push(persistent_load(pop())); break;  // BINPERSID
        default:
          throw Error(str(source_, ": unsupported pickle opcode 0x", std::hex, static_cast<int>(op), " at byte ", std::dec,
                          pos_ - 1));
      }
    }
  }

 private:
  char byte() {
    if (pos_ >= data_.size()) throw Error(str(source_, ": data.pkl ends early (truncated checkpoint?)"));
    return data_[pos_++];
  }
  std::string bytes(size_t n) {
    if (n > data_.size() - pos_) throw Error(str(source_, ": data.pkl ends early (truncated checkpoint?)"));
    std::string out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  uint64_t le(size_t n) {  // little-endian unsigned
    const std::string b = bytes(n);
    uint64_t v = 0;
    for (size_t k = n; k-- > 0;) v = (v << 8) | static_cast<uint8_t>(b[k]);
    return v;
  }
  std::string line() {
    const size_t end = data_.find('\n', pos_);
    if (end == std::string::npos) throw Error(str(source_, ": malformed GLOBAL in data.pkl"));
    std::string out = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return out;
  }
  void push(Ref r) { stack_.push_back(std::move(r)); }
  Ref peek(const char* op) const {
    if (stack_.empty()) throw Error(str(source_, ": malformed pickle (", op, " on an empty stack at byte ", pos_, ")"));
    return stack_.back();
  }
  // Every node made, so that the destructor can break the cycles a malformed pickle can build
  // through its memo (a list appended to itself): shared pointers in a cycle are never freed.
  Ref make(Node::Kind kind) {
    nodes_.push_back(rewardgen::make(kind));
    return nodes_.back();
  }
  Ref pop() {
    if (stack_.empty()) throw Error(str(source_, ": malformed pickle (stack underflow at byte ", pos_, ")"));
    Ref r = stack_.back();
    stack_.pop_back();
    return r;
  }
  std::vector<Ref> pop_to_mark() {
    std::vector<Ref> out;
    for (Ref r = pop(); r->kind != Node::Kind::mark; r = pop()) out.push_back(r);
    return {out.rbegin(), out.rend()};
  }
  Ref top(Node::Kind kind, const char* op) {
    if (stack_.empty() || stack_.back()->kind != kind)
      throw Error(str(source_, ": malformed pickle (", op, " on the wrong type at byte ", pos_, ")"));
    return stack_.back();
  }
  Ref memo(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) throw Error(str(source_, ": malformed pickle (memo ", key, " unset)"));
    return it->second;
  }
  void push_int(int64_t v) {
    Ref n = make(Node::Kind::integer);
    n->i = v;
    push(n);
  }
  void push_long(size_t n) {  // LONG1: little-endian two's complement of n bytes
    if (n > 8) throw Error(str(source_, ": integer of ", n, " bytes in data.pkl"));
    uint64_t v = le(n);
    if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
    push_int(static_cast<int64_t>(v));
  }
  void push_string(std::string s) {
    Ref n = make(Node::Kind::string);
    n->s = std::move(s);
    push(n);
  }
  void push_global(std::string name) {
    Ref g = make(Node::Kind::global);
    g->s = std::move(name);
    push(g);
  }
  static void set_item(const Ref& dict, const Ref& key, const Ref& value) { dict->entries.emplace_back(key, value); }

  const Ref& arg(const Ref& args, size_t k, Node::Kind kind, const char* what) const {
    if (args->kind != Node::Kind::tuple || args->items.size() <= k || args->items[k]->kind != kind)
      throw Error(str(source_, ": malformed tensor record (", what, ")"));
    return args->items[k];
  }
  std::vector<int64_t> ints(const Ref& tuple) const {
    std::vector<int64_t> out;
    for (const Ref& r : tuple->items) {
      if (r->kind != Node::Kind::integer) throw Error(str(source_, ": malformed tensor record (size/stride)"));
      out.push_back(r->i);
    }
    return out;
  }

  Ref reduce(const Ref& callable, const Ref& args) {
    const std::string name = callable->kind == Node::Kind::global ? callable->s : "";
    if (name == "collections.OrderedDict") return make(Node::Kind::dict);
    if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
      // (storage, storage_offset, size, stride, ...): a strided view of the storage
      const at::Tensor& storage = arg(args, 0, Node::Kind::tensor, "storage")->tensor;
      const int64_t offset = arg(args, 1, Node::Kind::integer, "offset")->i;
      Ref t = make(Node::Kind::tensor);
      t->tensor = storage.as_strided(ints(arg(args, 2, Node::Kind::tuple, "size")), ints(arg(args, 3, Node::Kind::tuple, "stride")), offset);
      return t;
    }
    if (name == "torch._utils._rebuild_parameter" || name == "torch._utils._rebuild_parameter_with_state")
      return arg(args, 0, Node::Kind::tensor, "parameter data");
    return make(Node::Kind::opaque);  // a class or function we do not run (argparse.Namespace, ...)
  }

  // ("storage", torch.FloatStorage, key, location, numel): the record data/<key> of the archive.
  Ref persistent_load(const Ref& pid) {
    if (pid->kind != Node::Kind::tuple || pid->items.size() < 5 || pid->items[0]->s != "storage")
      throw Error(str(source_, ": unsupported persistent id in data.pkl (not a storage)"));
    const at::ScalarType dtype = storage_dtype(pid->items[1]->s, source_);
    const std::string key = pid->items[2]->s;
    const int64_t numel = pid->items[4]->i;
    auto cached = storages_.find(key);
    if (cached == storages_.end()) {
      auto [ptr, size] = reader_.getRecord("data/" + key);
      if (size != static_cast<size_t>(numel) * at::elementSize(dtype))
        throw Error(str(source_, ": storage '", key, "' holds ", size, " bytes, expected ", numel, " x ", at::elementSize(dtype)));
      auto holder = std::make_shared<at::DataPtr>(std::move(ptr));
      const at::Tensor t = at::from_blob(holder->get(), {numel}, [holder](void*) {}, at::TensorOptions().dtype(dtype));
      cached = storages_.emplace(key, t).first;
    }
    Ref n = make(Node::Kind::tensor);
    n->tensor = cached->second;
    return n;
  }

  caffe2::serialize::PyTorchStreamReader& reader_;
  std::string source_, data_;
  size_t pos_ = 0;
  std::vector<Ref> stack_;
  std::map<uint64_t, Ref> memo_;
  std::vector<Ref> nodes_;
  std::map<std::string, at::Tensor> storages_;
};

// A zip archive starts with a local file header, "PK\3\4"; torch.save's legacy format starts with
// a pickled magic number (protocol 2: 0x80 0x02).
bool is_zip(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K' && magic[2] == 3 && magic[3] == 4;
}

void flatten(const Ref& value, const std::string& prefix, TensorMap& out, const std::string& source, int depth = 0) {
  if (value->kind == Node::Kind::tensor) {
    if (!prefix.empty()) out[prefix] = value->tensor;
    return;
  }
  if (value->kind != Node::Kind::dict) return;  // numbers, strings, lists, objects: bookkeeping, not weights
  // A dict inside itself (through the memo) would recurse forever; no state dict nests this deep.
  if (depth > 64) throw Error(str(source, ": dicts nested more than 64 deep in data.pkl (a cycle?)"));
  for (const auto& [key, item] : value->entries)
    if (key->kind == Node::Kind::string) flatten(item, prefix.empty() ? key->s : prefix + "." + key->s, out, source, depth + 1);
}

// The dict of weights inside a training checkpoint: {"state_dict": {...}, "epoch": ...}.
Ref weights_of(const Ref& root) {
  if (root->kind != Node::Kind::dict) return root;
  for (const char* wrapper : {"state_dict", "model"})
    for (const auto& [key, item] : root->entries)
      if (key->kind == Node::Kind::string && key->s == wrapper && item->kind == Node::Kind::dict) return item;
  return root;
}

}  // namespace

namespace {

// The tensors of an opened archive (`label` names it in errors); see read_torch_checkpoint.
TensorMap read_archive(caffe2::serialize::PyTorchStreamReader& reader, const std::string& label) {
  TensorMap out;
  flatten(weights_of(Unpickler(reader, label).run()), "", out, label);
  if (out.empty()) throw Error(str(label, ": the checkpoint holds no tensors under string keys"));
  bool all_wrapped = true;  // nn.DataParallel saves "module.<name>"
  for (const auto& [name, t] : out) all_wrapped = all_wrapped && name.rfind("module.", 0) == 0;
  if (!all_wrapped) return out;
  TensorMap stripped;
  for (auto& [name, t] : out) stripped[name.substr(7)] = t;
  return stripped;
}

[[noreturn]] void rethrow_as_error(const c10::Error& e, const std::string& label) {
  const std::string message = e.what_without_backtrace();
  throw Error(str(label, ": cannot read the PyTorch checkpoint: ", message.substr(0, message.find('\n'))));
}

Error not_a_zip(const std::string& label) {
  return Error(str(label, ": not a zip-format PyTorch checkpoint (the legacy format of torch < 1.6 is not read); "
                   "re-save it with a newer torch.save or convert it to safetensors"));
}

}  // namespace

TensorMap read_torch_checkpoint(const std::string& path) {
  require_regular_file(path);
  if (!is_zip(path)) throw not_a_zip(path);
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    return read_archive(reader, path);
  } catch (const c10::Error& e) {
    rethrow_as_error(e, path);
  }
}

TensorMap read_torch_checkpoint_bytes(const std::string& bytes, const std::string& label) {
  if (bytes.size() < 4 || bytes.compare(0, 4, "PK\3\4", 4) != 0) throw not_a_zip(label);
  std::istringstream in(bytes);
  try {
    caffe2::serialize::PyTorchStreamReader reader(&in);
    return read_archive(reader, label);
  } catch (const c10::Error& e) {
    rethrow_as_error(e, label);
  }
}

TensorMap read_tensor_file(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  if (ext == ".safetensors") return SafetensorsFile::open(path).load_all();
  return read_torch_checkpoint(path);
}

}  // namespace rewardgen
