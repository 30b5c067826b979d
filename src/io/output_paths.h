#pragma once
// Where a command writes. Checked before anything is built, sampled or trained, so that a bad
// --out costs nothing and never destroys the inputs.
#include <string>
#include <vector>

namespace rewardgen {

// Error when `output` (named `flag` in the message) is one of `inputs` or a folder holding one:
// writing there would replace or mix with what the command reads. Empty inputs are skipped.
void refuse_output_over_inputs(const std::string& output, const std::vector<std::string>& inputs,
                               const std::string& flag = "--out");

// Creates folder `dir` (and its parents) and proves it writable by creating and removing a file
// in it: an unwritable target fails at once, not after the work it would hold. When `must_be_empty`,
// a folder that already holds files is an Error too (new outputs would mix with old ones).
void prepare_output_folder(const std::string& dir, bool must_be_empty = false, const std::string& flag = "--out");

}  // namespace rewardgen
