#!/usr/bin/env python3
"""Prints a safetensors file's metadata and tensors (name, dtype, shape)."""
import json
import struct
import sys

blob = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", blob[:8])
header = json.loads(blob[8:8 + n])
print("metadata " + json.dumps(header.pop("__metadata__", {}), sort_keys=True))
for name in sorted(header):
    print(f"{name} {header[name]['dtype']} {header[name]['shape']}")
print(f"tensors {len(header)}")
