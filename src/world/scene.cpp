#include "world/scene.h"

#include <cmath>

namespace rewardgen::world {

Rgb palette_rgb(Colour colour) {
  switch (colour) {
    case Colour::red: return {215, 40, 40};
    case Colour::yellow: return {235, 200, 25};
    case Colour::green: return {40, 160, 60};
    case Colour::cyan: return {25, 180, 205};
    case Colour::blue: return {40, 70, 210};
    case Colour::purple: return {140, 50, 190};
  }
  return {0, 0, 0};
}

namespace {
const std::array<std::string, 3> kShapeNames = {"circle", "square", "triangle"};
const std::array<std::string, 6> kColourNames = {"red", "yellow", "green", "cyan", "blue", "purple"};
const std::array<std::string, 2> kSizeNames = {"small", "large"};
}  // namespace

const std::string& name(Shape shape) { return kShapeNames[static_cast<size_t>(shape)]; }
const std::string& name(Colour colour) { return kColourNames[static_cast<size_t>(colour)]; }
const std::string& name(Size size) { return kSizeNames[static_cast<size_t>(size)]; }
std::string plural(Shape shape) { return name(shape) + "s"; }

std::optional<Shape> shape_named(const std::string& word) {
  for (Shape shape : kShapes)
    if (word == name(shape) || word == plural(shape)) return shape;
  return std::nullopt;
}
std::optional<Colour> colour_named(const std::string& word) {
  for (Colour colour : kColours)
    if (word == name(colour)) return colour;
  return std::nullopt;
}
std::optional<Size> size_named(const std::string& word) {
  for (Size size : kSizes)
    if (word == name(size)) return size;
  return std::nullopt;
}

uint64_t Rng::next() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
double Rng::uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
int64_t Rng::below(int64_t n) { return static_cast<int64_t>(uniform() * static_cast<double>(n)); }

namespace {
// Pale colours: every channel in [200, 245], so texture and gradients stay >= 185.
Rgb pale_colour(Rng& rng) {
  return {static_cast<float>(rng.uniform(200, 245)), static_cast<float>(rng.uniform(200, 245)),
          static_cast<float>(rng.uniform(200, 245))};
}
}  // namespace

Background random_background(Rng& rng) {
  Background background;
  const int64_t kind = rng.below(3);
  background.base = pale_colour(rng);
  background.other = background.base;
  if (kind == 1) {
    background.kind = Background::Kind::gradient;
    background.other = pale_colour(rng);
    background.angle = static_cast<float>(rng.uniform(0, 2 * M_PI));
  } else if (kind == 2) {
    background.kind = Background::Kind::texture;
    background.amplitude = static_cast<float>(rng.uniform(3, 6));  // 3 waves: at most ±18
    for (int wave = 0; wave < 3; ++wave)
      background.waves.push_back({static_cast<float>(rng.below(4)), static_cast<float>(rng.below(4)),
                                  static_cast<float>(rng.uniform(0, 2 * M_PI))});
  }
  return background;
}

}  // namespace rewardgen::world
