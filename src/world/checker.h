#pragma once
// The world's GenEval: reads objects off the pixels of a (generated) image and decides every
// clause of a prompt exactly (docs/world.md). Pixels are classified to the nearest palette colour,
// or rejected when none is close (background, blends, artefacts); same-colour pixels form
// 8-connected components; a component's shape is the ideal circle, square or upright triangle
// that overlaps it best when stretched over its bounding box, its size comes from the bounding
// box, its position from its centroid.
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "world/prompts.h"

namespace rewardgen::world {

struct CheckerOptions {
  // RGB 0..255. The palette is >= 111 apart and backgrounds >= 130 from it; 70 rejects the
  // anti-aliased blends of an object with the background (a 30% blend is ~75 away from its colour,
  // and half blends can come close to a neighbouring palette colour).
  float max_colour_distance = 70;
  int min_area = 10;                // pixels; smaller components are noise
  float large_extent = 17;          // bounding-box side in pixels at or above: large
  float relation_margin = 3;        // centroids must differ by more than this along the relation
};

struct Detection {
  Colour colour;
  Shape shape;
  Size size;
  float cx, cy;        // centroid, pixels
  int area;            // pixels
  int x0, y0, x1, y1;  // bounding box, inclusive
  float fill;          // area / bounding-box area
  std::string text() const;  // "large red circle at (20.5, 31.0), 380 px, fill 0.79"
};

// Objects in `image` [3, 64, 64] (values in [-1, 1]); Error on another shape.
std::vector<Detection> detect_objects(const at::Tensor& image, const CheckerOptions& options = {});

struct ClauseResult {
  std::string clause;  // "exactly 3 red circles"
  bool passed;
  std::string detail;  // "found 2: ..."
};

struct CheckResult {
  bool passed = false;  // every clause passed
  std::vector<ClauseResult> clauses;
  std::vector<Detection> detections;
  std::string explain() const;  // detections, then one line per clause, then the verdict
};

CheckResult check(const at::Tensor& image, const Prompt& prompt, const CheckerOptions& options = {});
// The ideal shape stretched over a box: (u, v) in [-1, 1]² are box coordinates (x right, y down),
// the triangle stands on the box's bottom edge with its apex at the top.
bool inside_shape(Shape shape, float u, float v);
// The ideal shape stretched over a width × height box, row-major: 1 where a pixel's centre is inside.
// The checker's shape rule and world.compositional's soft shape match both compare against it.
std::vector<uint8_t> shape_template(Shape shape, int width, int height);
bool matches(const Detection& detection, const ObjectSpec& spec);

}  // namespace rewardgen::world
