#!/usr/bin/env python3
"""Writes the training text of the tiny_lm demonstration: English sentences
from a small grammar (deterministic in --seed), so the project ships no
third-party text. Byte-level: the model sees the UTF-8 bytes.

usage: make_corpus.py OUT.txt [--bytes N] [--seed S]
"""
import argparse
import random

SUBJECTS = ["the pyramid", "a query", "the summary", "every level", "the gate",
            "a compressed token", "the raw window", "the compiler", "each block",
            "the kernel", "a long context", "the optimizer", "the runtime",
            "a careful engineer", "the test suite", "the memory gate"]
VERBS = ["reads", "keeps", "compresses", "attends to", "builds", "checks",
         "remembers", "sums", "scores", "lowers", "measures", "schedules",
         "updates", "selects", "rotates", "normalizes"]
OBJECTS = ["the keys", "four tokens", "the values", "a window of sixty four",
           "the far past", "every gradient", "the loss", "one softmax",
           "the prefix sums", "a checkpoint", "the learning rate",
           "the next level", "sixteen heads", "the global summary",
           "the mass bias", "a tile of scores"]
ADVERBS = ["quickly", "exactly", "once", "in parallel", "without gathers",
           "in one pass", "carefully", "again", "at every step", "in fp32"]
CONNECT = ["and then", "because", "while", "so that", "before", "after"]


def sentence(rng):
    s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
    if rng.random() < 0.5:
        s += " " + rng.choice(ADVERBS)
    if rng.random() < 0.35:
        s += (f" {rng.choice(CONNECT)} {rng.choice(SUBJECTS)} "
              f"{rng.choice(VERBS)} {rng.choice(OBJECTS)}")
    return s[0].upper() + s[1:] + rng.choice([".", ".", ".", "!", "?"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--bytes", type=int, default=400000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    parts, size = [], 0
    while size < args.bytes:
        para = " ".join(sentence(rng) for _ in range(rng.randint(3, 7))) + "\n"
        parts.append(para)
        size += len(para)
    with open(args.out, "w", encoding="ascii") as f:
        f.write("".join(parts)[: args.bytes])


if __name__ == "__main__":
    main()
