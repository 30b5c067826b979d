"""Minimal pure-Python safetensors reader/writer (numpy only), used by tools/make_parity_fixtures.py.

Layout as in tools/make_safetensors_fixtures.py: u64 little-endian header length, JSON header
{name: {dtype, shape, data_offsets}} plus optional "__metadata__" (str -> str), padded with spaces to a
multiple of 8, then the raw little-endian tensor bytes. Tensors are stored in sorted-name order.
"""
import json
import struct

import numpy as np

_TO_ST = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64",
          np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("uint8"): "U8", np.dtype("bool"): "BOOL"}
_FROM_ST = {v: k for k, v in _TO_ST.items()}


def _to_numpy(t):
    if hasattr(t, "detach"):  # torch.Tensor
        t = t.detach().cpu().contiguous().numpy()
    return np.ascontiguousarray(t)


def save_file(tensors, path, metadata=None):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        arr = _to_numpy(tensors[name])
        if arr.dtype not in _TO_ST:
            raise TypeError(f"{name}: unsupported dtype {arr.dtype}")
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": _TO_ST[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def load_file(path, with_metadata=False):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, info in header.items():
        dt = _FROM_ST[info["dtype"]].newbyteorder("<")
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=dt).reshape(info["shape"]).copy()
    return (out, meta) if with_metadata else out
