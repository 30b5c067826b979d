#include "rewards/world_verifier.h"

#include <filesystem>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/diffusers_io.h"

namespace rewardgen {

namespace fs = std::filesystem;

namespace {

// How much smaller the last map is than the image: the stem (÷2) and a downsample between levels.
int64_t downscale(const WorldVerifierConfig& c) { return int64_t{2} << (static_cast<int64_t>(c.channels.size()) - 1); }

void check(const WorldVerifierConfig& c, const std::string& where) {
  if (c.channels.empty()) throw Error(str(where, ": channels must list at least one level"));
  for (const int64_t ch : c.channels)
    if (ch < 1 || ch % c.groups != 0)
      throw Error(str(where, ": channel count ", ch, " must be a positive multiple of groups = ", c.groups));
  if (c.image_size % downscale(c) != 0)
    throw Error(str(where, ": image_size ", c.image_size, " must be divisible by ", downscale(c), " for ", c.channels.size(), " levels"));
}

}  // namespace

void read_world_verifier_config(ConfigReader& reader, WorldVerifierConfig& c) {
  reader.optional("image_size", c.image_size, between(8, 4096))
      .optional("channels", c.channels, between(1, 4096))
      .optional("text_dim", c.text_dim, between(1, 65536))
      .optional("embed_dim", c.embed_dim, between(1, 65536))
      .optional("head_channels", c.head_channels, between(1, 4096))
      .optional("head_width", c.head_width, between(1, 65536))
      .optional("groups", c.groups, between(1, 4096));
  if (c.channels.size() > 6) throw Error(str(reader.file(), ": channels lists ", c.channels.size(), " levels, at most 6"));
  check(c, reader.file());
}

Json world_verifier_config_json(const WorldVerifierConfig& c) {
  return {{"_class_name", "WorldVerifier"},   {"image_size", c.image_size}, {"channels", c.channels},
          {"text_dim", c.text_dim},           {"embed_dim", c.embed_dim},   {"head_channels", c.head_channels},
          {"head_width", c.head_width},       {"groups", c.groups}};
}

WorldVerifierNet::WorldVerifierNet(const WorldVerifierConfig& c, const ModelOptions& o) : config_(c) {
  check(c, "world verifier");
  conv_in_ = register_module("conv_in", std::make_shared<Conv2d>(3, c.channels[0], 3, 2, 1, true, o));
  text_in_ = register_module("text_in", std::make_shared<Linear>(c.text_dim, c.embed_dim, true, o));
  std::vector<std::shared_ptr<ResnetBlock2D>> blocks;
  std::vector<std::shared_ptr<Downsample2D>> downsamplers;
  int64_t previous = c.channels[0];
  for (size_t i = 0; i < c.channels.size(); ++i) {
    ResnetOptions r;
    r.in_channels = previous;
    r.out_channels = c.channels[i];
    r.temb_channels = c.embed_dim;
    r.groups = c.groups;
    blocks.push_back(std::make_shared<ResnetBlock2D>(r, o));
    if (i + 1 < c.channels.size()) downsamplers.push_back(std::make_shared<Downsample2D>(c.channels[i], 1, o));
    previous = c.channels[i];
  }
  blocks_ = register_list(*this, "blocks", blocks);
  downsamplers_ = register_list(*this, "downsamplers", downsamplers);
  head_norm_ = register_module("head_norm", std::make_shared<GroupNorm>(c.groups, previous, 1e-5, o));
  head_conv_ = register_module("head_conv", std::make_shared<Conv2d>(previous, c.head_channels, 1, 1, 0, true, o));
  const int64_t side = c.image_size / downscale(c);
  head_map_ = register_module("head_map", std::make_shared<Linear>(c.head_channels * side * side, c.head_width, true, o));
  head_joint_ = register_module("head_joint", std::make_shared<Linear>(c.head_width + c.embed_dim, c.head_width, true, o));
  head_out_ = register_module("head_out", std::make_shared<Linear>(c.head_width, 1, true, o));
}

at::Tensor WorldVerifierNet::forward(const at::Tensor& images, const at::Tensor& text) const {
  const int64_t s = config_.image_size;
  if (images.dim() != 4 || images.size(1) != 3 || images.size(2) != s || images.size(3) != s)
    throw Error(str("world verifier: images must be [B, 3, ", s, ", ", s, "], got ", images.sizes()));
  if (text.dim() != 2 || text.size(0) != images.size(0) || text.size(1) != config_.text_dim)
    throw Error(str("world verifier: text must be [", images.size(0), ", ", config_.text_dim, "], got ", text.sizes()));
  const at::Tensor condition = text_in_->forward(text.to(images.dtype()));  // [B, E]; the blocks apply SiLU first
  at::Tensor h = conv_in_->forward(images);
  for (size_t i = 0; i < blocks_.size(); ++i) {
    h = blocks_[i]->forward(h, condition);
    if (i < downsamplers_.size()) h = downsamplers_[i]->forward(h);
  }
  h = head_conv_->forward(at::silu(head_norm_->forward(h)));  // [B, C, side, side]
  h = at::silu(head_map_->forward(h.flatten(1)));              // [B, W]
  h = at::silu(head_joint_->forward(at::cat({h, at::silu(condition)}, 1)));
  return head_out_->forward(h).squeeze(1);
}

void save_world_verifier(const std::string& dir, const WorldVerifierNet& net, at::ScalarType dtype) {
  save_component(dir, world_verifier_config_json(net.config()), net, "model.safetensors", dtype);
}

std::shared_ptr<WorldVerifierNet> load_world_verifier(const std::string& dir, const LoadOptions& options) {
  const std::string config_path = dir + "/config.json";
  if (!fs::exists(config_path)) throw Error(str("world verifier: '", config_path, "' is missing"));
  const Json object = load_json_file(config_path);
  ConfigReader reader(object, config_path);
  std::string class_name;
  reader.optional("_class_name", class_name);
  if (class_name != "WorldVerifier")
    throw Error(str(config_path, ": _class_name is '", class_name, "', a world verifier folder has 'WorldVerifier'"));
  WorldVerifierConfig config;
  read_world_verifier_config(reader, config);
  reader.reject_unknown();
  ModelOptions model;
  model.tensor = at::TensorOptions().dtype(options.dtype).device(options.device);
  model.skip_init = true;
  auto net = std::make_shared<WorldVerifierNet>(config, model);
  load_module_weights(*net, SafetensorsFile::open(dir + "/model.safetensors").load_all(), dir + "/model.safetensors");
  for (at::Tensor p : net->parameters()) p.set_requires_grad(false);
  return net;
}

WorldTextEmbedder::WorldTextEmbedder(const std::string& dir, const RewardContext& context)
    : tokenizer_(ClipTokenizer::from_directory(dir + "/tokenizer")), context_(context) {
  LoadOptions load;
  load.device = context.device;
  load.dtype = context.dtype;
  text_ = load_clip_text(dir + "/text_encoder", load, context.log);
  if (!text_->text_projection) throw Error(str("'", dir, "/text_encoder' has no text projection"));
  for (at::Tensor p : text_->parameters()) p.set_requires_grad(false);
}

int64_t WorldTextEmbedder::width() const { return text_->text_projection->weight.size(0); }

at::Tensor WorldTextEmbedder::embed(const std::vector<std::string>& prompts) {
  return cache_.rows(prompts, [&](const std::string& p) {
    const at::Tensor ids = tokenizer_.encode_batch({p}, text_->config().max_position_embeddings).to(context_.device);
    return text_->forward(ids).text_embeds[0];
  });
}

WorldVerifierReward::WorldVerifierReward(std::string name, const std::string& dir, const RewardContext& context)
    : name_(std::move(name)), text_(dir, context), context_(context) {
  LoadOptions load;
  load.device = context.device;
  load.dtype = context.dtype;
  net_ = load_world_verifier(dir + "/verifier", load);
  if (net_->config().text_dim != text_.width())
    throw Error(str("reward '", name_, "': the verifier reads ", net_->config().text_dim, "-wide text embeddings, ", dir,
                    "/text_encoder gives ", text_.width()));
}

at::Tensor WorldVerifierReward::score(const at::Tensor& images, const std::vector<std::string>& prompts) {
  check_reward_inputs(name_, images, prompts);
  const at::Tensor logits = net_->forward(images.to(context_.device, context_.dtype), text_.embed(prompts));
  return (-at::softplus(-logits)).to(images.device());  // log σ(logit), finite for any logit
}

}  // namespace rewardgen
