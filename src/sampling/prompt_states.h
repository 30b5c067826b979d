#pragma once
// The text encoder's hidden states of training prompts, encoded once and kept: every method draws
// its prompts from a finite training set and asks for the same ones again and again.
// Letters: B batch, L tokens, D text width.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/clip.h"
#include "sampling/rollout.h"
#include "text/clip_tokenizer.h"

namespace rewardgen {

class PromptStates {
 public:
  PromptStates(std::shared_ptr<const ClipTextModel> encoder, ClipTokenizer tokenizer);
  // [B, L, D] for the prompts (and, with_uncond, the empty prompt's states beside them).
  Conditioning conditioning(const std::vector<std::string>& prompts, bool with_uncond) const;
  at::Tensor states(const std::vector<std::string>& prompts) const;

 private:
  std::shared_ptr<const ClipTextModel> encoder_;
  ClipTokenizer tokenizer_;
  mutable std::map<std::string, at::Tensor> cache_;  // prompt -> [L, D]
};

}  // namespace rewardgen
