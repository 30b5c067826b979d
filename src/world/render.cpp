#include "world/render.h"

#include <algorithm>
#include <cmath>

namespace rewardgen::world {

bool inside(const Object& object, float x, float y) {
  const float dx = x - object.cx, dy = y - object.cy, h = object.half_extent;
  switch (object.shape) {
    case Shape::circle: return dx * dx + dy * dy <= h * h;
    case Shape::square: return std::abs(dx) <= h && std::abs(dy) <= h;
    case Shape::triangle:  // apex up at (cx, cy - h), base from (cx - h, cy + h) to (cx + h, cy + h)
      return dy <= h && std::abs(dx) <= (dy + h) / 2;
  }
  return false;
}

namespace {

Rgb background_at(const Background& background, float x, float y) {
  switch (background.kind) {
    case Background::Kind::flat: return background.base;
    case Background::Kind::gradient: {
      // Position along the gradient direction, 0 at one side of the canvas, 1 at the other.
      const float c = std::cos(background.angle), s = std::sin(background.angle);
      const float half = kImageSize / 2.0f;
      const float extent = half * (std::abs(c) + std::abs(s));
      const float u = std::clamp(((x - half) * c + (y - half) * s + extent) / (2 * extent), 0.0f, 1.0f);
      const Rgb &a = background.base, &b = background.other;
      return {a.r + u * (b.r - a.r), a.g + u * (b.g - a.g), a.b + u * (b.b - a.b)};
    }
    case Background::Kind::texture: {
      float offset = 0;
      for (const Background::Wave& wave : background.waves)
        offset += std::cos(2 * static_cast<float>(M_PI) * (wave.fx * x + wave.fy * y) / kImageSize + wave.phase);
      offset *= background.amplitude;
      const Rgb& a = background.base;
      return {std::min(a.r + offset, 255.0f), std::min(a.g + offset, 255.0f), std::min(a.b + offset, 255.0f)};
    }
  }
  return background.base;
}

constexpr int kSubsamples = 4;  // per axis

}  // namespace

at::Tensor render(const Scene& scene) {
  at::Tensor image = at::empty({3, kImageSize, kImageSize}, at::kFloat);
  float* out = image.data_ptr<float>();
  const int plane = kImageSize * kImageSize;
  for (int py = 0; py < kImageSize; ++py) {
    for (int px = 0; px < kImageSize; ++px) {
      float r = 0, g = 0, b = 0;
      for (int sy = 0; sy < kSubsamples; ++sy) {
        for (int sx = 0; sx < kSubsamples; ++sx) {
          const float x = px + (sx + 0.5f) / kSubsamples, y = py + (sy + 0.5f) / kSubsamples;
          Rgb colour = background_at(scene.background, x, y);
          for (const Object& object : scene.objects)  // later objects are drawn on top
            if (inside(object, x, y)) colour = palette_rgb(object.colour);
          r += colour.r, g += colour.g, b += colour.b;
        }
      }
      const float scale = 1.0f / (kSubsamples * kSubsamples * 127.5f);
      const int at = py * kImageSize + px;
      out[at] = r * scale - 1, out[plane + at] = g * scale - 1, out[2 * plane + at] = b * scale - 1;
    }
  }
  return image;
}

at::Tensor render_batch(const std::vector<Scene>& scenes) {
  std::vector<at::Tensor> images;
  images.reserve(scenes.size());
  for (const Scene& scene : scenes) images.push_back(render(scene));
  return at::stack(images);
}

at::Tensor render_eval_scenes(const std::vector<EvalPrompt>& lines, uint64_t seed) {
  std::vector<Scene> scenes;
  for (size_t i = 0; i < lines.size(); ++i) {
    Rng rng(seed + i);
    scenes.push_back(scene_for_prompt(parse_prompt(lines[i].text), rng));
  }
  return render_batch(scenes);
}

}  // namespace rewardgen::world
