#!/usr/bin/env python3
"""Checks hag-run --train logs (CSV) for the tests.

  train_log.py falls LOG        every step applied and finite, the last loss
                                below the first
  train_log.py same LOG1 LOG2   the same steps with bit-identical loss,
                                grad_norm, lr, loss_scale and applied (the
                                columns as written, %.9g: every f32 bit)
  train_log.py close LOG1 LOG2 RTOL
                                the same steps, all applied in both, loss and
                                grad_norm within RTOL relative, lr equal (a
                                parallel run against the single-process run)
"""
import csv
import math
import sys

COLUMNS = ["loss", "grad_norm", "lr", "loss_scale", "applied"]


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def main(argv):
    if argv[1] == "falls":
        r = rows(argv[2])
        losses = [float(x["loss"]) for x in r]
        bad = [x["step"] for x in r if x["applied"] != "1"]
        if bad or not all(math.isfinite(v) for v in losses):
            print(f"steps not applied or not finite: {bad}")
            return 1
        if not losses[-1] < losses[0]:
            print(f"loss does not fall: {losses[0]} -> {losses[-1]}")
            return 1
        print(f"{len(r)} steps, all applied, loss falls "
              f"({losses[0]:.4f} -> {losses[-1]:.4f})")
        return 0
    if argv[1] == "same":
        a, b = rows(argv[2]), rows(argv[3])
        if [x["step"] for x in a] != [x["step"] for x in b]:
            print(f"different steps: {[x['step'] for x in a]} vs "
                  f"{[x['step'] for x in b]}")
            return 1
        for x, y in zip(a, b):
            for c in COLUMNS:
                if x[c] != y[c]:
                    print(f"step {x['step']}: {c} {x[c]} vs {y[c]}")
                    return 1
        print(f"{len(a)} steps identical ({', '.join(COLUMNS)})")
        return 0
    if argv[1] == "close":
        a, b, rtol = rows(argv[2]), rows(argv[3]), float(argv[4])
        if [x["step"] for x in a] != [x["step"] for x in b] or not a:
            print(f"different steps: {[x['step'] for x in a]} vs "
                  f"{[x['step'] for x in b]}")
            return 1
        worst = 0.0
        for x, y in zip(a, b):
            if x["applied"] != "1" or y["applied"] != "1":
                print(f"step {x['step']}: not applied")
                return 1
            if x["lr"] != y["lr"]:
                print(f"step {x['step']}: lr {x['lr']} vs {y['lr']}")
                return 1
            for c in ("loss", "grad_norm"):
                u, v = float(x[c]), float(y[c])
                rel = abs(u - v) / max(abs(u), 1e-30)
                worst = max(worst, rel)
                if not rel <= rtol:
                    print(f"step {x['step']}: {c} {u} vs {v} (relative "
                          f"difference {rel:.3g} > {rtol:g})")
                    return 1
        print(f"{len(a)} steps close (loss, grad_norm within {rtol:g} "
              f"relative; largest {worst:.2g}), lr equal")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
