#pragma once
// The ranges a model config's sizes must lie in. Counts are >= 1 (a zero head count would divide
// by zero while building); the upper ends lie far above every published model and low enough that
// a typo, or a fuzzed file, gets an error naming the key instead of an attempt to allocate terabytes.
#include <string>
#include <vector>

#include "io/json_config.h"

namespace rewardgen::config_bounds {

inline const Range kWidth = between(1, 1 << 17);       // channels, hidden and projection sizes
inline const Range kLayers = between(1, 128);          // layers per block or tower
inline const Range kHeads = between(1, 4096);          // attention heads, or diffusers' attention_head_dim
inline const Range kVocabulary = between(1, 1 << 22);  // token ids
inline const Range kPositions = between(1, 1 << 16);   // sequence lengths, image and patch sizes
// Activation names (act_fn, hidden_act) that models/layers.h's parse_activation knows: read as a
// choice so that a wrong one names its file and key.
inline const std::vector<std::string> kActivations = {"silu", "swish", "gelu", "quick_gelu", "relu"};

}  // namespace rewardgen::config_bounds
