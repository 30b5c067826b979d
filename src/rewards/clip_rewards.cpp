#include "rewards/clip_rewards.h"

#include <filesystem>

#include "core/error.h"
#include "core/paths.h"
#include "io/torch_pickle.h"
#include "models/open_clip.h"

namespace rewardgen {

namespace fs = std::filesystem;

namespace {

constexpr size_t kTextCacheEntries = 16384;  // bounded (world.clip_contrast meets ~5,000 texts): a long run with unique prompts must not grow without limit

LoadOptions load_options(const RewardContext& c) {
  LoadOptions o;
  o.device = c.device;
  o.dtype = c.dtype;
  return o;
}

// The tokenizer shipped beside the weights (HF folders carry vocab.json + merges.txt), else CLIP's BPE.
ClipTokenizer tokenizer_for(const std::string& dir, const ClipTextConfig& text, const std::string& reward) {
  ClipTokenizer tokenizer = fs::exists(dir + "/vocab.json") && fs::exists(dir + "/merges.txt")
                                ? ClipTokenizer::from_directory(dir)
                                : ClipTokenizer::from_gzip_merges(shipped_file("clip/bpe_simple_vocab_16e6.txt.gz"));
  if (tokenizer.vocab_size() > text.vocab_size)
    throw Error(str("reward '", reward, "': the tokenizer (", tokenizer.source(), ") has ", tokenizer.vocab_size(),
                    " tokens, the text model's embedding only ", text.vocab_size));
  return tokenizer;
}

at::Tensor unit(const at::Tensor& x) { return x / x.norm(2, {-1}, true); }

void check_dir(const std::string& dir, const std::string& reward) {
  if (!fs::is_directory(dir)) throw Error(str("reward '", reward, "': '", dir, "' is not a folder"));
}

}  // namespace

ClipSimilarityReward::ClipSimilarityReward(std::string name, ClipModel model, ClipTokenizer tokenizer,
                                           ClipPreprocessOptions preprocess, Scale scale, const RewardContext& context)
    : name_(std::move(name)), model_(std::move(model)), tokenizer_(std::move(tokenizer)), preprocess_(preprocess),
      scale_(scale), context_(context) {
  if (!model_.text || !model_.vision || !model_.text->text_projection || !model_.vision->visual_projection)
    throw Error(str("reward '", name_, "': needs both CLIP towers with their projections"));
  preprocess_.size = model_.vision->config().image_size;
}

at::Tensor TextEmbeddingCache::rows(const std::vector<std::string>& prompts, const EmbedOne& embed_one) {
  at::NoGradGuard no_grad;
  std::vector<std::string> missing;
  for (const std::string& p : prompts)
    if (!entries_.count(p) && std::find(missing.begin(), missing.end(), p) == missing.end()) missing.push_back(p);
  if (entries_.size() + missing.size() > kTextCacheEntries) entries_.clear();
  for (const std::string& p : missing) entries_[p] = unit(embed_one(p));  // [E]
  std::vector<at::Tensor> rows;
  for (const std::string& p : prompts) rows.push_back(entries_.at(p));
  return at::stack(rows);  // [B, E]
}

at::Tensor ClipSimilarityReward::text_embeddings(const std::vector<std::string>& prompts) {
  return text_cache_.rows(prompts, [&](const std::string& p) {
    const at::Tensor ids = tokenizer_.encode_batch({p}, model_.text->config().max_position_embeddings).to(context_.device);
    return model_.text_features(ids)[0];
  });
}

at::Tensor ClipSimilarityReward::image_embeddings(const at::Tensor& images) {
  const at::Tensor pixels = clip_preprocess(images.to(context_.device, context_.dtype), preprocess_);  // [B, 3, S, S]
  return unit(model_.image_features(pixels));                                                        // [B, E]
}

at::Tensor ClipSimilarityReward::score(const at::Tensor& images, const std::vector<std::string>& prompts) {
  check_reward_inputs(name_, images, prompts);
  const at::Tensor cos = (image_embeddings(images) * text_embeddings(prompts)).sum(-1);  // [B]
  const at::Tensor scores = scale_ == Scale::hundred ? 100.0 * cos : model_.logit_scale.exp() * cos;
  return scores.to(images.device());
}

AestheticHead::AestheticHead(const std::vector<int64_t>& widths, const ModelOptions& o) : widths_(widths) {
  if (widths.size() != std::size(kAestheticLinearIndices) + 1)
    throw Error(str("aesthetic head: expected ", std::size(kAestheticLinearIndices) + 1, " widths, got ", widths.size()));
  auto layers = register_module("layers", std::make_shared<torch::nn::Module>());
  for (size_t i = 0; i < std::size(kAestheticLinearIndices); ++i)
    linears.push_back(layers->register_module(std::to_string(kAestheticLinearIndices[i]),
                                              std::make_shared<Linear>(widths[i], widths[i + 1], true, o)));
}

at::Tensor AestheticHead::forward(const at::Tensor& embedding) const {
  at::Tensor x = embedding;  // [B, E]
  for (const auto& linear : linears) x = linear->forward(x);  // no activations: the head is affine
  return x.squeeze(-1);  // [B]
}

std::vector<int64_t> aesthetic_head_widths(const TensorMap& tensors, const std::string& prefix, const std::string& source) {
  std::vector<int64_t> widths;
  for (int64_t index : kAestheticLinearIndices) {
    const std::string key = str(prefix, "layers.", index, ".weight");
    auto it = tensors.find(key);
    if (it == tensors.end() || it->second.dim() != 2)
      throw Error(str(source, ": missing the 2-D tensor '", key, "' of the MLP head (Linear layers at ", prefix,
                      "layers.0, 2, 4, 6, 7)"));
    if (widths.empty()) widths.push_back(it->second.size(1));
    widths.push_back(it->second.size(0));
  }
  if (widths.back() != 1) throw Error(str(source, ": the MLP head ends in ", widths.back(), " outputs, expected 1"));
  return widths;
}

std::shared_ptr<AestheticHead> load_aesthetic_head(const std::string& path, const LoadOptions& o) {
  const TensorMap tensors = read_tensor_file(path);
  const std::vector<int64_t> widths = aesthetic_head_widths(tensors, "", path);
  ModelOptions m;
  m.tensor = at::TensorOptions().dtype(o.dtype).device(o.device);
  m.skip_init = true;
  auto head = std::make_shared<AestheticHead>(widths, m);
  load_module_weights(*head, tensors, path);  // strict: shape chain and extra tensors checked here
  head->eval();
  return head;
}

AestheticReward::AestheticReward(std::string name, ClipModel clip, std::shared_ptr<AestheticHead> head,
                                 const RewardContext& context)
    : name_(std::move(name)), clip_(std::move(clip)), head_(std::move(head)), context_(context) {
  if (!clip_.vision || !clip_.vision->visual_projection)
    throw Error(str("reward '", name_, "': needs a CLIP vision tower with visual_projection"));
  const int64_t embed = clip_.vision->config().projection_dim;
  if (embed != head_->input_width())
    throw Error(str("reward '", name_, "': the CLIP image embedding has width ", embed, ", the aesthetic head expects ",
                    head_->input_width()));
  preprocess_.size = clip_.vision->config().image_size;
}

at::Tensor AestheticReward::score(const at::Tensor& images, const std::vector<std::string>& prompts) {
  check_reward_inputs(name_, images, prompts);
  const at::Tensor pixels = clip_preprocess(images.to(context_.device, context_.dtype), preprocess_);  // [B, 3, S, S]
  return head_->forward(unit(clip_.image_features(pixels))).to(images.device());                     // [B]
}

namespace {

// clip:DIR and pickscore:DIR differ only in the multiplier of cos.
std::unique_ptr<Reward> make_clip_folder_reward(const std::string& name, const std::string& dir,
                                                ClipSimilarityReward::Scale scale, const RewardContext& context) {
  check_dir(dir, name);
  ClipModel model = load_clip_model(dir, load_options(context), context.log);
  ClipTokenizer tokenizer = tokenizer_for(dir, model.text->config(), name);
  return std::make_unique<ClipSimilarityReward>(name, std::move(model), std::move(tokenizer), ClipPreprocessOptions{},
                                                scale, context);
}

}  // namespace

std::unique_ptr<Reward> make_clip_score_reward(const std::string& dir, const RewardContext& context) {
  return make_clip_folder_reward("clip:" + dir, dir, ClipSimilarityReward::Scale::hundred, context);
}

std::unique_ptr<Reward> make_pickscore_reward(const std::string& dir, const RewardContext& context) {
  return make_clip_folder_reward("pickscore:" + dir, dir, ClipSimilarityReward::Scale::logit_scale, context);
}

std::unique_ptr<Reward> make_hpsv2_reward(const std::string& file, const RewardContext& context) {
  const std::string name = "hpsv2:" + file;
  if (!fs::is_regular_file(file)) throw Error(str("reward '", name, "': no file '", file, "'"));
  const std::string dir = fs::path(file).parent_path().string();
  const std::string config = dir.empty() ? "open_clip_config.json" : dir + "/open_clip_config.json";
  ClipModel model = load_open_clip(file, fs::exists(config) ? config : "", load_options(context), context.log);
  ClipTokenizer tokenizer = tokenizer_for(dir.empty() ? "." : dir, model.text->config(), name);
  ClipPreprocessOptions preprocess;
  preprocess.torchvision_crop = true;  // open_clip's eval transform: torchvision Resize + CenterCrop
  return std::make_unique<ClipSimilarityReward>(name, std::move(model), std::move(tokenizer), preprocess,
                                                ClipSimilarityReward::Scale::hundred, context);
}

std::unique_ptr<Reward> make_aesthetic_reward(const std::string& dir, const RewardContext& context) {
  const std::string name = "aesthetic:" + dir;
  check_dir(dir, name);
  std::string head_file;
  for (const char* candidate : {"aesthetic_head.safetensors", "aesthetic_head.pth", "sac+logos+ava1-l14-linearMSE.pth"})
    if (fs::exists(dir + "/" + candidate)) {
      head_file = dir + "/" + candidate;
      break;
    }
  if (head_file.empty())
    throw Error(str("reward '", name, "': no aesthetic head in '", dir, "' (aesthetic_head.safetensors, aesthetic_head.pth "
                    "or sac+logos+ava1-l14-linearMSE.pth)"));
  const LoadOptions o = load_options(context);
  ClipModel clip;
  if (is_clip_model_folder(dir)) {
    clip = load_clip_model(dir, o, context.log, /*with_text=*/false);
  } else {
    clip.vision = load_clip_vision(dir, o, context.log);
    if (!clip.vision->visual_projection)
      throw Error(str("reward '", name, "': '", dir, "' holds a CLIPVisionModel without visual_projection; the aesthetic "
                      "head needs the projected embedding (CLIPVisionModelWithProjection or CLIPModel)"));
  }
  return std::make_unique<AestheticReward>(name, std::move(clip), load_aesthetic_head(head_file, o), context);
}

}  // namespace rewardgen
