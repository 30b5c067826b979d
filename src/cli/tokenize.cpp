// rewardgen tokenize TEXT: the CLIP token ids a prompt becomes (SOT, BPE ids, EOT, padding), as a
// JSON array on one line; for checking prompts against other implementations.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "core/paths.h"
#include "text/clip_tokenizer.h"
#include "text/prompt_lines.h"

namespace rewardgen::cli {

void add_tokenize_command(CLI::App& app, Context& context, Commands& commands) {
  auto* sub = app.add_subcommand("tokenize", "Print the CLIP token ids of a text as a JSON array");
  auto text = std::make_shared<std::string>();
  auto tokenizer_dir = std::make_shared<std::string>();
  auto length = std::make_shared<int64_t>(77);
  auto file = std::make_shared<std::string>();
  sub->add_option("text", *text, "the text (prompt) to tokenize");
  sub->add_option("--file", *file, "tokenize every line of this file in one process: one JSON array per line, in order");
  sub->add_option("--tokenizer", *tokenizer_dir,
                  "a Hugging Face tokenizer folder (vocab.json, merges.txt); default: the shipped CLIP merges");
  sub->add_option("--length", *length, "padded length: start + ids + end, truncated or padded")
      ->default_val(77)
      ->check(CLI::Range(int64_t{2}, int64_t{1} << 20));
  commands.push_back({sub, [text, file, tokenizer_dir, length, sub] {
                        const bool has_text = sub->count("text") > 0;
                        if (has_text == !file->empty()) throw Error("give either a TEXT or --file FILE (one text per line)");
                        const ClipTokenizer tokenizer =
                            tokenizer_dir->empty()
                                ? ClipTokenizer::from_gzip_merges(shipped_file("clip/bpe_simple_vocab_16e6.txt.gz"))
                                : ClipTokenizer::from_directory(*tokenizer_dir);
                        if (has_text) {
                          std::cout << nlohmann::json(tokenizer.encode_padded(*text, *length)).dump() << '\n';
                          return;
                        }
                        for (const text::PromptLine& line : text::read_prompt_lines(*file, text::BlankLines::keep))
                          std::cout << nlohmann::json(tokenizer.encode_padded(line.text, *length)).dump() << '\n';
                      }});
}

}  // namespace rewardgen::cli
