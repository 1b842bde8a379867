#!/usr/bin/env python3
"""Checks the recall task's evaluation set (examples/recall/make_recall.py):
every answer listed in EVAL.answers.json is the value its key was given in
the context, stated only in a fact that ends more than 1024 tokens before
the question, and every key is asked first exactly once. Prints a summary
line; exits non-zero naming the first violation."""
import sys

from evaluate import read_eval

rows, answers, _ = read_eval(sys.argv[1])
gaps = []
for e, (row, qs) in enumerate(zip(rows, answers)):
    keys = [row[p] for p, _ in qs]
    if len(set(keys)) != len(keys):
        sys.exit("example %d: a key is asked first twice" % e)
    for p, value in qs:
        if row[p + 1] != value:
            sys.exit("example %d: the answer at %d is %d, not %d" % (e, p + 1, row[p + 1], value))
        said = [i for i in range(p) if row[i] == row[p]]
        if not said or row[said[0] + 1] != value:
            sys.exit("example %d: key %d at %d is not stated first with its value" % (e, row[p], p))
        facts = [i for i in said if row[i + 1] == value and i < p - 1024]
        near = [i for i in said if i >= p - 1024]
        if near:
            sys.exit("example %d: key %d at %d is said again at %d" % (e, row[p], p, near[0]))
        gaps.append(p - max(facts) - 1)
print("%d first questions, each > 1024 tokens after its fact: %s" %
      (len(gaps), min(gaps) > 1024))
