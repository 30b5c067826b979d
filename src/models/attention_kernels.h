#pragma once
// Fused scaled-dot-product attention for one head on the CPU, fp32, on raw rows (no torch here).
//
// The unfused attention writes an [L, S] score matrix per head, scales it, softmaxes it and reads it
// back for the second product, each pass through memory; at the world UNet's shapes (128 heads of
// 256 x 256 scores, head width 8) those passes and LibTorch 1.13's serial bmm loop were half of
// the forward (docs/performance.md). Here a block of 4 query rows goes through scores, softmax and
// the weighted sum of values while its 4 score rows stay in L1, and the backward recomputes the
// probabilities from the forward's per-row log-sum-exp instead of storing them: FlashAttention's
// scheme (Dao et al. 2022, Alg. 1 and 4). Beyond 256 keys the forward reads keys and values in
// tiles with an online softmax, as FlashAttention does; the backward streams a head's keys per
// row block (docs/performance.md, "Open directions").
//
// Letters: L query rows, S key rows, d head width, `scale` multiplies q·k (1/√d).
#include <cstdint>
#include <vector>

#include "models/cpu_kernels.h"

namespace rewardgen::attention_kernels {

// Rows of a row-major matrix, `stride` floats apart (a head is a column slice of [B, L, h·d]).
struct ConstRows {
  const float* data;
  int64_t stride;
};
struct Rows {
  float* data;
  int64_t stride;
  operator ConstRows() const { return {data, stride}; }
};

struct HeadShape {
  int64_t L, S, d;
  float scale;
};

// Scratch a thread reuses from head to head (packed keys and values, score rows).
struct Workspace {
  std::vector<float> keys_t, values, keys, d_keys, d_values, rows_a, rows_b, scores, d_scores, block;
  std::vector<float> acc, row_max, row_sum;  // the forward's online softmax over key tiles
};

using cpu_kernels::best_isa;
using cpu_kernels::Isa;

// out_i = Σ_j softmax_j(scale·q_i·k_j) v_j and lse_i = log Σ_j exp(scale·q_i·k_j) for the query
// rows i in [row_begin, row_end); `out` and `lse` are indexed by i (row 0 = the head's first row).
void forward(const HeadShape& shape, ConstRows q, ConstRows k, ConstRows v, int64_t row_begin, int64_t row_end,
             Rows out, float* lse, Workspace& workspace, Isa isa = best_isa());

// dq, dk, dv of the head from d_out, given the forward's out and lse (every row of the head).
void backward(const HeadShape& shape, ConstRows q, ConstRows k, ConstRows v, ConstRows out, ConstRows d_out,
              const float* lse, Rows dq, Rows dk, Rows dv, Workspace& workspace, Isa isa = best_isa());

}  // namespace rewardgen::attention_kernels
