#include "world/checker.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace rewardgen::world {

std::string Detection::text() const {
  char where[96];
  std::snprintf(where, sizeof where, " at (%.1f, %.1f), %d px, fill %.2f", cx, cy, area, fill);
  return name(size) + " " + name(colour) + " " + name(shape) + where;
}

namespace {

// Per pixel: the palette index of its colour, or -1 when no palette colour is close enough.
std::vector<int> classify_pixels(const at::Tensor& image, const CheckerOptions& options) {
  const at::Tensor rgb = ((image.detach().to(at::kFloat).cpu().clamp(-1, 1) + 1) * 127.5f).contiguous();
  const float* data = rgb.data_ptr<float>();
  const int plane = kImageSize * kImageSize;
  std::vector<int> labels(plane, -1);
  const float limit = options.max_colour_distance * options.max_colour_distance;
  for (int at = 0; at < plane; ++at) {
    float best = std::numeric_limits<float>::max();
    for (size_t index = 0; index < kColours.size(); ++index) {
      const Rgb colour = palette_rgb(kColours[index]);
      const float dr = data[at] - colour.r, dg = data[plane + at] - colour.g, db = data[2 * plane + at] - colour.b;
      const float distance = dr * dr + dg * dg + db * db;
      if (distance < best) best = distance, labels[at] = static_cast<int>(index);
    }
    if (best > limit) labels[at] = -1;
  }
  return labels;
}

// The shape whose ideal mask, stretched over the component's bounding box, overlaps the component
// best (intersection over union). Whole-shape matching is robust where one statistic is not: a
// blurred small circle and a small square differ little in fill ratio, but a lot in their corners.
Shape best_matching_shape(const std::vector<int>& component, int x0, int y0, int x1, int y1) {
  const int width = x1 - x0 + 1, height = y1 - y0 + 1;
  int area = 0;
  for (int in_component : component) area += in_component != 0;
  size_t best = 0;
  float best_iou = -1;
  for (size_t s = 0; s < kShapes.size(); ++s) {
    const std::vector<uint8_t> inside = shape_template(kShapes[s], width, height);
    int intersection = 0, template_area = 0;
    for (size_t i = 0; i < inside.size(); ++i) template_area += inside[i], intersection += inside[i] && component[i] != 0;
    const float iou = static_cast<float>(intersection) / static_cast<float>(area + template_area - intersection);
    if (iou > best_iou) best_iou = iou, best = s;
  }
  return kShapes[best];
}

}  // namespace

bool inside_shape(Shape shape, float u, float v) {
  switch (shape) {
    case Shape::circle: return u * u + v * v <= 1.0f;
    case Shape::square: return true;
    case Shape::triangle: return std::abs(u) <= (v + 1) / 2;
  }
  return false;
}

std::vector<uint8_t> shape_template(Shape shape, int width, int height) {
  const float half_w = static_cast<float>(width) / 2, half_h = static_cast<float>(height) / 2;
  std::vector<uint8_t> inside(static_cast<size_t>(width) * static_cast<size_t>(height));
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      inside[static_cast<size_t>(y * width + x)] = inside_shape(shape, (x + 0.5f - half_w) / half_w, (y + 0.5f - half_h) / half_h);
  return inside;
}

std::vector<Detection> detect_objects(const at::Tensor& image, const CheckerOptions& options) {
  if (image.dim() != 3 || image.size(0) != 3 || image.size(1) != kImageSize || image.size(2) != kImageSize)
    throw Error(str("the world checker needs a [3, ", kImageSize, ", ", kImageSize, "] image, got ", image.sizes()));
  std::vector<int> labels = classify_pixels(image, options);
  std::vector<bool> seen(labels.size(), false);
  std::vector<Detection> detections;
  std::vector<int> stack, pixels, mask;
  for (int start = 0; start < static_cast<int>(labels.size()); ++start) {
    if (labels[start] < 0 || seen[start]) continue;
    // Flood fill the 8-connected component of this colour.
    const int label = labels[start];
    int area = 0, x0 = kImageSize, y0 = kImageSize, x1 = -1, y1 = -1;
    double sum_x = 0, sum_y = 0;
    pixels.clear();
    stack.assign(1, start);
    seen[start] = true;
    while (!stack.empty()) {
      const int at = stack.back();
      stack.pop_back();
      const int x = at % kImageSize, y = at / kImageSize;
      pixels.push_back(at);
      ++area, sum_x += x + 0.5, sum_y += y + 0.5;
      x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
      for (int dy = -1; dy <= 1; ++dy) {
        for (int dx = -1; dx <= 1; ++dx) {
          const int nx = x + dx, ny = y + dy;
          if (nx < 0 || ny < 0 || nx >= kImageSize || ny >= kImageSize) continue;
          const int next = ny * kImageSize + nx;
          if (!seen[next] && labels[next] == label) seen[next] = true, stack.push_back(next);
        }
      }
    }
    if (area < options.min_area) continue;
    Detection detection;
    detection.colour = kColours[static_cast<size_t>(label)];
    detection.area = area;
    detection.x0 = x0, detection.y0 = y0, detection.x1 = x1, detection.y1 = y1;
    detection.cx = static_cast<float>(sum_x / area), detection.cy = static_cast<float>(sum_y / area);
    const int width = x1 - x0 + 1, height = y1 - y0 + 1;
    detection.fill = static_cast<float>(area) / static_cast<float>(width * height);
    mask.assign(static_cast<size_t>(width * height), 0);
    for (int at : pixels) mask[static_cast<size_t>((at / kImageSize - y0) * width + at % kImageSize - x0)] = 1;
    detection.shape = best_matching_shape(mask, x0, y0, x1, y1);
    detection.size = static_cast<float>(std::max(width, height)) >= options.large_extent ? Size::large : Size::small;
    detections.push_back(detection);
  }
  return detections;
}

