#include "models/component_forward.h"

#include "core/error.h"

namespace rewardgen {
namespace {

at::Tensor input(const TensorMap& inputs, const std::string& name, const std::string& kind, const LoadOptions& o,
                 bool integer = false) {
  const auto it = inputs.find(name);
  if (it == inputs.end()) throw Error(str(kind, " needs an input tensor named '", name, "'"));
  if (integer) {
    if (it->second.is_floating_point()) throw Error(str("input '", name, "' must be an integer tensor"));
    return it->second.to(o.device, at::kLong);
  }
  return it->second.to(o.device, o.dtype);
}

TensorMap to_fp32_cpu(TensorMap outputs) {
  for (auto& [name, t] : outputs) t = t.detach().to(at::kCPU, at::kFloat).contiguous();
  return outputs;
}

}  // namespace

TensorMap forward_component(const std::string& dir, const TensorMap& inputs, const LoadOptions& o, const Logger& log) {
  at::NoGradGuard no_grad;
  const ComponentKind kind = component_kind(dir);
  const std::string name = to_string(kind);
  TensorMap out;
  switch (kind) {
    case ComponentKind::unet: {
      const auto unet = load_unet(dir, o, log);
      const at::Tensor cond = inputs.count("timestep_cond") ? input(inputs, "timestep_cond", name, o) : at::Tensor();
      out["sample"] = unet->forward(input(inputs, "sample", name, o), input(inputs, "timestep", name, o, true),
                                    input(inputs, "encoder_hidden_states", name, o), cond);
      break;
    }
    case ComponentKind::vae: {
      const auto vae = load_vae(dir, o, log);
      if (!inputs.count("image") && !inputs.count("latents"))
        throw Error(str(name, " needs an input tensor named 'image' and/or 'latents'"));
      if (inputs.count("image")) {
        const DiagonalGaussian q = vae->encode(input(inputs, "image", name, o));
        out["posterior_mean"] = q.mean;
        out["posterior_logvar"] = q.logvar;
      }
      if (inputs.count("latents")) out["decoded"] = vae->decode(input(inputs, "latents", name, o));
      break;
    }
    case ComponentKind::clip_text:
    case ComponentKind::clip_text_projection: {
      const auto model = load_clip_text(dir, o, log);
      const ClipTextOutput r = model->forward(input(inputs, "input_ids", name, o, true));
      out["last_hidden_state"] = r.last_hidden_state;
      out["pooler_output"] = r.pooler_output;
      if (r.text_embeds.defined()) out["text_embeds"] = r.text_embeds;
      break;
    }
    case ComponentKind::clip_vision:
    case ComponentKind::clip_vision_projection: {
      const auto model = load_clip_vision(dir, o, log);
      const ClipVisionOutput r = model->forward(input(inputs, "pixel_values", name, o));
      out["last_hidden_state"] = r.last_hidden_state;
      out["pooler_output"] = r.pooler_output;
      if (r.image_embeds.defined()) out["image_embeds"] = r.image_embeds;
      break;
    }
  }
  return to_fp32_cpu(std::move(out));
}

}  // namespace rewardgen
