#!/usr/bin/env python3
"""Compares the f32 tensors of two safetensors files, without numpy.

  compare_safetensors.py A B ATOL [NAME_PREFIX]

Every tensor of A whose name starts with NAME_PREFIX (default: all) must be
in B with the same shape and every element within ATOL. Prints
"N tensors within ATOL (largest difference D)" or the first mismatch.
"""
import json
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    (size,) = struct.unpack_from("<Q", blob, 0)
    header = json.loads(blob[8:8 + size])
    base = 8 + size
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        data = blob[base + begin:base + end]
        if info["dtype"] == "F32":
            values = struct.unpack(f"<{len(data) // 4}f", data)
        elif info["dtype"] == "I64":
            values = struct.unpack(f"<{len(data) // 8}q", data)
        else:
            continue
        tensors[name] = (info["shape"], values)
    return tensors


def main(argv):
    if len(argv) < 4:
        print(__doc__)
        return 2
    a, b, atol = read(argv[1]), read(argv[2]), float(argv[3])
    prefix = argv[4] if len(argv) > 4 else ""
    count, worst = 0, 0.0
    for name, (shape, values) in sorted(a.items()):
        if not name.startswith(prefix):
            continue
        if name not in b:
            print(f"{name}: missing from {argv[2]}")
            return 1
        other_shape, other = b[name]
        if shape != other_shape:
            print(f"{name}: shape {shape} vs {other_shape}")
            return 1
        for i, (u, v) in enumerate(zip(values, other)):
            d = abs(u - v)
            worst = max(worst, d)
            if not d <= atol:
                print(f"{name}[{i}]: {u} vs {v} (difference {d:.3g} > {atol:g})")
                return 1
        count += 1
    if count == 0:
        print("no tensors compared")
        return 1
    print(f"{count} tensors within {atol:g} (largest difference {worst:.2g})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
