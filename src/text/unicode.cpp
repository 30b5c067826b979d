#include "text/unicode.h"

#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/ustring.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "core/error.h"

namespace rewardgen::text {
namespace {

icu::UnicodeString to_icu(const std::u32string& text) {
  return icu::UnicodeString::fromUTF32(reinterpret_cast<const UChar32*>(text.data()),
                                       static_cast<int32_t>(text.size()));
}

std::u32string from_icu(const icu::UnicodeString& text) {
  std::u32string out;
  for (int32_t i = 0; i < text.length();) {
    const UChar32 c = text.char32At(i);
    out.push_back(static_cast<char32_t>(c));
    i += U16_LENGTH(c);
  }
  return out;
}

}  // namespace

std::u32string utf8_to_utf32(const std::string& utf8, const std::string& what) {
  std::u32string out;
  out.reserve(utf8.size());
  const auto* bytes = reinterpret_cast<const uint8_t*>(utf8.data());
  const int32_t length = static_cast<int32_t>(utf8.size());
  for (int32_t i = 0; i < length;) {
    const int32_t start = i;
    UChar32 c;
    U8_NEXT(bytes, i, length, c);
    if (c < 0) throw Error(str(what, ": not valid UTF-8 (ill-formed sequence at byte ", start, ")"));
    out.push_back(static_cast<char32_t>(c));
  }
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  uint8_t buffer[U8_MAX_LENGTH];
  int32_t length = 0;
  UBool error = false;
  U8_APPEND(buffer, length, U8_MAX_LENGTH, static_cast<UChar32>(c), error);
  if (error) throw Error(str("cannot encode code point ", static_cast<uint32_t>(c), " as UTF-8"));
  out.append(reinterpret_cast<const char*>(buffer), static_cast<size_t>(length));
}

std::string utf32_to_utf8(const std::u32string& text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) append_utf8(out, c);
  return out;
}

std::string utf8_with_replacement(const std::string& bytes) {
  // U8_NEXT_OR_FFFD consumes one maximal ill-formed subpart per U+FFFD, the practice Unicode
  // recommends (chapter 3, "U+FFFD Substitution of Maximal Subparts") and Python follows.
  std::string out;
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  const int32_t length = static_cast<int32_t>(bytes.size());
  for (int32_t i = 0; i < length;) {
    UChar32 c;
    U8_NEXT_OR_FFFD(data, i, length, c);
    append_utf8(out, static_cast<char32_t>(c));
  }
  return out;
}

namespace {

std::u32string normalize(const std::u32string& text, const icu::Normalizer2* (*instance)(UErrorCode&), const char* form) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* normalizer = instance(status);
  if (U_FAILURE(status)) throw Error(str("ICU ", form, " normaliser unavailable: ", u_errorName(status)));
  const icu::UnicodeString normalized = normalizer->normalize(to_icu(text), status);
  if (U_FAILURE(status)) throw Error(str("ICU ", form, " normalisation failed: ", u_errorName(status)));
  return from_icu(normalized);
}

}  // namespace

std::u32string nfc(const std::u32string& text) { return normalize(text, &icu::Normalizer2::getNFCInstance, "NFC"); }
std::u32string nfd(const std::u32string& text) { return normalize(text, &icu::Normalizer2::getNFDInstance, "NFD"); }

bool is_other(char32_t c) { return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_C_MASK) != 0; }
bool is_nonspacing_mark(char32_t c) { return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_MN_MASK) != 0; }
bool is_punctuation(char32_t c) { return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_P_MASK) != 0; }
bool is_space_separator(char32_t c) { return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_ZS_MASK) != 0; }

std::u32string lower(const std::u32string& text) {
  icu::UnicodeString lowered = to_icu(text);
  lowered.toLower(icu::Locale::getRoot());  // full mappings incl. final sigma, no locale tailoring
  return from_icu(lowered);
}

bool is_regex_space(char32_t c) { return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_WHITE_SPACE); }

bool is_python_space(char32_t c) { return (c >= 0x1C && c <= 0x1F) || is_regex_space(c); }

bool is_letter(char32_t c) { return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_L_MASK) != 0; }

bool is_number(char32_t c) { return (U_GET_GC_MASK(static_cast<UChar32>(c)) & U_GC_N_MASK) != 0; }

char32_t fold_case(char32_t c) {
  return static_cast<char32_t>(u_foldCase(static_cast<UChar32>(c), U_FOLD_CASE_DEFAULT));
}

std::u32string fix_text_subset(const std::u32string& text) {
  std::u32string fixed = nfc(text);
  for (char32_t& c : fixed) {
    // ftfy fixes.py uncurl_quotes: SINGLE_QUOTE_RE = [‘’‚‛], DOUBLE_QUOTE_RE = [“”„‟].
    if (c == U'\u2018' || c == U'\u2019' || c == U'\u201A' || c == U'\u201B') c = U'\'';
    if (c == U'\u201C' || c == U'\u201D' || c == U'\u201E' || c == U'\u201F') c = U'"';
  }
  return fixed;
}

