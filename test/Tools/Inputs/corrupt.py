#!/usr/bin/env python3
"""Makes damaged copies of a .hag artifact for the hag-run error tests.

  corrupt.py flip IN OUT OFFSET       flip one bit of the byte at OFFSET
  corrupt.py truncate IN OUT LENGTH   keep the first LENGTH bytes
  corrupt.py version IN OUT N         set format_version to N and reseal
"""
import struct
import sys


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main(cmd, src, dst, arg):
    blob = bytearray(open(src, "rb").read())
    n = int(arg)
    if cmd == "flip":
        blob[n] ^= 0x01
    elif cmd == "truncate":
        blob = blob[:n]
    elif cmd == "version":
        blob[8:12] = struct.pack("<I", n)
        blob[-8:] = struct.pack("<Q", fnv1a64(blob[:-8]))
    else:
        print(__doc__)
        return 2
    open(dst, "wb").write(blob)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
