#include "rewards/world_rewards.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/error.h"
#include "core/version.h"
#include "models/clip_model.h"
#include "models/clip_preprocess.h"
#include "rewards/clip_rewards.h"
#include "rewards/jpeg.h"
#include "rewards/world_verifier.h"

namespace rewardgen {

namespace {

using world::ObjectSpec;
using world::Shape;
using world::Size;

// The pixel area of one object of `shape` at a size's nominal half extent (world/scene.h).
double object_area(Shape shape, Size size) {
  const double h = size == Size::small ? world::kSmallHalfExtent : world::kLargeHalfExtent;
  switch (shape) {
    case Shape::circle: return M_PI * h * h;
    case Shape::square: return 4 * h * h;
    case Shape::triangle: return 2 * h * h;
  }
  return 0;
}

// The soft mask [H, W] of the pixels a spec's colour claims (all palette colours when it is free).
at::Tensor spec_mask(const at::Tensor& masks, const ObjectSpec& spec) {
  return spec.colour ? masks[static_cast<int64_t>(*spec.colour)] : masks.sum(0);
}

// Mass and centroid of the pixels a spec's colour claims.
struct Blob {
  at::Tensor mass, cx, cy;  // scalars
};

// With `presence` > 0 (and the wide masks), the mass gains a straight-through gradient: value the
// sharp mass m, gradient m + S·(p − sg(p)) with p = Σ sg(foreground)·wide mask of the colour — the
// pixels of *any* object, pulled toward the asked colour. The sharp masks are flat (e^-30) on an
// object of another palette colour, so without it "there is a red triangle" cannot say "turn that
// purple triangle red", the commonest way a two-object prompt fails.
Blob blob_of(const at::Tensor& masks, const at::Tensor& wide_masks, const ObjectSpec& spec, double presence) {
  const at::Tensor mask = spec_mask(masks, spec);
  const int64_t h = mask.size(0), w = mask.size(1);
  const at::Tensor xs = at::arange(w, mask.options()) + 0.5, ys = at::arange(h, mask.options()) + 0.5;
  const at::Tensor mass = mask.sum();
  const at::Tensor safe = mass.clamp_min(1e-6);
  const Blob blob{mass, (mask.sum(0) * xs).sum() / safe, (mask.sum(1) * ys).sum() / safe};
  if (presence == 0 || !wide_masks.defined() || !spec.colour) return blob;
  const at::Tensor foreground = masks.sum(0).detach();
  const at::Tensor pulled = (foreground * wide_masks[static_cast<int64_t>(*spec.colour)]).sum();
  return {mass + presence * (pulled - pulled.detach()), blob.cx, blob.cy};
}

// The clause scores below are computed as logarithms: log σ(z) is linear in z where the clause fails
// badly, where σ(z)'s own slope vanishes (world.compositional:log uses that slope).

// Soft "the object is there": mass well above half of the smallest such object's area.
at::Tensor log_present_score(const Blob& blob, const ObjectSpec& spec) {
  const double smallest = object_area(spec.shape, spec.size.value_or(Size::small));
  return at::log_sigmoid((blob.mass - 0.5 * smallest) / (0.1 * smallest));
}

// Soft size: the mass on the named side of the midpoint between the small and large areas.
at::Tensor log_size_score(const Blob& blob, const ObjectSpec& spec) {
  if (!spec.size) return at::zeros_like(blob.mass);
  const double mid = 0.5 * (object_area(spec.shape, Size::small) + object_area(spec.shape, Size::large));
  const at::Tensor above = (blob.mass - mid) / (0.15 * mid);
  return at::log_sigmoid(*spec.size == Size::large ? above : -above);
}

// Soft count: the mass should lie between `count` small and `count` large objects of the shape;
// outside that interval the score falls as a Gaussian of the distance (σ = half a small object).
at::Tensor log_count_score(const Blob& blob, const ObjectSpec& spec, int count) {
  const double low = count * object_area(spec.shape, Size::small), high = count * object_area(spec.shape, Size::large);
  const double sigma = 0.5 * object_area(spec.shape, Size::small);
  const at::Tensor outside = at::relu(low - blob.mass) + at::relu(blob.mass - high);
  return -0.5 * (outside / sigma).pow(2);
}

// The soft probability that the box of `detection` holds `shape`: a softmax over the three shapes
// of the soft intersection-over-union between the colour's wide mask inside the box and each ideal
// shape stretched over it — the checker's rule (world/checker.cpp, best_matching_shape) with the
// hard component replaced by the mask, so that its gradient says which pixels to fill or clear.
at::Tensor soft_shape_probability(const at::Tensor& mask, const world::Detection& detection, Shape shape,
                                  double temperature) {
  const int64_t width = detection.x1 - detection.x0 + 1, height = detection.y1 - detection.y0 + 1;
  const at::Tensor box = mask.slice(0, detection.y0, detection.y1 + 1).slice(1, detection.x0, detection.x1 + 1);
  std::vector<at::Tensor> ious;
  for (Shape candidate : world::kShapes) {
    const std::vector<uint8_t> inside = world::shape_template(candidate, static_cast<int>(width), static_cast<int>(height));
    const at::Tensor shape_mask = at::tensor(inside, at::kByte).view({height, width}).to(mask.options());
    const at::Tensor intersection = (box * shape_mask).sum();
    ious.push_back(intersection / (box.sum() + shape_mask.sum() - intersection).clamp_min(1e-6));
  }
  const auto index = std::find(world::kShapes.begin(), world::kShapes.end(), shape) - world::kShapes.begin();
  return at::softmax(at::stack(ious) / temperature, 0)[index];
}

// Per pixel, the squared RGB distance (0..255 scale) to each palette colour: [B, 6, H, W].
at::Tensor squared_palette_distances(const at::Tensor& images) {
  const at::Tensor rgb = (images + 1) * 127.5;  // [B, 3, H, W] in 0..255
  std::vector<at::Tensor> distances;
  for (world::Colour colour : world::kColours) {
    const world::Rgb c = world::palette_rgb(colour);
    const at::Tensor centre = at::tensor({c.r, c.g, c.b}, images.options()).view({1, 3, 1, 1});
    distances.push_back((rgb - centre).pow(2).sum(1));
  }
  return at::stack(distances, 1);
}

// A world reward's prompt, parsed; a prompt outside the grammar is an Error naming the reward.
world::Prompt parse_reward_prompt(const std::string& reward, const std::string& text) {
  try {
    return world::parse_prompt(text);
  } catch (const Error& error) {
    throw Error(str(reward, ": ", error.what()));
  }
}

}  // namespace

std::string CompositionalReward::name() const {
  std::vector<std::string> arguments;
  if (options_.log_score) arguments.push_back("log");
  if (options_.shape_gradient == 0) arguments.push_back("no_shape_gradient");
  else if (options_.shape_gradient != 1) arguments.push_back(str("shape_gradient=", options_.shape_gradient));
  if (options_.presence_gradient != 0) arguments.push_back(str("presence_gradient=", options_.presence_gradient));
  if (options_.size_gradient != 0) arguments.push_back(str("size_gradient=", options_.size_gradient));
  if (options_.count_gradient != 0) arguments.push_back(str("count_gradient=", options_.count_gradient));
  std::string name = "world.compositional";
  for (size_t i = 0; i < arguments.size(); ++i) name += (i == 0 ? ":" : ",") + arguments[i];
  return name;
}

at::Tensor CompositionalReward::colour_masks(const at::Tensor& images) const {
  const double two_sigma_squared = 2 * options_.colour_sigma * options_.colour_sigma;
  const at::Tensor logits = -squared_palette_distances(images) / two_sigma_squared;
  // The background class: a constant logit equal to a palette colour's at the checker's threshold.
  const double reject = options_.reject_distance * options_.reject_distance / two_sigma_squared;
  const at::Tensor background = at::full_like(logits.narrow(1, 0, 1), -reject);
  return at::softmax(at::cat({logits, background}, 1), 1).narrow(1, 0, static_cast<int64_t>(world::kColours.size()));
}

at::Tensor CompositionalReward::shape_masks(const at::Tensor& images) const {
  return 1 / (1 + squared_palette_distances(images) / (options_.reject_distance * options_.reject_distance));
}

namespace {

// The detection a clause about `spec` is about: the largest of the spec's colour with its shape
// when there is one, else the largest of its colour; null when the colour has none.
const world::Detection* clause_subject(const ObjectSpec& spec, const std::vector<world::Detection>& detections) {
  const world::Detection* with_shape = nullptr;
  const world::Detection* of_colour = nullptr;
  for (const world::Detection& detection : detections) {
    if (spec.colour && detection.colour != *spec.colour) continue;
    if (!of_colour || detection.area > of_colour->area) of_colour = &detection;
    if (detection.shape == spec.shape && (!with_shape || detection.area > with_shape->area)) with_shape = &detection;
  }
  return with_shape ? with_shape : of_colour;
}

}  // namespace

// The shape clause of one object: in value the checker's (1 when a detection of the spec's colour
// has its shape, else shape_miss), so the reward still ranks like the checker; in gradient the soft
// shape probability of the detection the clause is about (clause_subject: keep it that shape, or
// turn the largest of the colour into it): value + S·(1 − shape_miss)·(p − sg(p)), S the
// shape_gradient scale.
at::Tensor CompositionalReward::shape_factor(const at::Tensor& shape_masks, const ObjectSpec& spec,
                                             const std::vector<world::Detection>& detections,
                                             const at::TensorOptions& options) const {
  const world::Detection* subject = clause_subject(spec, detections);
  const bool has_shape = subject && subject->shape == spec.shape;
  const double value = has_shape ? 1.0 : options_.shape_miss;
  if (!subject || !shape_masks.defined() || options_.shape_gradient == 0) return at::full({}, value, options);
  const at::Tensor mask = shape_masks[static_cast<int64_t>(subject->colour)];
  const at::Tensor p = soft_shape_probability(mask, *subject, spec.shape, options_.shape_temperature);
  return value + options_.shape_gradient * (1 - options_.shape_miss) * (p - p.detach());
}

// The mass the size clause reads. For a "large" object with size_gradient S, value m and gradient
// m + S·(g − sg(g)), g = Σ sg(background)·wide mask of the colour over the disk of a large object's
// reach (its half extent + 1 px) around the clause's detection (or the colour's soft centroid when
// none is detected): the background next to the object is pulled toward its colour, so it can grow.
// The sharp masks alone are flat there (the world's backgrounds are ≥ 130 from every palette colour).
at::Tensor CompositionalReward::size_mass(const at::Tensor& masks, const at::Tensor& shape_masks, const ObjectSpec& spec,
                                          const at::Tensor& mass, const std::vector<world::Detection>& detections) const {
  if (options_.size_gradient == 0 || !shape_masks.defined() || spec.size != Size::large || !spec.colour) return mass;
  const at::Tensor colour = masks[static_cast<int64_t>(*spec.colour)].detach();  // [H, W]
  const int64_t h = colour.size(0), w = colour.size(1);
  const at::Tensor xs = at::arange(w, colour.options()).view({1, w}) + 0.5, ys = at::arange(h, colour.options()).view({h, 1}) + 0.5;
  double cx = 0.5 * static_cast<double>(w), cy = 0.5 * static_cast<double>(h);
  if (const world::Detection* subject = clause_subject(spec, detections)) {
    cx = subject->cx + 0.5, cy = subject->cy + 0.5;  // pixel centres, as xs and ys
  } else if (const double total = colour.sum().item<double>(); total > 1e-6) {
    cx = (colour * xs).sum().item<double>() / total, cy = (colour * ys).sum().item<double>() / total;
  }
  const double reach = world::kLargeHalfExtent + 1;
  const at::Tensor disk = ((xs - cx).pow(2) + (ys - cy).pow(2) <= reach * reach).to(colour.scalar_type());
  const at::Tensor background = 1 - masks.sum(0).detach();
  const at::Tensor grown = (disk * background * shape_masks[static_cast<int64_t>(*spec.colour)]).sum();
  return mass + options_.size_gradient * (grown - grown.detach());
}

namespace {

// The colour's mass inside the boxes (grown by a pixel for the soft edges) of the `matching`
// detections beyond the first `count`, smallest first: the objects a count clause that found too many
// would erase at least cost.
at::Tensor surplus_mass(const at::Tensor& masks, const ObjectSpec& spec, std::vector<const world::Detection*> matching,
                        int count) {
  std::sort(matching.begin(), matching.end(), [](const auto* a, const auto* b) { return a->area < b->area; });
  const at::Tensor mask = spec_mask(masks, spec);
  const int64_t h = mask.size(0), w = mask.size(1);
  at::Tensor mass = at::zeros({}, mask.options());
  for (size_t i = 0; i + static_cast<size_t>(count) < matching.size(); ++i) {
    const world::Detection& d = *matching[i];
    const int64_t y0 = std::max<int64_t>(d.y0 - 1, 0), y1 = std::min<int64_t>(d.y1 + 1, h - 1);
    const int64_t x0 = std::max<int64_t>(d.x0 - 1, 0), x1 = std::min<int64_t>(d.x1 + 1, w - 1);
    mass = mass + mask.slice(0, y0, y1 + 1).slice(1, x0, x1 + 1).sum();
  }
  return mass;
}

}  // namespace

at::Tensor CompositionalReward::prompt_score(const at::Tensor& masks, const at::Tensor& shape_masks, const world::Prompt& prompt,
                                             const std::vector<world::Detection>& detections) const {
  return at::exp(prompt_log_score(masks, shape_masks, prompt, detections));
}

at::Tensor CompositionalReward::prompt_log_score(const at::Tensor& masks, const at::Tensor& shape_masks,
                                                 const world::Prompt& prompt,
                                                 const std::vector<world::Detection>& detections) const {
  at::Tensor score = at::zeros({}, masks.options());
  std::vector<Blob> blobs;
  for (const ObjectSpec& spec : prompt.objects) blobs.push_back(blob_of(masks, shape_masks, spec, options_.presence_gradient));
  if (prompt.task == world::Task::counting) {
    const ObjectSpec& spec = prompt.objects[0];
    std::vector<const world::Detection*> matching;  // the checker's count of the asked colour and shape
    for (const world::Detection& detection : detections)
      if (world::matches(detection, {spec.shape, spec.colour, std::nullopt})) matching.push_back(&detection);
    const double found = static_cast<double>(matching.size());
    // The checker's count as the value, with a gradient through the colour's mass (a straight-through
    // estimate): found + (m − sg(m)) / a, a = the mass of one found object (the midpoint area when
    // none is found). Its value is the hard count, so the reward ranks exactly as before; inside the
    // mass interval of count_score it still says "more of this colour" or "less".
    const Blob& blob = blobs[0];
    const double mid = 0.5 * (object_area(spec.shape, Size::small) + object_area(spec.shape, Size::large));
    const double per_object = found > 0 ? std::max(blob.mass.item<double>() / found, 0.5 * object_area(spec.shape, Size::small)) : mid;
    const at::Tensor carrier = options_.count_gradient > 0 && found > prompt.count
                                   ? options_.count_gradient * surplus_mass(masks, spec, matching, prompt.count)
                                   : blob.mass;
    const at::Tensor soft_found = found + (carrier - carrier.detach()) / per_object;
    const at::Tensor miss = (soft_found - prompt.count) / options_.count_sigma;
    return log_count_score(blob, spec, prompt.count) - 0.5 * miss.pow(2);
  }
  for (size_t i = 0; i < blobs.size(); ++i) {
    const ObjectSpec& spec = prompt.objects[i];
    const Blob sized{size_mass(masks, shape_masks, spec, blobs[i].mass, detections), blobs[i].cx, blobs[i].cy};
    score = score + log_present_score(blobs[i], spec) + log_size_score(sized, spec) +
            at::log(shape_factor(shape_masks, spec, detections, masks.options()));
  }
  if (prompt.task == world::Task::position) {
    const Blob &a = blobs[0], &b = blobs[1];
    at::Tensor along;
    switch (prompt.relation) {
      case world::Relation::left_of: along = b.cx - a.cx; break;
      case world::Relation::right_of: along = a.cx - b.cx; break;
      case world::Relation::above: along = b.cy - a.cy; break;
      case world::Relation::below: along = a.cy - b.cy; break;
    }
    score = score + at::log_sigmoid((along - options_.relation_margin) / options_.relation_softness);
  }
  return score;
}

at::Tensor CompositionalReward::score(const at::Tensor& images, const std::vector<std::string>& prompts) {
  check_reward_inputs(name(), images, prompts);
  const at::Tensor masks = colour_masks(images);
  const bool wide_needed = options_.shape_gradient > 0 || options_.presence_gradient > 0 || options_.size_gradient > 0;
  const at::Tensor wide = wide_needed ? shape_masks(images) : at::Tensor();
  std::vector<at::Tensor> scores;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const world::Prompt prompt = parse_reward_prompt(name(), prompts[i]);
    const at::Tensor image = images[static_cast<int64_t>(i)].detach().to(at::kCPU, at::kFloat).clamp(-1, 1);
    const auto index = static_cast<int64_t>(i);
    const at::Tensor log_score =
        prompt_log_score(masks[index], wide.defined() ? wide[index] : wide, prompt, world::detect_objects(image));
    scores.push_back(options_.log_score ? log_score : at::exp(log_score));
  }
  return at::stack(scores);
}

