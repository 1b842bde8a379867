#!/usr/bin/env python3
"""Test helper for safetensors files (no numpy).

  poke_safetensors.py set FILE NAME INDEX VALUE   write f32 VALUE ('inf' too)
                                                  at flat INDEX of tensor NAME
                                                  (in place)
  poke_safetensors.py same FILE1 FILE2 PREFIX...  "same" if every tensor whose
                                                  name starts with a PREFIX
                                                  ('' for all) holds the same
                                                  bytes in both files
  poke_safetensors.py get FILE NAME               the f32/i64 values of NAME
"""
import json
import struct
import sys


def read(path):
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    return blob, 8 + n, header


def tensor_bytes(path, name):
    blob, base, header = read(path)
    b, e = header[name]["data_offsets"]
    return header[name]["dtype"], blob[base + b:base + e]


def main(argv):
    cmd = argv[1]
    if cmd == "set":
        path, name, index, value = argv[2], argv[3], int(argv[4]), float(argv[5])
        blob, base, header = read(path)
        if header[name]["dtype"] != "F32":
            print(f"{name} is not F32")
            return 1
        b, _ = header[name]["data_offsets"]
        data = bytearray(blob)
        struct.pack_into("<f", data, base + b + 4 * index, value)
        open(path, "wb").write(bytes(data))
        return 0
    if cmd == "same":
        a, b, prefixes = argv[2], argv[3], argv[4:]
        _, _, ha = read(a)
        _, _, hb = read(b)
        names = sorted(n for n in ha if any(n.startswith(p) for p in prefixes))
        for n in names:
            if n not in hb or tensor_bytes(a, n) != tensor_bytes(b, n):
                print(f"differs: {n}")
                return 1
        print(f"same ({len(names)} tensors)")
        return 0
    if cmd == "get":
        dtype, raw = tensor_bytes(argv[2], argv[3])
        fmt = {"F32": "f", "I64": "q"}[dtype]
        vals = struct.unpack("<" + fmt * (len(raw) // struct.calcsize(fmt)), raw)
        print(" ".join(repr(v) for v in vals[:8]))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
