#include "rewards/image_reward.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "io/torch_pickle.h"

namespace rewardgen {

namespace fs = std::filesystem;

namespace {

const char* const kModelPrefixes[] = {"blip.visual_encoder.", "blip.text_encoder.", "mlp."};

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

const at::Tensor& need(const TensorMap& tensors, const std::string& key, int64_t dim, const std::string& source) {
  auto it = tensors.find(key);
  if (it == tensors.end() || it->second.dim() != dim)
    throw Error(str(source, ": missing the ", dim, "-D tensor '", key, "' of ImageReward"));
  return it->second;
}

// The image encoder's sizes from the weights (the release hard-codes ViT-L/16 at 224 in Python).
BlipVisionConfig vision_config_from_weights(const TensorMap& tensors, const std::string& dir, const std::string& source) {
  const std::string p = "blip.visual_encoder.";
  BlipVisionConfig c;
  c.width = need(tensors, p + "cls_token", 3, source).size(2);
  c.patch_size = need(tensors, p + "patch_embed.proj.weight", 4, source).size(3);
  const int64_t tokens = need(tensors, p + "pos_embed", 3, source).size(1);
  const auto side = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(tokens - 1))));
  if (side * side != tokens - 1)
    throw Error(str(source, ": ", p, "pos_embed holds ", tokens, " positions, not 1 + a square number of patches"));
  c.image_size = side * c.patch_size;
  c.layers = 0;
  while (tensors.count(str(p, "blocks.", c.layers, ".norm1.weight"))) ++c.layers;
  if (c.layers == 0) throw Error(str(source, ": no image encoder blocks (", p, "blocks.0.norm1.weight)"));
  c.mlp_width = need(tensors, p + "blocks.0.mlp.fc1.weight", 2, source).size(0);
  c.heads = c.width / 64;  // ViT-B (768, 12 heads) and ViT-L (1024, 16) both have 64-wide heads
  const std::string config = dir + "/vision_config.json";
  if (fs::exists(config)) {
    const Json json = load_json_file(config);
    ConfigReader r(json, config);
    r.optional("num_attention_heads", c.heads, at_least(1));
    r.reject_unknown();
  }
  if (c.heads < 1 || c.width % c.heads != 0)
    throw Error(str(source, ": the image encoder's width ", c.width, " does not split into ", c.heads,
                    " heads; give vision_config.json {\"num_attention_heads\": h}"));
  return c;
}

std::string weights_file(const std::string& dir, const std::string& reward) {
  for (const char* name : {"ImageReward.safetensors", "ImageReward.pt"})
    if (fs::exists(dir + "/" + name)) return dir + "/" + name;
  throw Error(str("reward '", reward, "': no ImageReward.safetensors or ImageReward.pt in '", dir, "'"));
}

}  // namespace

ImageRewardModel::ImageRewardModel(BlipVisionConfig vision, BlipTextConfig text, const std::vector<int64_t>& head_widths,
                                   const ModelOptions& o) {
  if (text.encoder_width != vision.width)
    throw Error(str("ImageReward: the text encoder cross-attends to width ", text.encoder_width, ", the image encoder has ",
                    vision.width));
  if (head_widths.front() != text.hidden_size)
    throw Error(str("ImageReward: the MLP reads ", head_widths.front(), " features, the text encoder gives ", text.hidden_size));
  auto blip = register_module("blip", std::make_shared<torch::nn::Module>());
  visual_encoder = blip->register_module("visual_encoder", std::make_shared<BlipVisionTransformer>(vision, o));
  text_encoder = blip->register_module("text_encoder", std::make_shared<BlipTextEncoder>(text, o));
  mlp = register_module("mlp", std::make_shared<AestheticHead>(head_widths, o));
}

at::Tensor ImageRewardModel::forward(const at::Tensor& pixels, const at::Tensor& input_ids, const at::Tensor& attention_mask) const {
  const at::Tensor image_tokens = visual_encoder->forward(pixels);                                  // [B, N, E]
  const at::Tensor cls = text_encoder->forward(input_ids, attention_mask, image_tokens).select(1, 0);  // [B, D]
  return (mlp->forward(cls) - kImageRewardMean) / kImageRewardStd;                                  // [B]
}

