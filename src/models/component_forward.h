#pragma once
// Runs one component folder on named inputs and returns named outputs: the engine behind
// `rewardgen model forward`, used to compare with diffusers/transformers (tests/data/parity).
//   UNet2DConditionModel:  sample, timestep (int64), encoder_hidden_states[, timestep_cond] -> sample
//   AutoencoderKL:         image -> posterior_mean, posterior_logvar; latents (unscaled) -> decoded
//   CLIPTextModel[+proj]:  input_ids (int64) -> last_hidden_state, pooler_output[, text_embeds]
//   CLIPVisionModel[+proj]: pixel_values -> last_hidden_state, pooler_output[, image_embeds]
#include <string>

#include "models/diffusers_io.h"

namespace rewardgen {

// Outputs are fp32 on the CPU. Missing or mis-typed inputs are errors naming them.
TensorMap forward_component(const std::string& dir, const TensorMap& inputs, const LoadOptions& options, const Logger& log);

}  // namespace rewardgen
