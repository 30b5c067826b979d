#pragma once
// Files of one prompt a line (`sample --prompts`, `eval --prompts`, `reward --prompts`,
// `tokenize --file`, a training config's prompts_file), read in one place so that every command
// refuses the same bad bytes the same way: before any model is loaded, naming the file and line.
#include <cstdint>
#include <string>
#include <vector>

namespace rewardgen::text {

struct PromptLine {
  int64_t number;    // 1-based line number in the file
  std::string text;  // without its line end ("\n", or "\r\n" from a file written on Windows)
};

enum class BlankLines { skip, keep };

// The lines of `path` (a regular file). Lines of only spaces and tabs are skipped, or kept where a
// line stands for something (reward: one line per image). Every line must be UTF-8 without control
// characters but the tab: otherwise Error "'<path>' line N: ..." naming the byte.
std::vector<PromptLine> read_prompt_lines(const std::string& path, BlankLines blank = BlankLines::skip);

// The same, where a line may also be a JSON object with a string "prompt" (other keys ignored): the
// JSON lines `eval --prompts` and data/world/eval_prompts.jsonl use, so one file serves training
// (a config's prompts_file) and evaluation. Such a line gives its "prompt"; a line that starts with
// '{' but is not such an object is an Error naming file and line.
std::vector<PromptLine> read_prompt_texts(const std::string& path);

}  // namespace rewardgen::text
