#pragma once
// Numbers as tables and reports print them.
#include <cstdio>
#include <string>

namespace rewardgen {

// `value` with `digits` digits after the point ("%.*f"): 0.4261 at 3 -> "0.426".
inline std::string fixed_digits(double value, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}

}  // namespace rewardgen