ClipContrastReward::ClipContrastReward(std::string name, std::unique_ptr<ClipSimilarityReward> clip)
    : name_(std::move(name)), clip_(std::move(clip)) {}

std::vector<at::Tensor> ClipContrastReward::candidate_logits(const at::Tensor& images, const std::vector<std::string>& prompts) {
  check_reward_inputs(name(), images, prompts);
  const at::Tensor image = clip_->image_embeddings(images);  // [B, E]
  std::vector<at::Tensor> logits;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const world::Prompt prompt = parse_reward_prompt(name(), prompts[i]);
    std::vector<std::string> candidates = {prompts[i]};  // the prompt first
    for (const world::Prompt& negative : world::one_edit_negatives(prompt)) candidates.push_back(negative.text());
    logits.push_back(100.0 * at::mv(clip_->text_embeddings(candidates), image[static_cast<int64_t>(i)]));  // [1 + N]
  }
  return logits;
}

at::Tensor ClipContrastReward::score(const at::Tensor& images, const std::vector<std::string>& prompts) {
  std::vector<at::Tensor> scores;
  for (const at::Tensor& logits : candidate_logits(images, prompts)) scores.push_back(at::log_softmax(logits, 0)[0]);
  return at::stack(scores).to(images.device());
}

std::string world_model_dir() {
  if (const char* env = std::getenv("REWARDGEN_MODELS_DIR"); env != nullptr && *env != '\0') return std::string(env) + "/world";
  return std::string(kSourceModelsDir) + "/world";
}

