#include "models/lora.h"

#include <cmath>
#include <iomanip>
#include <map>
#include <optional>
#include <sstream>

#include "core/error.h"

namespace rewardgen {

at::Tensor LoraAdapter::delta(const at::Tensor& x, bool training) const {
  at::Tensor input = x;
  if (training && dropout > 0) {
    // Inverted dropout as nn.Dropout, drawn from the adapter's own generator (no global RNG).
    at::Tensor keep = at::empty(x.sizes(), x.options().device(generator.device()));
    keep.bernoulli_(1.0 - dropout, generator);
    input = x * keep.to(x.device()) / (1.0 - dropout);
  }
  return at::linear(at::linear(input, A), B) * scale();  // [..., in] -> [..., r] -> [..., out]
}

bool lora_targets(const std::string& name, const std::vector<std::string>& targets) {
  for (const auto& target : targets) {
    if (name == target) return true;
    if (name.size() > target.size() && name.compare(name.size() - target.size(), target.size(), target) == 0 &&
        name[name.size() - target.size() - 1] == '.')
      return true;
  }
  return false;
}

namespace {

void check_config(const LoraConfig& config) {
  if (config.rank <= 0) throw Error(str("LoRA rank must be positive, got ", config.rank));
  if (!(config.alpha > 0)) throw Error(str("LoRA alpha must be positive, got ", config.alpha));
  if (!(config.dropout >= 0 && config.dropout < 1)) throw Error(str("LoRA dropout must be in [0, 1), got ", config.dropout));
  if (config.target_modules.empty()) throw Error("LoRA target_modules is empty");
}

std::string join(const std::vector<std::string>& items, const char* separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? separator : "") + items[i];
  return out;
}

// A [r, in] ~ U(±1/√in): PEFT's kaiming_uniform_(a=√5); B [out, r] = 0 so the output is unchanged.
// Drawn in fp32 on the generator's device, then converted, so a seed gives the same A everywhere.
std::shared_ptr<LoraAdapter> make_adapter(const Linear& linear, const LoraConfig& config, at::Generator& generator) {
  auto adapter = std::make_shared<LoraAdapter>();
  const int64_t out = linear.weight.size(0), in = linear.weight.size(1);
  const at::TensorOptions options = linear.weight.options();
  if (options.device().is_meta()) {
    adapter->A = at::empty({config.rank, in}, options);
  } else {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    adapter->A = at::empty({config.rank, in}, at::TensorOptions().dtype(at::kFloat).device(generator.device()))
                     .uniform_(-bound, bound, generator)
                     .to(options);
  }
  adapter->B = at::zeros({out, config.rank}, options);
  adapter->A.set_requires_grad(true);
  adapter->B.set_requires_grad(true);
  adapter->rank = config.rank;
  adapter->alpha = config.alpha;
  adapter->dropout = config.dropout;
  if (config.dropout > 0) adapter->generator = generator;
  return adapter;
}

}  // namespace

LoraAdapters add_lora(torch::nn::Module& root, const LoraConfig& config, at::Generator& generator) {
  check_config(config);
  LoraAdapters adapters{config, {}};
  for (const auto& item : root.named_modules()) {
    auto linear = std::dynamic_pointer_cast<Linear>(item.value());
    if (!linear || !lora_targets(item.key(), config.target_modules)) continue;
    if (linear->lora) throw Error(str("LoRA: module '", item.key(), "' already has an adapter"));
    linear->lora = make_adapter(*linear, config, generator);
    adapters.modules.push_back({item.key(), linear, linear->lora});
  }
  if (adapters.modules.empty())
    throw Error(str("LoRA: no Linear module matches the targets ", join(config.target_modules, ", ")));
  return adapters;
}

std::vector<std::pair<std::string, at::Tensor>> lora_parameters(const LoraAdapters& adapters, const LoraNaming& naming) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& m : adapters.modules) {
    out.emplace_back(naming.peft_prefix + m.name + ".lora_A.weight", m.adapter->A);
    out.emplace_back(naming.peft_prefix + m.name + ".lora_B.weight", m.adapter->B);
  }
  return out;
}

void freeze_base(torch::nn::Module& root) {
  for (auto& p : root.parameters(true)) p.set_requires_grad(false);
}

namespace {

at::Tensor merged_delta(const LoraAdapter& adapter, const at::Tensor& weight) {
  return (at::matmul(adapter.B, adapter.A) * adapter.scale()).to(weight.scalar_type());  // [out, r]·[r, in] -> [out, in]
}

}  // namespace