bool matches(const Detection& detection, const ObjectSpec& spec) {
  return detection.shape == spec.shape && (!spec.colour || detection.colour == *spec.colour) &&
         (!spec.size || detection.size == *spec.size);
}

namespace {

std::vector<const Detection*> matching(const std::vector<Detection>& detections, const ObjectSpec& spec) {
  std::vector<const Detection*> found;
  for (const Detection& detection : detections)
    if (matches(detection, spec)) found.push_back(&detection);
  return found;
}

std::string describe(const std::vector<const Detection*>& found) {
  if (found.empty()) return "none found";
  std::string out = str("found ", found.size(), ":");
  for (const Detection* detection : found) out += " [" + detection->text() + "]";
  return out;
}

ClauseResult exists_clause(const std::vector<Detection>& detections, const ObjectSpec& spec) {
  const auto found = matching(detections, spec);
  return {"there is a " + spec.text(), !found.empty(), describe(found)};
}

bool relation_holds(const Detection& a, const Detection& b, Relation relation, float margin) {
  switch (relation) {
    case Relation::left_of: return b.cx - a.cx > margin;
    case Relation::right_of: return a.cx - b.cx > margin;
    case Relation::above: return b.cy - a.cy > margin;
    case Relation::below: return a.cy - b.cy > margin;
  }
  return false;
}

}  // namespace

CheckResult check(const at::Tensor& image, const Prompt& prompt, const CheckerOptions& options) {
  CheckResult result;
  result.detections = detect_objects(image, options);
  const std::vector<Detection>& detections = result.detections;
  if (prompt.task == Task::counting) {
    const ObjectSpec& spec = prompt.objects[0];
    const auto found = matching(detections, spec);
    result.clauses.push_back({str("exactly ", prompt.count, " ", spec.text(), "s"),
                              static_cast<int>(found.size()) == prompt.count, describe(found)});
  } else {
    for (const ObjectSpec& spec : prompt.objects) result.clauses.push_back(exists_clause(detections, spec));
  }
  if (prompt.task == Task::position) {
    const auto firsts = matching(detections, prompt.objects[0]), seconds = matching(detections, prompt.objects[1]);
    bool holds = false;
    for (const Detection* a : firsts)
      for (const Detection* b : seconds) holds = holds || relation_holds(*a, *b, prompt.relation, options.relation_margin);
    result.clauses.push_back({str("the ", prompt.objects[0].text(), " is ", phrase(prompt.relation), " the ",
                                  prompt.objects[1].text()),
                              holds, firsts.empty() || seconds.empty() ? "cannot hold: an object is missing"
                                     : holds                           ? "centroids agree"
                                                                       : "no pair of centroids agrees"});
  }
  result.passed = std::all_of(result.clauses.begin(), result.clauses.end(), [](const ClauseResult& c) { return c.passed; });
  return result;
}

std::string CheckResult::explain() const {
  std::string out = str("detected ", detections.size(), " object", detections.size() == 1 ? "" : "s", ":\n");
  for (const Detection& detection : detections) out += "  " + detection.text() + "\n";
  for (const ClauseResult& clause : clauses)
    out += str(clause.passed ? "  PASS " : "  FAIL ", clause.clause, " — ", clause.detail, "\n");
  return out + (passed ? "verdict: PASS\n" : "verdict: FAIL\n");
}

}  // namespace rewardgen::world