std::shared_ptr<ImageRewardModel> load_image_reward_model(const std::string& dir, const LoadOptions& o, const Logger& log) {
  const std::string path = weights_file(dir, "imagereward:" + dir);
  const TensorMap tensors = read_tensor_file(path);
  const BlipVisionConfig vision = vision_config_from_weights(tensors, dir, path);
  BlipTextConfig text = read_blip_text_config(dir + "/med_config.json");
  text.encoder_width = vision.width;  // BLIP_Pretrain: encoder_config.encoder_width = vision_width
  ModelOptions m;
  m.tensor = at::TensorOptions().dtype(o.dtype).device(o.device);
  m.skip_init = true;
  auto model = std::make_shared<ImageRewardModel>(vision, text, aesthetic_head_widths(tensors, "mlp.", path), m);
  std::vector<std::string> ignorable{"blip.text_encoder.embeddings.position_ids"};
  for (const auto& entry : tensors) {
    const std::string& key = entry.first;  // a named variable: C++17 lambdas cannot capture a structured binding
    if (std::none_of(std::begin(kModelPrefixes), std::end(kModelPrefixes), [&](const char* p) { return starts_with(key, p); }))
      ignorable.push_back(key);
  }
  if (ignorable.size() > 1) log.debug(str(path, ": ", ignorable.size() - 1, " tensors outside the scoring path ignored"));
  load_module_weights(*model, tensors, path, ignorable);
  model->eval();
  log.info(str("ImageReward from ", path, ": image encoder ", vision.layers, " layers × ", vision.width, " at ", vision.image_size,
               "², text encoder ", text.num_hidden_layers, " layers × ", text.hidden_size));
  return model;
}

ImageReward::ImageReward(std::string name, std::shared_ptr<ImageRewardModel> model, BertTokenizer tokenizer,
                         const RewardContext& context)
    : name_(std::move(name)), model_(std::move(model)), tokenizer_(std::move(tokenizer)), context_(context) {
  if (tokenizer_.vocab_size() > model_->text_encoder->config().vocab_size)
    throw Error(str("reward '", name_, "': the tokenizer (", tokenizer_.source(), ") has ", tokenizer_.vocab_size(),
                    " tokens, the text encoder's embedding only ", model_->text_encoder->config().vocab_size));
  preprocess_.size = model_->visual_encoder->config().image_size;
  preprocess_.torchvision_crop = true;  // torchvision Resize(224, bicubic) + CenterCrop(224)
}

at::Tensor ImageReward::score(const at::Tensor& images, const std::vector<std::string>& prompts) {
  check_reward_inputs(name_, images, prompts);
  const at::Tensor pixels = clip_preprocess(images.to(context_.device, context_.dtype), preprocess_);  // [B, 3, S, S]
  const int64_t length = std::min(kImageRewardTextLength, model_->text_encoder->config().max_position_embeddings);
  const BertTokenizer::Batch tokens = tokenizer_.encode_batch(prompts, length);
  return model_->forward(pixels, tokens.input_ids.to(context_.device), tokens.attention_mask.to(context_.device))
      .to(images.device());
}

std::unique_ptr<Reward> make_image_reward(const std::string& dir, const RewardContext& context) {
  const std::string name = "imagereward:" + dir;
  if (!fs::is_directory(dir)) throw Error(str("reward '", name, "': '", dir, "' is not a folder"));
  if (!fs::exists(dir + "/med_config.json")) throw Error(str("reward '", name, "': no med_config.json in '", dir, "'"));
  if (!fs::exists(dir + "/vocab.txt"))
    throw Error(str("reward '", name, "': no vocab.txt in '", dir, "' (bert-base-uncased's WordPiece vocabulary)"));
  LoadOptions o;
  o.device = context.device;
  o.dtype = context.dtype;
  auto model = load_image_reward_model(dir, o, context.log);
  // BLIP's init_tokenizer adds [DEC] (bos) and [ENC]; they only matter for captioning, not for scores.
  BertTokenizer tokenizer = BertTokenizer::from_vocab_file(dir + "/vocab.txt", {"[DEC]", "[ENC]"});
  return std::make_unique<ImageReward>(name, std::move(model), std::move(tokenizer), context);
}

}  // namespace rewardgen