void merge_lora(LoraAdapters& adapters) {
  at::NoGradGuard no_grad;
  for (auto& m : adapters.modules) {
    if (m.adapter->merged) throw Error(str("LoRA: adapter of '", m.name, "' is already merged"));
    m.linear->weight.add_(merged_delta(*m.adapter, m.linear->weight));
    m.linear->lora = nullptr;
    m.adapter->merged = true;
  }
}

void unmerge_lora(LoraAdapters& adapters) {
  at::NoGradGuard no_grad;
  for (auto& m : adapters.modules) {
    if (!m.adapter->merged) throw Error(str("LoRA: adapter of '", m.name, "' is not merged"));
    m.linear->weight.sub_(merged_delta(*m.adapter, m.linear->weight));
    m.linear->lora = m.adapter;
    m.adapter->merged = false;
  }
}

LoraBypass::LoraBypass(const LoraAdapters& adapters) : adapters_(adapters) {
  for (const LoraModule& m : adapters_.modules)
    if (!m.adapter->merged) m.linear->lora = nullptr;
}

LoraBypass::~LoraBypass() {
  for (const LoraModule& m : adapters_.modules)
    if (!m.adapter->merged) m.linear->lora = m.adapter;
}

namespace {

std::string exact(double value) {
  std::ostringstream out;
  out << std::setprecision(17) << value;
  return out.str();
}

}  // namespace

void save_lora(const std::string& path, const LoraAdapters& adapters, const LoraNaming& naming) {
  const LoraAdapter& first = *adapters.modules.at(0).adapter;
  for (const auto& m : adapters.modules)
    if (m.adapter->rank != first.rank || m.adapter->alpha != first.alpha)
      throw Error(str(path, ": LoRA adapters differ in rank or alpha ('", m.name, "': r ", m.adapter->rank, ", alpha ",
                      m.adapter->alpha, "); the file format has one of each"));
  TensorMap tensors;
  for (const auto& [name, tensor] : lora_parameters(adapters, naming)) tensors[name] = tensor.detach();
  const Metadata metadata{{"format", "rewardgen-lora-peft"},
                          {"lora_rank", std::to_string(first.rank)},
                          {"lora_alpha", exact(first.alpha)},
                          {"target_modules", join(adapters.config.target_modules, ",")}};
  save_safetensors(path, tensors, metadata);
}

