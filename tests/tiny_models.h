#pragma once
// The tiny model configurations the model, LoRA and sampling tests share (one place, so that a
// change of the test models is made once).
#include <filesystem>
#include <memory>
#include <string>

#include "io/atomic_file.h"
#include "models/diffusers_io.h"
#include "sampling/pipeline.h"

namespace rewardgen::testing {

// 2 blocks (Cross, Down), 32/64 channels, 2 heads, cross-attention width 16, 4×4 latents: 4
// transformer blocks, 32 attention projections.
inline UNet2DConditionConfig tiny_unet_config(int64_t time_cond_proj_dim = 0) {
  UNet2DConditionConfig c;
  c.sample_size = 4;
  c.block_out_channels = {32, 64};
  c.down_block_types = {"CrossAttnDownBlock2D", "DownBlock2D"};
  c.up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D"};
  c.layers_per_block = {1};
  c.norm_num_groups = 8;
  c.cross_attention_dim = {16};
  c.attention_head_dim = {2};
  c.time_cond_proj_dim = time_cond_proj_dim;
  return c;
}

// f = 2 (two blocks), scaling_factor 0.5.
inline AutoencoderKLConfig tiny_vae_config() {
  AutoencoderKLConfig v;
  v.block_out_channels = {8, 16};
  v.down_block_types.assign(2, "DownEncoderBlock2D");
  v.up_block_types.assign(2, "UpDecoderBlock2D");
  v.norm_num_groups = 4;
  v.scaling_factor = 0.5;
  return v;
}

// Width 16 (the UNet's cross-attention width), 8 positions, 64 ids.
inline ClipTextConfig tiny_text_config() {
  ClipTextConfig t;
  t.vocab_size = 64;
  t.hidden_size = 16;
  t.intermediate_size = 32;
  t.num_hidden_layers = 1;
  t.num_attention_heads = 2;
  t.max_position_embeddings = 8;
  return t;
}

// A tokenizer folder whose words are made of a, b, c (see tests/text/clip_tokenizer_test.cpp).
inline void write_tiny_tokenizer(const std::string& dir) {
  std::filesystem::create_directories(dir);
  write_file_atomic(dir + "/vocab.json", R"({"a": 0, "b": 1, "c": 2, "a</w>": 3, "b</w>": 4, "c</w>": 5, "ab": 6,
    "abc</w>": 7, "bc</w>": 8, "ab</w>": 9, "<|startoftext|>": 10, "<|endoftext|>": 11, "!": 12, "!</w>": 13, "ca": 14})");
  write_file_atomic(dir + "/merges.txt", "#version: 0.2\na b\nab c</w>\nb c</w>\na b</w>\nc a\n");
}

// Random weights (seed 0); `tokenizer_dir` may be empty when nothing reads it.
inline Pipeline tiny_pipeline(const std::string& tokenizer_dir, int64_t time_cond_proj_dim = 0) {
  at::manual_seed(0);
  Pipeline p;
  p.unet = std::make_shared<UNet2DConditionModel>(tiny_unet_config(time_cond_proj_dim));
  p.vae = std::make_shared<AutoencoderKL>(tiny_vae_config());
  p.text_encoder = std::make_shared<ClipTextModel>(tiny_text_config(), false);
  p.tokenizer_dir = tokenizer_dir;
  return p;
}

}  // namespace rewardgen::testing
