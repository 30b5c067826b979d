#pragma once
// A drawing surface for plots: the few primitives a line plot needs, drawn by one plotting function
// onto either backend — SVG text (diffs, renders anywhere) or a PNG through Debian's cairo (the
// report's plots, which must look the same in any viewer). Coordinates are pixels, y down.
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace rewardgen {

class Canvas {
 public:
  enum class Anchor { start, middle, end };  // where (x, y) sits on a text's baseline
  virtual ~Canvas() = default;
  // Colours are "#rrggbb"; an empty fill or stroke draws nothing of it.
  virtual void rect(double x, double y, double width, double height, const std::string& fill, const std::string& stroke) = 0;
  virtual void line(double x1, double y1, double x2, double y2, const std::string& colour, double width) = 0;
  virtual void polyline(const std::vector<std::pair<double, double>>& points, const std::string& colour, double width) = 0;
  // Text in a sans-serif face; `vertical` turns it 90° counter-clockwise about (x, y).
  virtual void text(double x, double y, const std::string& text, Anchor anchor, double size, bool vertical = false) = 0;
};

// Runs `draw` on a width × height canvas and returns the finished SVG document / PNG file bytes.
std::string draw_svg(int width, int height, const std::function<void(Canvas&)>& draw);
std::string draw_png(int width, int height, const std::function<void(Canvas&)>& draw);

// Text for SVG and HTML, in content or in a quoted attribute: & < > " escaped.
std::string escape_markup(const std::string& text);

// A coordinate or an axis label: six significant digits, no trailing zeros.
std::string number_text(double v);

// "#rrggbb" -> {r, g, b} in [0, 1]; Error naming the text otherwise.
std::vector<double> parse_colour(const std::string& colour);

}  // namespace rewardgen
