#pragma once
// Validators for numeric flags. CLI11's Range lets NaN through (every comparison with NaN is
// false), so floating-point flags use finite_range; tests walk every command and check that each
// numeric flag refuses nan, inf and out-of-range values before anything runs.
#include <CLI/CLI.hpp>

#include <string>

namespace rewardgen::cli {

// A finite number in [min, max].
CLI::Validator finite_range(double min, double max);

}  // namespace rewardgen::cli
