#pragma once
// Anti-aliased rendering of world scenes: each pixel averages 4×4 sub-samples of the background
// and of the shapes' exact inside tests, so edges are smooth and the result is deterministic.
#include <ATen/ATen.h>

#include <vector>

#include "world/prompts.h"
#include "world/scene.h"

namespace rewardgen::world {

// True when the point (x, y) (pixels, continuous) lies inside the object.
bool inside(const Object& object, float x, float y);

at::Tensor render(const Scene& scene);                       // [3, 64, 64] float in [-1, 1]
at::Tensor render_batch(const std::vector<Scene>& scenes);   // [B, 3, 64, 64]
// The real scenes of evaluation lines: line i is scene_for_prompt(its prompt, Rng(seed + i)).
at::Tensor render_eval_scenes(const std::vector<EvalPrompt>& lines, uint64_t seed = 0);

}  // namespace rewardgen::world
