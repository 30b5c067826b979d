#pragma once
// The embedded world's vocabulary and scenes (docs/world.md): a palette of well-separated colours,
// three shapes, two sizes, and a scene = background + 1-4 non-overlapping objects on a 64×64
// canvas. Everything here is plain data and deterministic from a seed; no models, no tensors.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rewardgen::world {

constexpr int kImageSize = 64;

enum class Shape { circle, square, triangle };
enum class Colour { red, yellow, green, cyan, blue, purple };
enum class Size { small, large };

constexpr std::array<Shape, 3> kShapes = {Shape::circle, Shape::square, Shape::triangle};
constexpr std::array<Colour, 6> kColours = {Colour::red, Colour::yellow, Colour::green,
                                            Colour::cyan, Colour::blue, Colour::purple};
constexpr std::array<Size, 2> kSizes = {Size::small, Size::large};

struct Rgb {
  float r, g, b;  // 0..255
};

// Saturated colours six hue steps apart; every one has a channel <= 50, while backgrounds keep
// every channel >= 185, so object and background pixels are >= 130 apart in RGB (checker margin).
Rgb palette_rgb(Colour colour);
// Half of the bounding-box side of an object: small objects span ~12 px, large ~22 px; the
// checker's size threshold (17 px) sits between.
constexpr float kSmallHalfExtent = 6.0f, kLargeHalfExtent = 11.0f;

const std::string& name(Shape shape);
const std::string& name(Colour colour);
const std::string& name(Size size);
std::string plural(Shape shape);  // "circles"
std::optional<Shape> shape_named(const std::string& word);    // singular or plural
std::optional<Colour> colour_named(const std::string& word);
std::optional<Size> size_named(const std::string& word);

struct Object {
  Shape shape;
  Colour colour;
  Size size;
  float cx, cy;         // centre of the bounding box, pixels (x right, y down)
  float half_extent;    // half the bounding-box side, pixels
};

struct Background {
  enum class Kind { flat, gradient, texture } kind = Kind::flat;
  Rgb base{230, 230, 230}, other{230, 230, 230};  // gradient: base -> other along `angle`
  float angle = 0;                                 // radians
  // texture: base + amplitude·Σ cos(2π(fx·x + fy·y)/64 + phase), a few low frequencies
  struct Wave {
    float fx, fy, phase;
  };
  std::vector<Wave> waves;
  float amplitude = 0;
};

struct Scene {
  Background background;
  std::vector<Object> objects;
};

// A small deterministic generator (SplitMix64): the same seed gives the same scene on every
// platform and library version, which std:: distributions do not promise.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next();
  double uniform();                        // [0, 1)
  double uniform(double lo, double hi);    // [lo, hi)
  int64_t below(int64_t n);                // [0, n)
 private:
  uint64_t state_;
};

// A pale background of a random kind: flat, gradient or low-frequency texture.
Background random_background(Rng& rng);

}  // namespace rewardgen::world
