// The SVG backend of Canvas: plain text, one element per primitive.
#include <iomanip>
#include <sstream>

#include "core/error.h"
#include "eval/canvas.h"

namespace rewardgen {

namespace {

class SvgCanvas final : public Canvas {
 public:
  SvgCanvas(int width, int height) {
    svg_ << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
         << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  }
  void rect(double x, double y, double width, double height, const std::string& fill, const std::string& stroke) override {
    svg_ << "<rect x=\"" << number_text(x) << "\" y=\"" << number_text(y) << "\" width=\"" << number_text(width) << "\" height=\""
         << number_text(height) << "\" fill=\"" << (fill.empty() ? "none" : fill) << "\"";
    if (!stroke.empty()) svg_ << " stroke=\"" << stroke << "\"";
    svg_ << "/>\n";
  }
  void line(double x1, double y1, double x2, double y2, const std::string& colour, double width) override {
    svg_ << "<line x1=\"" << number_text(x1) << "\" y1=\"" << number_text(y1) << "\" x2=\"" << number_text(x2) << "\" y2=\"" << number_text(y2)
         << "\" stroke=\"" << colour << "\" stroke-width=\"" << number_text(width) << "\"/>\n";
  }
  void polyline(const std::vector<std::pair<double, double>>& points, const std::string& colour, double width) override {
    svg_ << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"" << number_text(width) << "\" points=\"";
    for (size_t i = 0; i < points.size(); ++i) svg_ << (i ? " " : "") << number_text(points[i].first) << "," << number_text(points[i].second);
    svg_ << "\"/>\n";
  }
  void text(double x, double y, const std::string& content, Anchor anchor, double size, bool vertical) override {
    const char* anchors[] = {"start", "middle", "end"};
    svg_ << "<text ";
    if (vertical) svg_ << "transform=\"translate(" << number_text(x) << "," << number_text(y) << ") rotate(-90)\"";
    else svg_ << "x=\"" << number_text(x) << "\" y=\"" << number_text(y) << "\"";
    svg_ << " text-anchor=\"" << anchors[static_cast<int>(anchor)] << "\" font-size=\"" << number_text(size) << "\">" << escape_markup(content)
         << "</text>\n";
  }
  std::string finish() { return svg_.str() + "</svg>\n"; }

 private:
  std::ostringstream svg_;
};

}  // namespace

std::string number_text(double v) {
  std::ostringstream out;
  out << std::setprecision(6) << v;
  return out.str();
}

std::string escape_markup(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else if (c == '"') out += "&quot;";
    else out += c;
  }
  return out;
}

std::vector<double> parse_colour(const std::string& colour) {
  auto hex = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::vector<double> rgb;
  if (colour.size() == 7 && colour[0] == '#')
    for (size_t i = 1; i < 7; i += 2) {
      const int high = hex(colour[i]), low = hex(colour[i + 1]);
      if (high < 0 || low < 0) break;
      rgb.push_back((16 * high + low) / 255.0);
    }
  if (rgb.size() != 3) throw Error(str("canvas: colour '", colour, "' is not #rrggbb"));
  return rgb;
}

std::string draw_svg(int width, int height, const std::function<void(Canvas&)>& draw) {
  if (width < 1 || height < 1) throw Error(str("canvas: size ", width, "x", height, " must be at least 1x1"));
  SvgCanvas canvas(width, height);
  draw(canvas);
  return canvas.finish();
}

}  // namespace rewardgen
