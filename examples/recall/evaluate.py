#!/usr/bin/env python3
"""Recall accuracy of a trained model on examples from make_recall.py.

  evaluate.py ARTIFACT WEIGHTS EVAL.npy [--hag-run PATH] [--batch 16]

Runs `hag-run ARTIFACT --weights WEIGHTS --input ... --output ...` on the
evaluation examples (in batches) and counts, at every question's key, whether
the argmax of the next-token logits is the value its fact (more than 1024
tokens earlier) gave. Chance is 1/16 (16 values). WEIGHTS may be a training
checkpoint. Prints one line:
`recall accuracy A (C of T answers)` and exits non-zero on any error.
"""
import argparse
import array
import json
import os
import struct
import subprocess
import sys
import tempfile

from make_recall import write_npy


def read_npy_header(f):
    magic = f.read(8)
    if magic[:6] != b"\x93NUMPY":
        sys.exit("evaluate.py: not an .npy file")
    major = magic[6]
    hlen = struct.unpack("<H" if major == 1 else "<I",
                         f.read(2 if major == 1 else 4))[0]
    header = f.read(hlen).decode("latin1")
    d = eval(header, {"__builtins__": {}}, {"False": False, "True": True})
    return d, f.tell()


def read_eval(path):
    """The token rows of an evaluation set from make_recall.py (int32
    [examples, seq] .npy), its answers.json lists (one per example) and seq."""
    with open(path[:-4] + ".answers.json") as f:
        answers = json.load(f)["answers"]
    with open(path, "rb") as f:
        d, _ = read_npy_header(f)
        if d["descr"] != "<i4" or len(d["shape"]) != 2:
            sys.exit("evaluate.py: expected int32 [examples, seq] tokens")
        n, seq = d["shape"]
        rows = []
        for _ in range(n):
            r = array.array("i")
            r.frombytes(f.read(4 * seq))
            rows.append(r)
    if len(answers) != n:
        sys.exit("evaluate.py: %d examples but %d answer lists" % (n, len(answers)))
    return rows, answers, seq


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("artifact")
    ap.add_argument("weights")
    ap.add_argument("eval_npy")
    ap.add_argument("--hag-run", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "bin",
        "hag-run"))
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()

    rows, answers, seq = read_eval(args.eval_npy)
    n = len(rows)

    correct = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        x, y = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        for start in range(0, n, args.batch):
            chunk = rows[start:start + args.batch]
            write_npy(x, chunk, seq)
            run = subprocess.run([args.hag_run, args.artifact, "--weights",
                                  args.weights, "--input", x, "--output", y],
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True)
            if run.returncode != 0:
                sys.exit("evaluate.py: hag-run failed:\n" + run.stderr)
            with open(y, "rb") as f:
                d, base = read_npy_header(f)
                b, s, vocab = d["shape"]
                if d["descr"] != "<f4" or b != len(chunk) or s != seq:
                    sys.exit("evaluate.py: unexpected logits %s" % (d,))
                for i in range(b):
                    for p, value in answers[start + i]:
                        f.seek(base + 4 * ((i * seq + p) * vocab))
                        logits = array.array("f")
                        logits.frombytes(f.read(4 * vocab))
                        guess = max(range(vocab), key=logits.__getitem__)
                        correct += guess == value
                        total += 1
    print("recall accuracy %.3f (%d of %d answers)" % (correct / total, correct, total))


if __name__ == "__main__":
    main()
