#!/usr/bin/env python3
"""Writes tests/data/*.safetensors: small files laid out by hand from the format spec, independent
of rewardgen's writer, so that the C++ reader is checked against a second implementation.

  reference_tiny.safetensors  4 tensors, 3 dtypes, metadata, header padded with spaces,
                              tensors stored in an order that differs from the header's key order
  truncated.safetensors       the same file cut 5 bytes short (the last tensor runs past the end)

Values (read back by tests/io/safetensors_test.cpp):
  "weight"  F32  [2, 3]  0.5 * i for i in 0..5          -> 0, 0.5, 1, 1.5, 2, 2.5
  "bias"    F16  [3]     -1, 0.25, 65504 (largest half)
  "ids"     I64  [2]     -7, 2**40
  "mask"    BOOL [4]     1, 0, 0, 1
Usage: python3 tools/make_safetensors_fixtures.py tests/data
"""
import json
import struct
import sys
from pathlib import Path


def layout(tensors):
    """tensors: list of (name, dtype, shape, raw bytes) in data order -> (header dict, data bytes)."""
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    return header, data


def main(out_dir):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors = [
        ("ids", "I64", [2], struct.pack("<2q", -7, 2**40)),
        ("weight", "F32", [2, 3], struct.pack("<6f", *[0.5 * i for i in range(6)])),
        ("bias", "F16", [3], struct.pack("<3e", -1.0, 0.25, 65504.0)),
        ("mask", "BOOL", [4], bytes([1, 0, 0, 1])),
    ]
    header, data = layout(tensors)
    header["__metadata__"] = {"format": "pt", "source": "tools/make_safetensors_fixtures.py"}
    # Keys sorted in the JSON text, so their order differs from the data order above.
    text = json.dumps(header, sort_keys=True).encode()
    text += b" " * (-(8 + len(text)) % 8)
    blob = struct.pack("<Q", len(text)) + text + data
    (out / "reference_tiny.safetensors").write_bytes(blob)
    (out / "truncated.safetensors").write_bytes(blob[:-5])


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data")
