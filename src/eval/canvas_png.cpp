// The PNG backend of Canvas, through Debian's cairo (libcairo2-dev): anti-aliased lines and real
// font rendering (fontconfig's sans-serif, DejaVu Sans on Debian) without a rasteriser of our own.
#include <cairo/cairo.h>

#include <cmath>
#include <memory>

#include "core/error.h"
#include "eval/canvas.h"

namespace rewardgen {

namespace {

struct SurfaceDeleter {
  void operator()(cairo_surface_t* s) const { cairo_surface_destroy(s); }
};
struct ContextDeleter {
  void operator()(cairo_t* c) const { cairo_destroy(c); }
};

class CairoCanvas final : public Canvas {
 public:
  explicit CairoCanvas(cairo_t* cr) : cr_(cr) {
    cairo_select_font_face(cr_, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
  }
  void rect(double x, double y, double width, double height, const std::string& fill, const std::string& stroke) override {
    cairo_rectangle(cr_, x, y, width, height);
    if (!fill.empty()) {
      set_colour(fill);
      stroke.empty() ? cairo_fill(cr_) : cairo_fill_preserve(cr_);
    }
    if (!stroke.empty()) {
      set_colour(stroke);
      cairo_set_line_width(cr_, 1);
      cairo_stroke(cr_);
    }
    cairo_new_path(cr_);
  }
  void line(double x1, double y1, double x2, double y2, const std::string& colour, double width) override {
    polyline({{x1, y1}, {x2, y2}}, colour, width);
  }
  void polyline(const std::vector<std::pair<double, double>>& points, const std::string& colour, double width) override {
    if (points.empty()) return;
    cairo_move_to(cr_, points[0].first, points[0].second);
    for (size_t i = 1; i < points.size(); ++i) cairo_line_to(cr_, points[i].first, points[i].second);
    set_colour(colour);
    cairo_set_line_width(cr_, width);
    cairo_set_line_join(cr_, CAIRO_LINE_JOIN_ROUND);
    cairo_stroke(cr_);
  }
  void text(double x, double y, const std::string& content, Anchor anchor, double size, bool vertical) override {
    cairo_save(cr_);
    cairo_set_font_size(cr_, size);
    cairo_text_extents_t extents;
    cairo_text_extents(cr_, content.c_str(), &extents);
    const double shift = anchor == Anchor::start ? 0 : anchor == Anchor::middle ? extents.x_advance / 2 : extents.x_advance;
    cairo_translate(cr_, x, y);
    if (vertical) cairo_rotate(cr_, -M_PI / 2);
    cairo_move_to(cr_, -shift, 0);
    cairo_set_source_rgb(cr_, 0.1, 0.1, 0.1);
    cairo_show_text(cr_, content.c_str());
    cairo_restore(cr_);
  }

 private:
  void set_colour(const std::string& colour) {
    const std::vector<double> rgb = parse_colour(colour);
    cairo_set_source_rgb(cr_, rgb[0], rgb[1], rgb[2]);
  }
  cairo_t* cr_;
};

cairo_status_t append_to_string(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

}  // namespace

std::string draw_png(int width, int height, const std::function<void(Canvas&)>& draw) {
  if (width < 1 || height < 1 || width > 16384 || height > 16384)
    throw Error(str("canvas: size ", width, "x", height, " must be within 1x1 .. 16384x16384"));
  std::unique_ptr<cairo_surface_t, SurfaceDeleter> surface(cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height));
  if (cairo_surface_status(surface.get()) != CAIRO_STATUS_SUCCESS)
    throw Error(str("canvas: cairo cannot make a ", width, "x", height, " surface: ", cairo_status_to_string(cairo_surface_status(surface.get()))));
  std::unique_ptr<cairo_t, ContextDeleter> context(cairo_create(surface.get()));
  CairoCanvas canvas(context.get());
  cairo_set_source_rgb(context.get(), 1, 1, 1);
  cairo_paint(context.get());
  draw(canvas);
  if (cairo_status(context.get()) != CAIRO_STATUS_SUCCESS)
    throw Error(str("canvas: drawing failed: ", cairo_status_to_string(cairo_status(context.get()))));
  std::string png;
  const cairo_status_t written = cairo_surface_write_to_png_stream(surface.get(), append_to_string, &png);
  if (written != CAIRO_STATUS_SUCCESS) throw Error(str("canvas: PNG encoding failed: ", cairo_status_to_string(written)));
  return png;
}

}  // namespace rewardgen
