#include "text/prompt_lines.h"

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"
#include "text/unicode.h"

namespace rewardgen::text {
namespace {

bool is_blank(const std::string& line) { return line.find_first_not_of(" \t") == std::string::npos; }

// Control characters would reach the terminal in messages and the tokenizer as garbage; the tab is
// white space to every tokenizer.
void check_text(const std::string& line, const std::string& where) {
  const std::u32string code_points = utf8_to_utf32(line, where);
  for (size_t i = 0; i < code_points.size(); ++i) {
    const char32_t c = code_points[i];
    if ((c < 0x20 && c != U'\t') || c == 0x7f) {
      char code[16];
      std::snprintf(code, sizeof code, "U+%04X", static_cast<unsigned>(c));
      throw Error(str(where, ": control character ", code, " at character ", i, " (a prompt is one line of text)"));
    }
  }
}

}  // namespace

std::vector<PromptLine> read_prompt_lines(const std::string& path, BlankLines blank) {
  require_regular_file(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(str("cannot open prompts file '", path, "'"));
  std::vector<PromptLine> lines;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();  // a file written on Windows
    if (blank == BlankLines::skip && is_blank(line)) continue;
    check_text(line, str("'", path, "' line ", number));
    lines.push_back({number, line});
  }
  return lines;
}

std::vector<PromptLine> read_prompt_texts(const std::string& path) {
  std::vector<PromptLine> lines = read_prompt_lines(path);
  for (PromptLine& line : lines) {
    if (line.text[line.text.find_first_not_of(" \t")] != '{') continue;
    const nlohmann::json row = nlohmann::json::parse(line.text, nullptr, false);
    if (row.is_discarded() || !row.is_object() || !row.contains("prompt") || !row["prompt"].is_string())
      throw Error(str("'", path, "' line ", line.number, ": a line starting with '{' must be a JSON object with a string \"prompt\""));
    line.text = row["prompt"].get<std::string>();
    check_text(line.text, str("'", path, "' line ", line.number, " \"prompt\""));
    if (is_blank(line.text)) throw Error(str("'", path, "' line ", line.number, ": \"prompt\" is empty"));
  }
  return lines;
}

}  // namespace rewardgen::text
