#!/usr/bin/env python3
"""Independent reader of the .hag container (docs/artifact-format.md): checks
the magic, version, sizes and FNV-1a checksum, and prints manifest facts for
FileCheck. Exits non-zero on any inconsistency."""
import json
import struct
import sys


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main(path):
    blob = open(path, "rb").read()
    if blob[:8] != b"HAGARTF\0":
        print("bad magic")
        return 1
    version, flags, msize, csize = struct.unpack("<IIQQ", blob[8:32])
    if len(blob) != 40 + msize + csize:
        print(f"size mismatch: file {len(blob)}, header says {40 + msize + csize}")
        return 1
    (checksum,) = struct.unpack("<Q", blob[-8:])
    if fnv1a64(blob[:-8]) != checksum:
        print("checksum mismatch")
        return 1
    manifest = json.loads(blob[32:32 + msize])
    code = blob[32 + msize:32 + msize + csize]
    print(f"version {version} flags {flags}")
    is_elf = code[:4] == b"\x7fELF"
    is_shared = struct.unpack("<H", code[16:18])[0] == 3  # e_type ET_DYN
    print(f"code is ELF: {is_elf}, shared object: {is_shared}")
    target = manifest["target"]
    print(f"target device {target.get('device', 'cpu')} gpu_arch {target.get('gpu_arch', '-')}")
    # GPU code: fat binaries (magic 0xba55ed50) embedded in the ELF; each
    # holds an ELF cubin and the PTX.
    fatbins = code.count(struct.pack("<I", 0xBA55ED50))
    if fatbins:
        print(f"fatbins {fatbins}")
    print("model " + json.dumps(manifest["model"], sort_keys=True))
    print("attention " + json.dumps(manifest.get("attention", {}), sort_keys=True))
    if "parallel" in manifest:
        print("parallel " + json.dumps(manifest["parallel"], sort_keys=True))
    for p in manifest["parameters"]:
        shard = p.get("shard")
        split = f" shard dim {shard['dim']} of {shard['parts']}" if shard else ""
        print(f"param {p['name']} {p['dtype']} {p['shape']}{split}")
    for e in manifest["entries"]:
        ins = ", ".join(f"{i['name']}:{i['dtype']}{i['shape']}" for i in e["inputs"])
        print(f"entry {e['name']} symbol {e['symbol']} inputs {ins} params {len(e['parameters'])} "
              f"result {e['result']['dtype']}{e['result']['shape']}")
        # Every entry parameter is a declared parameter.
        names = {p["name"] for p in manifest["parameters"]}
        assert all(n in names for n in e["parameters"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
