#include "cli/validators.h"

#include <cmath>

#include "core/error.h"

namespace rewardgen::cli {

CLI::Validator finite_range(double min, double max) {
  return CLI::Validator(
      [min, max](std::string& input) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(input, value)) return str("'", input, "' is not a number");
        if (!std::isfinite(value) || value < min || value > max)
          return str("value ", input, " is not a finite number in [", min, ", ", max, "]");
        return "";
      },
      str("FLOAT in [", min, ", ", max, "]"));
}

}  // namespace rewardgen::cli