namespace {

// What a file holds for one adapted module.
struct FileAdapter {
  std::string a_key, b_key;
  at::Tensor A, B;
  std::optional<double> alpha;  // kohya's per-module ".alpha"
};

// Key suffixes of the two namings, and which part of the adapter each one is.
enum class Part { A, B, alpha };
struct Suffix {
  const char* text;
  Part part;
};
constexpr Suffix kPeftSuffixes[] = {{".lora_A.weight", Part::A}, {".lora_B.weight", Part::B}};
constexpr Suffix kKohyaSuffixes[] = {{".lora_down.weight", Part::A}, {".lora_up.weight", Part::B}, {".alpha", Part::alpha}};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<Suffix> suffixes(bool kohya) {
  if (kohya) return {std::begin(kKohyaSuffixes), std::end(kKohyaSuffixes)};
  return {std::begin(kPeftSuffixes), std::end(kPeftSuffixes)};
}

bool is_kohya(const TensorMap& tensors) {
  for (const auto& [key, t] : tensors)
    for (const auto& suffix : kKohyaSuffixes)
      if (ends_with(key, suffix.text)) return true;
  return false;
}

// The name a module has in the file. kohya's underscore form is ambiguous ("down_blocks_0" could
// be "down.blocks.0"), so it is never parsed: every adapted module's name is converted instead and
// the file's keys are looked up among those.
std::string file_stem(const std::string& module, bool kohya, const LoraNaming& naming) {
  if (!kohya) return naming.peft_prefix + module;
  std::string underscored = module;
  for (char& c : underscored)
    if (c == '.') c = '_';
  return naming.kohya_prefix + underscored;
}

// Groups the file's tensors by adapted module (index into adapters.modules).
std::map<size_t, FileAdapter> group_by_module(const TensorMap& tensors, bool kohya, const std::string& source,
                                              const LoraAdapters& adapters, const LoraNaming& naming) {
  std::map<std::string, size_t> by_stem;
  for (size_t i = 0; i < adapters.modules.size(); ++i) by_stem[file_stem(adapters.modules[i].name, kohya, naming)] = i;
  std::map<size_t, FileAdapter> out;
  for (const auto& [key, tensor] : tensors) {
    std::optional<Suffix> match;
    for (const auto& suffix : suffixes(kohya))
      if (ends_with(key, suffix.text)) match = suffix;
    if (!match) throw Error(str(source, ": '", key, "' is not a LoRA tensor of the ", kohya ? "kohya" : "PEFT", " naming"));
    const std::string stem = key.substr(0, key.size() - std::string(match->text).size());
    const auto found = by_stem.find(stem);
    if (found == by_stem.end()) throw Error(str(source, ": LoRA tensor '", key, "' names no adapted module of the model"));
    FileAdapter& entry = out[found->second];
    switch (match->part) {
      case Part::A:
        entry.a_key = key;
        entry.A = tensor;
        break;
      case Part::B:
        entry.b_key = key;
        entry.B = tensor;
        break;
      case Part::alpha:
        if (tensor.numel() != 1) throw Error(str(source, ": LoRA alpha '", key, "' has ", tensor.numel(), " elements, expected 1"));
        entry.alpha = tensor.to(at::kDouble).item<double>();
        break;
    }
  }
  return out;
}

void check_tensor(const std::string& source, const std::string& key, const at::Tensor& value, const at::Tensor& target,
                  int64_t rank_dim) {
  if (value.dim() != 2 || target.dim() != 2 || !value.is_floating_point())
    throw Error(str(source, ": LoRA tensor '", key, "' has shape ", value.sizes(), " and dtype ", value.scalar_type(),
                    ", expected a floating-point matrix of shape ", target.sizes()));
  if (value.size(rank_dim) != target.size(rank_dim))
    throw Error(str(source, ": LoRA tensor '", key, "' has rank ", value.size(rank_dim), ", the adapter has rank ",
                    target.size(rank_dim)));
  if (value.sizes() != target.sizes())
    throw Error(str(source, ": LoRA tensor '", key, "' has shape ", value.sizes(), ", the module expects ", target.sizes()));
}

// PEFT files carry one alpha in the metadata; without it diffusers uses alpha = rank (scale 1).
std::optional<double> metadata_number(const Metadata& metadata, const std::string& name, const std::string& source) {
  const auto it = metadata.find(name);
  if (it == metadata.end()) return std::nullopt;
  try {
    return std::stod(it->second);
  } catch (const std::exception&) {
    throw Error(str(source, ": metadata '", name, "' = '", it->second, "' is not a number"));
  }
}

}  // namespace

void load_lora_tensors(const TensorMap& tensors, const Metadata& metadata, const std::string& source,
                       LoraAdapters& adapters, const LoraNaming& naming) {
  const bool kohya = is_kohya(tensors);
  const std::map<size_t, FileAdapter> file = group_by_module(tensors, kohya, source, adapters, naming);
  const std::optional<double> file_rank = metadata_number(metadata, "lora_rank", source);
  const std::optional<double> file_alpha = metadata_number(metadata, "lora_alpha", source);
  // Validate everything before copying anything: a failed load leaves the adapters as they were.
  for (size_t i = 0; i < adapters.modules.size(); ++i) {
    const LoraModule& m = adapters.modules[i];
    const std::string stem = file_stem(m.name, kohya, naming);
    const auto it = file.find(i);
    if (it == file.end() || !it->second.A.defined() || !it->second.B.defined())
      throw Error(str(source, ": missing LoRA tensors for module '", m.name, "' (", stem,
                      kohya ? ".lora_down.weight / .lora_up.weight)" : ".lora_A.weight / .lora_B.weight)"));
    if (m.adapter->merged) throw Error(str(source, ": adapter of '", m.name, "' is merged; unmerge before loading"));
    check_tensor(source, it->second.a_key, it->second.A, m.adapter->A, 0);
    check_tensor(source, it->second.b_key, it->second.B, m.adapter->B, 1);
    if (file_rank && *file_rank != static_cast<double>(m.adapter->rank))
      throw Error(str(source, ": metadata 'lora_rank' = ", *file_rank, ", the adapters have rank ", m.adapter->rank));
  }
  at::NoGradGuard no_grad;
  for (const auto& [i, entry] : file) {
    LoraAdapter& adapter = *adapters.modules[i].adapter;
    adapter.A.copy_(entry.A);
    adapter.B.copy_(entry.B);
    adapter.alpha = entry.alpha.value_or(file_alpha.value_or(static_cast<double>(adapter.rank)));
  }
  adapters.config.alpha = adapters.modules.front().adapter->alpha;
}

void load_lora(const std::string& path, LoraAdapters& adapters, const LoraNaming& naming) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  load_lora_tensors(file.load_all(), file.metadata(), path, adapters, naming);
}

}  // namespace rewardgen