namespace {

// world.compositional's argument: comma-separated "log", "no_shape_gradient", "shape_gradient=S",
// "presence_gradient=S", "size_gradient=S", "count_gradient=S".
double parse_scale(const std::string& key, const std::string& text) {
  char* end = nullptr;
  const double scale = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(scale) || scale < 0 || scale > 10)
    throw Error(str("world.compositional: ", key, "=", text, " is not a number in [0, 10]"));
  return scale;
}

SoftCheckerOptions parse_compositional_arguments(const std::string& argument) {
  SoftCheckerOptions options;
  size_t begin = 0;
  while (begin < argument.size()) {
    const size_t comma = std::min(argument.find(',', begin), argument.size());
    const std::string item = argument.substr(begin, comma - begin);
    begin = comma + 1;
    const size_t equals = item.find('=');
    const std::string key = item.substr(0, equals), value = equals == std::string::npos ? "" : item.substr(equals + 1);
    if (item == "log") {
      options.log_score = true;
    } else if (item == "no_shape_gradient") {
      options.shape_gradient = 0;
    } else if (equals != std::string::npos && key == "shape_gradient") {
      options.shape_gradient = parse_scale(key, value);
    } else if (equals != std::string::npos && key == "presence_gradient") {
      options.presence_gradient = parse_scale(key, value);
    } else if (equals != std::string::npos && key == "size_gradient") {
      options.size_gradient = parse_scale(key, value);
    } else if (equals != std::string::npos && key == "count_gradient") {
      options.count_gradient = parse_scale(key, value);
    } else {
      throw Error(str("world.compositional: unknown argument '", item,
                      "' (known: log, no_shape_gradient, shape_gradient=S, presence_gradient=S, size_gradient=S, count_gradient=S)"));
    }
  }
  return options;
}

}  // namespace

