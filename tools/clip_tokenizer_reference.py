#!/usr/bin/python3
"""Independent reference for rewardgen's CLIP tokenizer: writes tests/data/clip_tokens.json, the
expected ids that tests/text/clip_tokenizer_test.cpp compares the C++ tokenizer against.

Written from the public description of CLIP's tokenizer (Radford et al. 2021, "a lower-cased byte
pair encoding (BPE) representation of the text with a 49,152 vocab size ... bracketed with [SOS]
and [EOS] tokens", max length 76 + 1) and the documented format of bpe_simple_vocab_16e6.txt.gz,
in plain Python with the `regex` module for the Unicode classes (Debian: python3-regex).

ftfy is not used (not installed; rewardgen does not link it). The clean-up step here does what the
C++ side documents as covered: NFC, straightening curly quotes, html.unescape twice, strip,
collapse whitespace, lower(). html.unescape is Python's full HTML5 one, so cases restricted to the
entities the C++ side covers check it against a second implementation.

Usage: /usr/bin/python3 tools/clip_tokenizer_reference.py data/clip/bpe_simple_vocab_16e6.txt.gz tests/data
"""
import gzip
import html
import json
import sys
import unicodedata
from pathlib import Path

import regex

MERGE_COUNT = 49152 - 256 - 2  # vocabulary size minus bytes, bytes+</w>, and the 2 special tokens
CONTEXT_LENGTH = 77

# One case per property the tokenizer must get right; the C++ test reports failures by name.
CASES = [
    ("ascii_prompt", "a photo of a cat"),
    ("ascii_sentence", "A photograph of an astronaut riding a horse on the moon."),
    ("accented_nfc", "caf\u00e9 \u00fcber na\u00efve"),
    ("accented_nfd", "cafe\u0301 u\u0308ber nai\u0308ve"),  # must equal accented_nfc after NFC
    ("cjk", "\u732b\u306e\u5199\u771f \u4e00\u5339\u72d7"),
    ("emoji", "a cat \U0001F431 with a hat \U0001F3A9!"),
    ("emoji_zwj", "family \U0001F468\u200d\U0001F469\u200d\U0001F467"),
    ("contractions", "don't it's THEY'LL we've I'm you'd they're"),
    ("punctuation", "hello, world!!! (really?) -- yes; \"quoted\" [x]"),
    ("digits", "2024 was 3.14 or 1,000,000"),
    ("html_entities", "fish &amp; chips &lt;b&gt; &quot;hi&quot; it&#39;s &apos;x&apos; a&nbsp;b"),
    ("html_double", "salt &amp;amp; pepper"),
    ("html_legacy_forms", "&AMP; &ampfoo &gt x &LT;y&QUOT; &#39 &apos no;"),
    ("html_numeric_fixups", "&#150;&#1;x&#0;y&#xD800;z&#1114112;&#128;&#x9d;"),
    ("html_numeric", "&#65;&#x42;&#99; &#233;t&#xe9;"),
    ("curly_quotes", "\u2018single\u2019 \u201cdouble\u201d \u201alow\u201b \u201elow\u201f it\u2019s"),
    ("whitespace_runs", "  a \t\t photo\n\n of \u3000 a\u00a0cat   "),
    ("uppercase_unicode", "\u00c9COLE STRASSE \u0130STANBUL \u03a3\u039f\u03a6\u039f\u03a3"),
    ("special_tokens_in_text", "<|startoftext|>hi<|endoftext|>"),
    ("mixed_scripts", "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440 \u0645\u0631\u062d\u0628\u0627 \u0928\u092e\u0938\u094d\u0924\u0947"),
    ("symbols", "100% @user #tag $5 \u20ac3 \u00a9 \u2122 ~_~"),
    ("info_separators", "\x1c a\x1db \x1f"),  # str.isspace() strips them, regex \\s does not split on them
    ("case_folded_literals", "IT'\u017f \u212aelvin"),  # 'ſ matches 's under IGNORECASE
    ("ypogegrammeni_dropped", "aa\u0345bb"),  # U+0345 matches no alternative of the pattern
    ("long_truncated", " ".join(["a photo of a cat sitting on a red chair"] * 12)),
    ("empty", ""),
]


def bytes_to_unicode():
    """Printable Latin-1 bytes map to themselves; the other 68 bytes to U+0100.. in byte order."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    # Insertion order matters: it is the vocabulary order (printable bytes first, in byte order).
    mapping = {b: chr(b) for b in printable}
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + len(mapping) - len(printable))
    return mapping


class Reference:
    def __init__(self, merges_gz):
        lines = gzip.open(merges_gz).read().decode("utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines[1:1 + MERGE_COUNT]]
        self.byte_char = bytes_to_unicode()
        symbols = [self.byte_char[b] for b in range(256)]
        # Vocabulary order: the byte characters in the mapping's insertion order (printable first).
        ordered = list(self.byte_char.values())
        vocab = ordered + [c + "</w>" for c in ordered] + ["".join(m) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        assert len(vocab) == 49408 and len(symbols) == 256
        self.ids = {token: i for i, token in enumerate(vocab)}
        self.rank = {m: i for i, m in enumerate(merges)}
        self.pattern = regex.compile(
            r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+",
            regex.IGNORECASE)

    @staticmethod
    def clean(text):
        text = unicodedata.normalize("NFC", text)
        for curly, straight in (("\u2018\u2019\u201a\u201b", "'"), ("\u201c\u201d\u201e\u201f", '"')):
            for c in curly:
                text = text.replace(c, straight)
        text = html.unescape(html.unescape(text)).strip()
        text = regex.sub(r"\s+", " ", text).strip()
        return text.lower()

    def merge_word(self, symbols):
        """Repeatedly merges every occurrence of the lowest-ranked adjacent pair."""
        while len(symbols) > 1:
            pairs = [(self.rank[p], p) for p in zip(symbols, symbols[1:]) if p in self.rank]
            if not pairs:
                break
            best = min(pairs)[1]
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            symbols = merged
        return symbols

    def encode(self, text):
        ids = []
        for piece in self.pattern.findall(self.clean(text)):
            if piece in ("<|startoftext|>", "<|endoftext|>"):
                ids.append(self.ids[piece])
                continue
            chars = [self.byte_char[b] for b in piece.encode("utf-8")]
            chars[-1] += "</w>"
            ids += [self.ids[s] for s in self.merge_word(chars)]
        return ids

    def encode_padded(self, text, length=CONTEXT_LENGTH):
        ids = [self.ids["<|startoftext|>"]] + self.encode(text)[:length - 2] + [self.ids["<|endoftext|>"]]
        return ids + [self.ids["<|endoftext|>"]] * (length - len(ids))


def main():
    merges_gz, out_dir = sys.argv[1], Path(sys.argv[2])
    ref = Reference(merges_gz)
    cases = [{"name": name, "text": text, "ids": ref.encode(text), "padded": ref.encode_padded(text)}
             for name, text in CASES]
    document = {
        "source": "tools/clip_tokenizer_reference.py (independent Python reference, regex " + regex.__version__
                  + ", Unicode " + unicodedata.unidata_version + ")",
        "context_length": CONTEXT_LENGTH,
        "cases": cases,
    }
    (out_dir / "clip_tokens.json").write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n",
                                              encoding="utf-8")


if __name__ == "__main__":
    main()
