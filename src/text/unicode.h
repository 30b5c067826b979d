#pragma once
// The Unicode pieces of CLIP's text clean-up and pre-tokenisation, on UTF-8 strings, via ICU.
// Each function names the Python behaviour it reproduces (CLIP simple_tokenizer.py runs on
// Python 3 str with the `regex` module).
#include <string>

namespace rewardgen::text {

// Decodes UTF-8 into code points; throws Error naming `what` and the byte offset of the first
// ill-formed sequence (Python str cannot hold such bytes, so there is no CLIP behaviour to copy).
std::u32string utf8_to_utf32(const std::string& utf8, const std::string& what);
std::string utf32_to_utf8(const std::u32string& text);
void append_utf8(std::string& out, char32_t c);
// Bytes to text as Python's bytes.decode("utf-8", errors="replace"): U+FFFD per maximal ill-formed subpart.
std::string utf8_with_replacement(const std::string& bytes);

// unicodedata.normalize("NFC", text), through ICU's Normalizer2.
std::u32string nfc(const std::u32string& text);
// str.lower(): full, locale-independent lower-case mapping (İ -> i̇, final sigma), ICU root locale.
std::u32string lower(const std::u32string& text);

// unicodedata.normalize("NFD", text): canonical decomposition (é -> e + U+0301).
std::u32string nfd(const std::u32string& text);

// General categories, as unicodedata.category(c) names them: C* (Cc, Cf, Cn, Co, Cs), Mn, P*, Zs.
bool is_other(char32_t c);              // category starts with "C"
bool is_nonspacing_mark(char32_t c);    // "Mn" (what BERT's accent stripping drops after NFD)
bool is_punctuation(char32_t c);        // category starts with "P"
bool is_space_separator(char32_t c);    // "Zs"

// `\s` of the `regex` module for str patterns: the Unicode White_Space property (25 code points).
bool is_regex_space(char32_t c);
// str.isspace() (used by str.strip()): White_Space plus U+001C..U+001F, which Python counts as space
// because their bidirectional class is B or S.
bool is_python_space(char32_t c);
bool is_letter(char32_t c);  // \p{L}
bool is_number(char32_t c);  // \p{N}
// Simple case folding, the comparison `regex` makes for literals under IGNORECASE (ſ matches s).
char32_t fold_case(char32_t c);

// The subset of ftfy.fix_text that changes ordinary prompts: NFC, then curly quotes straightened
// (‘ ’ ‚ ‛ -> ', “ ” „ ‟ -> "), as ftfy's uncurl_quotes. See docs/tokenizer.md for what is left out.
std::u32string fix_text_subset(const std::u32string& text);
// html.unescape for the entities ordinary prompts carry: &amp; &lt; &gt; &quot; (also the
// semicolon-less and upper-case forms HTML5 allows for these four), &#39; &apos; &nbsp;, and
// numeric &#NNN; / &#xHH; with Python's fix-ups (C1 range read as cp1252, invalid -> U+FFFD or dropped).
std::u32string html_unescape(const std::u32string& text);

}  // namespace rewardgen::text