namespace {

struct NamedEntity {
  const char32_t* name;
  char32_t value;
  bool semicolon_optional;  // HTML5 "legacy" names, recognised without ';' (Python html.entities.html5)
};

constexpr NamedEntity kNamedEntities[] = {
    {U"amp", U'&', true},   {U"AMP", U'&', true},   {U"lt", U'<', true},      {U"LT", U'<', true},
    {U"gt", U'>', true},    {U"GT", U'>', true},    {U"quot", U'"', true},    {U"QUOT", U'"', true},
    {U"nbsp", U'\u00A0', true}, {U"apos", U'\'', false},
};

const NamedEntity* find_entity(const std::u32string& name, bool with_semicolon) {
  for (const NamedEntity& entity : kNamedEntities)
    if (name == entity.name && (with_semicolon || entity.semicolon_optional)) return &entity;
  return nullptr;
}

// Python html/__init__.py: _invalid_charrefs maps &#0; and the C1 range as Windows-1252 does.
constexpr std::array<char32_t, 32> kCp1252C1 = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};

// Python html/__init__.py _invalid_codepoints: removed rather than decoded.
bool is_invalid_codepoint(uint32_t n) {
  return (n >= 0x1 && n <= 0x8) || n == 0xB || (n >= 0xE && n <= 0x1F) || (n >= 0x7F && n <= 0x9F) ||
         (n >= 0xFDD0 && n <= 0xFDEF) || (n & 0xFFFE) == 0xFFFE;
}

// The text a numeric reference &#n; stands for, as Python's html._replace_charref decides it.
std::u32string numeric_reference(uint32_t n) {
  if (n == 0) return U"\uFFFD";
  if (n == 0x0D) return U"\r";
  if (n >= 0x80 && n <= 0x9F) return std::u32string(1, kCp1252C1[n - 0x80]);
  if ((n >= 0xD800 && n <= 0xDFFF) || n > 0x10FFFF) return U"\uFFFD";
  if (is_invalid_codepoint(n)) return U"";
  return std::u32string(1, static_cast<char32_t>(n));
}

int digit_value(char32_t c, int base) {
  int value = -1;
  if (c >= U'0' && c <= U'9') value = static_cast<int>(c - U'0');
  if (base == 16 && c >= U'a' && c <= U'f') value = static_cast<int>(c - U'a') + 10;
  if (base == 16 && c >= U'A' && c <= U'F') value = static_cast<int>(c - U'A') + 10;
  return value;
}

// Reads "#123;" / "#x1F;" (';' optional) at text[pos] (just after '&'); returns the characters
// consumed (0 when there is no numeric reference there) and sets `replacement`.
size_t read_numeric_reference(const std::u32string& text, size_t pos, std::u32string& replacement) {
  if (pos >= text.size() || text[pos] != U'#') return 0;
  size_t i = pos + 1;
  int base = 10;
  if (i < text.size() && (text[i] == U'x' || text[i] == U'X')) base = 16, ++i;
  const size_t digits_begin = i;
  uint32_t value = 0;
  for (; i < text.size() && digit_value(text[i], base) >= 0; ++i)
    value = std::min<uint32_t>(value * base + static_cast<uint32_t>(digit_value(text[i], base)), 0x110000);
  if (i == digits_begin) return 0;
  if (i < text.size() && text[i] == U';') ++i;
  replacement = numeric_reference(value);
  return i - pos;
}

// Python's named-reference rule: the name is up to 32 characters other than \t \n \f space < & # ;
// plus an optional ';'. A whole match wins; else the longest semicolon-less prefix (>= 2 chars).
size_t read_named_reference(const std::u32string& text, size_t pos, std::u32string& replacement) {
  const std::u32string stops = U"\t\n\f <&#;";
  size_t end = pos;
  while (end < text.size() && end - pos < 32 && stops.find(text[end]) == std::u32string::npos) ++end;
  if (end == pos) return 0;
  const bool semicolon = end < text.size() && text[end] == U';';
  const std::u32string name = text.substr(pos, end - pos);
  if (const NamedEntity* entity = find_entity(name, semicolon)) {
    replacement = std::u32string(1, entity->value);
    return name.size() + (semicolon ? 1 : 0);
  }
  for (size_t length = name.size() - (semicolon ? 0 : 1); length >= 2; --length)
    if (const NamedEntity* entity = find_entity(name.substr(0, length), false)) {
      replacement = std::u32string(1, entity->value);
      return length;
    }
  return 0;
}

}  // namespace

std::u32string html_unescape(const std::u32string& text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != U'&') {
      out.push_back(text[i]);
      continue;
    }
    std::u32string replacement;
    size_t consumed = read_numeric_reference(text, i + 1, replacement);
    if (consumed == 0) consumed = read_named_reference(text, i + 1, replacement);
    if (consumed == 0) {
      out.push_back(U'&');
      continue;
    }
    out += replacement;
    i += consumed;
  }
  return out;
}

}  // namespace rewardgen::text
