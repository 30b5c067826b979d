#include "sampling/prompt_states.h"

namespace rewardgen {

PromptStates::PromptStates(std::shared_ptr<const ClipTextModel> encoder, ClipTokenizer tokenizer)
    : encoder_(std::move(encoder)), tokenizer_(std::move(tokenizer)) {}

at::Tensor PromptStates::states(const std::vector<std::string>& prompts) const {
  at::NoGradGuard no_grad;
  const int64_t length = encoder_->config().max_position_embeddings;
  const at::Device device = encoder_->token_embedding->weight.device();
  // One prompt per call: a batched GEMM's rounding depends on the batch, and a prompt's states must
  // not depend on which prompts came before it (a resumed run would drift from the uninterrupted one).
  for (const std::string& text : prompts)
    if (!cache_.count(text)) cache_[text] = encoder_->forward(tokenizer_.encode_batch({text}, length).to(device)).last_hidden_state[0].clone();
  std::vector<at::Tensor> rows;
  for (const std::string& text : prompts) rows.push_back(cache_.at(text));
  return at::stack(rows);
}

Conditioning PromptStates::conditioning(const std::vector<std::string>& prompts, bool with_uncond) const {
  Conditioning c;
  c.cond = states(prompts);
  if (with_uncond) c.uncond = states(std::vector<std::string>(prompts.size(), ""));
  return c;
}

}  // namespace rewardgen
