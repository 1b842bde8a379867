#!/usr/bin/env python3
"""Writes the long-range recall task of examples/recall (see its README).

An associative-recall task: the context states 16 facts "key k has value v"
early on, more than 1024 tokens before the questions; then the keys are
asked, and the model must answer their values. Each example is
seq + 1 = 2049 tokens:

  position 0            BOS (1)
  positions 16..271     16 facts, one per 16-token slot (in a random order):
                        the pair "key token 16 + k, value token 32 + v" said
                        8 times in a row, k = 0..15, v = 0..15 at random
  positions 1297..2048  376 questions: key token 16 + k, then its value token
                        32 + v; in rounds, each asking the 16 keys in a new
                        random order (the last round cut short)
  everything else       filler: the period-4 pattern 2 3 4 5

Every question lies more than 1024 tokens after its fact. A key's first
question (round 1, positions 1297..1328) can only be answered from the fact:
with the raw window alone the best answer is a guess (1/16). Later rounds
give training more answers per example (a model with enough layers could
also copy them from an earlier round nearby); evaluation counts first
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
KEYS = 16
VALUES = 16
RUN = 16           # a fact is the pair "key value" said RUN / 2 times in a row
BOS = 1
FILLER = (2, 3, 4, 5)
KEY_TOKEN = 16     # 16 .. 31
VALUE_TOKEN = 32   # 32 .. 47
FACTS_START = RUN                                  # fact runs tile [16, 272)
FACTS_END = FACTS_START + KEYS * RUN
QUERY_START = FACTS_END + 1025                     # 1297
PAIRS = (SEQ + 1 - QUERY_START) // 2               # 376


def example(rng):
    tokens = [FILLER[i % 4] for i in range(SEQ + 1)]
    tokens[0] = BOS
    values = [rng.randrange(VALUES) for _ in range(KEYS)]
    slots = list(range(KEYS))
    rng.shuffle(slots)
    for k in range(KEYS):
        start = FACTS_START + RUN * slots[k]
        for p in range(start, start + RUN, 2):
            tokens[p], tokens[p + 1] = KEY_TOKEN + k, VALUE_TOKEN + values[k]
    answers = []
    asked = 0
    while asked < PAIRS:
        order = list(range(KEYS))
        rng.shuffle(order)
        for k in order[:PAIRS - asked]:
            p = QUERY_START + 2 * asked
            tokens[p], tokens[p + 1] = KEY_TOKEN + k, VALUE_TOKEN + values[k]
            if asked < KEYS:
                answers.append([p, VALUE_TOKEN + values[k]])
            asked += 1
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