std::unique_ptr<ClipSimilarityReward> load_world_clip(const std::string& name, const std::string& argument,
                                                      const RewardContext& context) {
  const std::string dir = argument.empty() ? world_model_dir() : argument;
  LoadOptions load;
  load.device = context.device;
  load.dtype = context.dtype;
  ClipModel model;
  model.text = load_clip_text(dir + "/text_encoder", load, context.log);
  model.vision = load_clip_vision(dir + "/image_encoder", load, context.log);
  if (!model.text->text_projection || !model.vision->visual_projection)
    throw Error(str(name, ": '", dir, "' needs text_encoder/ and image_encoder/ with projections"));
  model.logit_scale = at::zeros({}, at::TensorOptions().dtype(context.dtype).device(context.device));  // unused: 100·cos
  ClipPreprocessOptions preprocess;
  preprocess.size = model.vision->config().image_size;
  return std::make_unique<ClipSimilarityReward>(name + (argument.empty() ? "" : ":" + argument), std::move(model),
                                                ClipTokenizer::from_directory(dir + "/tokenizer"), preprocess,
                                                ClipSimilarityReward::Scale::hundred, context);
}

void register_world_rewards(RewardRegistry& registry) {
  registry.add({"world.compositional", "[log,no_shape_gradient|shape_gradient=S,presence_gradient=S,size_gradient=S,count_gradient=S]",
                "soft, differentiable checker: colour masses, centroids, counts, shapes per prompt clause, product in [0, 1]"
                " (log: its logarithm, the sum of the clauses' log-scores; no_shape_gradient: the shape factor without"
                " its straight-through gradient; shape_gradient=S: that gradient scaled by S in [0, 10];"
                " presence_gradient=S: a straight-through pull of every object's pixels toward an asked colour;"
                " size_gradient=S: a pull of the background next to a large object toward its colour;"
                " count_gradient=S: when too many are counted, the count's gradient on the smallest surplus objects alone)",
                [](const std::string& argument, const RewardContext&) {
                  return std::make_unique<CompositionalReward>(parse_compositional_arguments(argument));
                }});
  registry.add({"world.clip", "[DIR]", "100·cos of the world CLIP (default: the shipped models/world)",
                [](const std::string& argument, const RewardContext& c) -> std::unique_ptr<Reward> {
                  return load_world_clip("world.clip", argument, c);
                }});
  registry.add({"world.clip_contrast", "[DIR]",
                "world CLIP log-probability of the prompt against its one-edit negatives (log softmax of 100·cos)",
                [](const std::string& argument, const RewardContext& c) -> std::unique_ptr<Reward> {
                  const std::string name = "world.clip_contrast" + (argument.empty() ? "" : ":" + argument);
                  return std::make_unique<ClipContrastReward>(name, load_world_clip("world.clip_contrast", argument, c));
                }});
  registry.add({"world.verifier", "DIR",
                "log σ of a learned verifier's logit that the checker passes the image (a folder written by"
                " `pretrain verifier` with {\"kind\": \"net\"}: tokenizer/, text_encoder/, verifier/)",
                [](const std::string& argument, const RewardContext& c) -> std::unique_ptr<Reward> {
                  if (argument.empty()) throw Error("world.verifier needs its folder: world.verifier:DIR");
                  return std::make_unique<WorldVerifierReward>("world.verifier:" + argument, argument, c);
                }});
  registry.add({"world.jpeg", "", "JPEG compressibility −kB at quality 95 of the world's 64×64 images",
                [](const std::string&, const RewardContext& c) { return std::make_unique<JpegReward>(true, c, "world.jpeg"); }});
}

}  // namespace rewardgen
