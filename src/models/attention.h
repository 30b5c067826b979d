#pragma once
// Attention layers with diffusers' parameter names: Attention (to_q/to_k/to_v/to_out.0, optional
// group_norm for the VAE), FeedForward with GEGLU, BasicTransformerBlock and Transformer2DModel.
// Letters: B batch, L query tokens, S context tokens, D width, h heads, C channels, H×W pixels.
#include <memory>
#include <optional>

#include "models/layers.h"

namespace rewardgen {

// softmax(q kᵀ / √d + mask) v over `heads` heads.
// q [B, L, h·d], k and v [B, S, h·d], mask broadcastable to [B, h, L, S] (additive) or undefined.
// On the CPU without a mask, fp32 (and bf16 with heads of width ≤ 16) runs the fused kernels
// (models/attention_kernels.h, with their own backward); anything else the unfused computation
// below. `upcast_softmax` computes softmax in fp32.
at::Tensor multi_head_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                const at::Tensor& mask = {}, bool upcast_softmax = false);

// The same with ATen ops, batched over heads in cache-sized groups: scores by bmm on the pre-scaled
// q, never baddbmm(beta=0), which on LibTorch 1.13 CPU reads its uninitialised output for small
// shapes (docs/models.md). Public so that tests and benchmarks compare the two.
at::Tensor unfused_multi_head_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                        const at::Tensor& mask = {}, bool upcast_softmax = false);

// GEGLU of a projected [..., 2F] tensor: hidden · GELU(gate) with [hidden, gate] its two halves
// along the last dimension (exact GELU). CPU tensors in fp32, and bf16 converted to fp32 and back,
// run the fused kernels (models/geglu_kernels.h, with their own backward); anything else (CUDA,
// double) the unfused computation below.
at::Tensor geglu(const at::Tensor& projected);
at::Tensor unfused_geglu(const at::Tensor& projected);  // chunk, gelu, mul: public for tests and benchmarks

struct AttentionOptions {
  int64_t query_dim = 0, heads = 8, dim_head = 64;
  int64_t cross_attention_dim = 0;  // 0: self-attention (keys from the queries' input)
  bool bias = false;                // to_q/to_k/to_v biases (the VAE has them)
  bool upcast_softmax = false;
  int64_t norm_num_groups = 0;      // > 0: a GroupNorm "group_norm" on the input (VAE mid-block)
  double norm_eps = 1e-5;
  bool residual_connection = false;  // output += input (VAE mid-block)
  double rescale_output_factor = 1.0;
};

// diffusers' Attention with the default processor. Input [B, L, D], or [B, C, H, W] (flattened
// to [B, H·W, C] and back), context [B, S, cross_attention_dim] or undefined.
class Attention : public torch::nn::Module {
 public:
  Attention(const AttentionOptions& attention, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context = {}) const;

  std::shared_ptr<GroupNorm> group_norm;
  std::shared_ptr<Linear> to_q, to_k, to_v, to_out;  // to_out is registered as "to_out.0"
  AttentionOptions config;
};

// FeedForward(dim, mult 4, "geglu"): net.0.proj [D -> 2·4D], hidden·GELU(gate), net.2 [4D -> D].
class FeedForward : public torch::nn::Module {
 public:
  FeedForward(int64_t dim, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x) const;  // [B, L, D]
  std::shared_ptr<Linear> proj, out;
};

// Self-attention, cross-attention and feed-forward, each pre-LayerNorm and residual.
class BasicTransformerBlock : public torch::nn::Module {
 public:
  BasicTransformerBlock(int64_t dim, int64_t heads, int64_t dim_head, int64_t cross_attention_dim,
                        bool upcast_attention, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context) const;  // [B, L, D], [B, S, Dc]

  std::shared_ptr<LayerNorm> norm1, norm2, norm3;
  std::shared_ptr<Attention> attn1, attn2;
  std::shared_ptr<FeedForward> ff;
};

struct Transformer2DOptions {
  int64_t heads = 8, dim_head = 40, in_channels = 320, norm_num_groups = 32, cross_attention_dim = 768;
  int64_t num_layers = 1;               // transformer_layers_per_block
  bool use_linear_projection = false;   // SD 2.x: Linear proj_in/proj_out instead of 1×1 convs
  bool upcast_attention = false;
};

// GroupNorm, proj_in, transformer blocks over the H·W tokens, proj_out, plus the input.
class Transformer2DModel : public torch::nn::Module {
 public:
  Transformer2DModel(const Transformer2DOptions& transformer, const ModelOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& context) const;  // [B, C, H, W], [B, S, Dc]

  std::shared_ptr<GroupNorm> norm;
  std::shared_ptr<torch::nn::Module> proj_in, proj_out;  // Conv2d (1×1) or Linear
  std::vector<std::shared_ptr<BasicTransformerBlock>> transformer_blocks;
  Transformer2DOptions config;
};

}  // namespace rewardgen
