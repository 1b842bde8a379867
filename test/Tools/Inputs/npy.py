#!/usr/bin/env python3
"""Writes and inspects .npy files without numpy, for the hag-run tests.

  npy.py tokens OUT DTYPE SHAPE VOCAB [SEED]   pseudo-random ids in [0, VOCAB)
  npy.py values OUT DTYPE SHAPE V1,V2,...       the given values
  npy.py text OUT DTYPE TEXT                    the bytes of TEXT, shape [1, N]
  npy.py sine OUT SHAPE                         f32 sin(0.01 * i)
  npy.py show FILE                              dtype, shape, finiteness
  npy.py argmax-last FILE                       argmax of the last row
  npy.py tail FILE K                            the last K values, one line
  npy.py greedy IDS LOGITS PROMPT              checks that every id after the
                                                prompt is the argmax of the full
                                                forward's logits one row before
                                                (rows whose top two logits are
                                                within 1e-4 are counted as ties)
  npy.py close A B TOL                          "close" if A and B hold as many
                                                elements, |a - b| <= TOL each
                                                (shapes are not compared)
  npy.py rel-diff A B                           max |a - b| / max |b| (B the
                                                reference), or "not finite"
  npy.py close-rel A B TOL                      "close" if max |a - b| <= TOL *
                                                max |b| (spec section 11's
                                                relative tolerance, B the
                                                reference)

DTYPE is a NumPy descr: <i4 <i8 <f4 <f8. SHAPE is "2,10" ("" for a scalar).
"""
import math
import struct
import sys

FORMATS = {"<i4": "i", "<i8": "q", "<f4": "f", "<f8": "d", "<u2": "H", "|u1": "B"}


def parse_shape(text):
    return tuple(int(d) for d in text.split(",") if d != "")


def write(path, descr, shape, values):
    shape_text = "(" + "".join(f"{d}, " for d in shape)[:-2] + ("," if len(shape) == 1 else "") + ")"
    if not shape:
        shape_text = "()"
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    data = struct.pack("<%d%s" % (len(values), FORMATS[descr]), *values)
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data)


def read(path):
    blob = open(path, "rb").read()
    assert blob[:6] == b"\x93NUMPY", "not an npy file"
    major = blob[6]
    if major == 1:
        (hlen,) = struct.unpack("<H", blob[8:10])
        start = 10
    else:
        (hlen,) = struct.unpack("<I", blob[8:12])
        start = 12
    header = eval(blob[start:start + hlen].decode())  # a Python dict literal
    descr, shape = header["descr"], header["shape"]
    count = 1
    for d in shape:
        count *= d
    data = blob[start + hlen:]
    values = struct.unpack("<%d%s" % (count, FORMATS[descr]), data)
    return descr, list(shape), values


def count_of(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def worst_and_scale(a, b):
    """max |a - b| and max |b| (b the reference), for close-rel and rel-diff."""
    worst = max((abs(x - y) for x, y in zip(a, b)), default=0.0)
    return worst, max((abs(y) for y in b), default=0.0)


def main(argv):
    cmd = argv[1]
    if cmd == "tokens":
        out, descr, shape, vocab = argv[2], argv[3], parse_shape(argv[4]), int(argv[5])
        seed = int(argv[6]) if len(argv) > 6 else 1
        x = seed * 2654435761 + 1
        values = []
        for _ in range(count_of(shape)):
            x = (x * 6364136223846793005 + 1442695040888963407) % 2**64
            values.append((x >> 33) % vocab)
        write(out, descr, shape, values)
    elif cmd == "values":
        out, descr, shape = argv[2], argv[3], parse_shape(argv[4])
        conv = float if descr[1] == "f" else int
        write(out, descr, shape, [conv(v) for v in argv[5].split(",") if v != ""])
    elif cmd == "text":
        out, descr, text = argv[2], argv[3], argv[4].encode()
        write(out, descr, (1, len(text)), list(text))
    elif cmd == "sine":
        out, shape = argv[2], parse_shape(argv[3])
        write(out, "<f4", shape, [math.sin(0.01 * i) for i in range(count_of(shape))])
    elif cmd == "show":
        descr, shape, values = read(argv[2])
        finite = all(math.isfinite(v) for v in values)
        print(f"dtype {descr} shape {shape} finite {finite}")
    elif cmd == "argmax-last":
        descr, shape, values = read(argv[2])
        row = values[-shape[-1]:]
        print(f"argmax {max(range(len(row)), key=lambda i: row[i])}")
    elif cmd == "close":
        a, b, tol = read(argv[2]), read(argv[3]), float(argv[4])
        if len(a[2]) != len(b[2]):
            print(f"sizes differ: {len(a[2])} vs {len(b[2])}")
        else:
            worst = max((abs(x - y) for x, y in zip(a[2], b[2])), default=0.0)
            print("close" if worst <= tol else f"max difference {worst}")
    elif cmd == "close-rel":
        a, b, tol = read(argv[2]), read(argv[3]), float(argv[4])
        if len(a[2]) != len(b[2]):
            print(f"sizes differ: {len(a[2])} vs {len(b[2])}")
        else:
            worst, scale = worst_and_scale(a[2], b[2])
            ok = all(math.isfinite(x) for x in a[2]) and worst <= tol * scale
            print("close" if ok else f"max difference {worst} (scale {scale})")
    elif cmd == "rel-diff":
        a, b = read(argv[2]), read(argv[3])
        if len(a[2]) != len(b[2]):
            print(f"sizes differ: {len(a[2])} vs {len(b[2])}")
        elif not all(math.isfinite(x) for x in a[2]):
            print("not finite")
        else:
            worst, scale = worst_and_scale(a[2], b[2])
            print(f"{worst / scale if scale else worst:.3g}")
    elif cmd == "tail":
        _, _, values = read(argv[2])
        print(" ".join(str(v) for v in values[-int(argv[3]):]))
    elif cmd == "greedy":
        _, _, ids = read(argv[2])
        _, shape, logits = read(argv[3])
        prompt, vocab = int(argv[4]), shape[-1]
        checked = ties = 0
        for pos in range(prompt - 1, len(ids) - 1):
            row = logits[pos * vocab:(pos + 1) * vocab]
            order = sorted(range(vocab), key=lambda i: (-row[i], i))
            if row[order[0]] - row[order[1]] < 1e-4:
                ties += 1
                continue
            checked += 1
            if ids[pos + 1] != order[0]:
                print(f"position {pos + 1}: generated {ids[pos + 1]}, argmax {order[0]}")
        print(f"greedy checked {checked} tokens, {ties} near-ties")
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
