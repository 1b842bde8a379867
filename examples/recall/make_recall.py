#!/usr/bin/env python3
"""Writes the long-range recall task of examples/recall (see its README).

An associative-recall task: the context states 8 facts "key k has value v",
each as one fact token, more than 1024 tokens before the questions; at the
end every key is asked once, in a random order, and the model must answer
its value. Each example is seq + 1 = 2049 tokens:

  position 0                  BOS (1)
  one position in each of     8 fact tokens F(k, v) = 128 + 16 k + v, one per
  [1 + 110 j, 1 + 110 j + 100)  key k = 0..7 (in a random order), v = 0..15
                              drawn at random; every fact ends before 872
  positions 1921..2048        the questions: key token 16 + k, then its value
                              token 32 + v; 8 rounds, each asking the 8 keys
                              in a new random order
  everything else             filler: the period-4 pattern 2 3 4 5

A key's first question (in round 1, positions 1921..1936) needs the fact more
than 1024 tokens back; with only the raw window the best answer is a guess
(1/16). The later rounds give the training more answers per example (they
could also be copied from an earlier round); evaluation counts first
questions only.

  make_recall.py train.bin --examples 2048 --seed 1  # uint16 tokens (hag-run --data)
  make_recall.py eval.npy --examples 64 --seed 2     # int32 [examples, 2048] (hag-run --input)
                                                     # and eval.answers.json

answers.json lists for every example the positions p of the first
questions' keys (whose next token is the answer) and the answer tokens.
"""
import argparse
import array
import json
import random
import struct
import sys

SEQ = 2048
KEYS = 8
VALUES = 16
SLOT = 110
SLOT_SPAN = 100
BOS = 1
FILLER = (2, 3, 4, 5)
KEY_TOKEN = 16     # 16 .. 23
VALUE_TOKEN = 32   # 32 .. 47
FACT_TOKEN = 128   # 128 .. 255
ROUNDS = 8
QUERY_START = SEQ + 1 - 2 * KEYS * ROUNDS  # 1921


def example(rng):
    tokens = [FILLER[i % 4] for i in range(SEQ + 1)]
    tokens[0] = BOS
    values = [rng.randrange(VALUES) for _ in range(KEYS)]
    slots = list(range(KEYS))
    rng.shuffle(slots)
    last = 0
    for k in range(KEYS):
        p = 1 + SLOT * slots[k] + rng.randrange(SLOT_SPAN)
        tokens[p] = FACT_TOKEN + VALUES * k + values[k]
        last = max(last, p)
    assert QUERY_START - last > 1024
    answers = []
    for rnd in range(ROUNDS):
        order = list(range(KEYS))
        rng.shuffle(order)
        for i, k in enumerate(order):
            p = QUERY_START + 2 * (KEYS * rnd + i)
            tokens[p], tokens[p + 1] = KEY_TOKEN + k, VALUE_TOKEN + values[k]
            if rnd == 0:
                answers.append([p, VALUE_TOKEN + values[k]])
    return tokens, answers


def write_npy(path, rows, seq=SEQ):
    """Writes the first `seq` tokens of every row as int32 [len(rows), seq]."""
    header = "{'descr': '<i4', 'fortran_order': False, 'shape': (%d, %d), }" % (
        len(rows), seq)
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)))
        f.write(header.encode("latin1"))
        data = array.array("i", [t for r in rows for t in r[:seq]])
        if sys.byteorder != "little":
            data.byteswap()
        f.write(data.tobytes())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", help="OUT.bin (training tokens) or OUT.npy (evaluation)")
    ap.add_argument("--examples", type=int, default=2048)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows, answers = [], []
    for _ in range(args.examples):
        t, a = example(rng)
        rows.append(t)
        answers.append(a)
    if args.out.endswith(".npy"):
        write_npy(args.out, rows)
        with open(args.out[:-4] + ".answers.json", "w") as f:
            json.dump({"seq": SEQ, "answers": answers}, f)
    elif args.out.endswith(".bin"):
        data = array.array("H", [t for r in rows for t in r])
        if sys.byteorder != "little":
            data.byteswap()
        with open(args.out, "wb") as f:
            f.write(data.tobytes())
    else:
        sys.exit("make_recall.py: the output must end in .bin or .npy")
    print(f"{args.out}: {args.examples} examples of {SEQ + 1} tokens")


if __name__ == "__main__":
    main()
