#!/usr/bin/env python3
"""Independent per-query brute force of spec section 4 (which keys a query sees)
and section 6 (attention FLOPs, dense-equivalent ratio), used to check
`hag-compile --report=cost --format=json`.

For every query it materialises the key set level by level, checks that the
windows tile the sequence (causal: level windows + summary prefix cover
[0, i] exactly once; bidirectional: the level windows cover [0, N) exactly once
when they reach both ends), and counts keys. Compares the totals with the JSON
report and exits non-zero on any difference.
"""
import argparse
import json
import sys
from fractions import Fraction


def ceil_div(a, b):
    return -(-a // b)


def tiles(intervals, lo, hi):
    """True when the non-empty half-open intervals cover [lo, hi) exactly once."""
    pos = lo
    for a, b in sorted(x for x in intervals if x[1] > x[0]):
        if a != pos:
            return False
        pos = b
    return pos == hi


def query_keys(p, n, levels, i):
    """Per-level key counts of query i (levels 1..L-1, summary, select)."""
    B, r, W, T = p.block, p.ratio, p.window, p.summary
    b = i // B
    raw_spans = []  # raw positions covered by the level windows (tiling check)
    counts = []
    a1 = max(0, (b - 1) * B)
    e1 = i + 1 if p.causal else min(n, (b + 2) * B)
    raw_spans.append((a1, e1))
    counts.append(e1 - a1)
    a = a1
    e = e1
    for l in range(2, levels):
        sigma = r ** (l - 1)
        nl = ceil_div(n, sigma)
        assert a % r == 0
        c = a // r
        if l < levels - 1:
            al = max(0, r * ((c - W) // r))
        else:
            al = max(0, c - W)
        windows = [(al, c)]
        if not p.causal:
            ep = ceil_div(e, r)
            if l < levels - 1:
                el = min(nl, r * ceil_div(ep + W, r))
            else:
                el = min(nl, ep + W)
            windows.append((ep, el))
            e = el
        for lo, hi in windows:
            if hi > lo:
                raw_spans.append((lo * sigma, min(n, hi * sigma)))
        counts.append(sum(max(0, hi - lo) for lo, hi in windows))
        a = al
    if p.causal:
        prefix = a * r ** (levels - 2)
        assert tiles(raw_spans + [(0, prefix)], 0, i + 1), f"query {i}: windows do not tile [0, {i}]"
    else:
        prefix = n
        spans = sorted(x for x in raw_spans if x[1] > x[0])
        assert all(spans[k][1] <= spans[k + 1][0] for k in range(len(spans) - 1)), \
            f"query {i}: windows overlap"
    t_prime = min(T, prefix)
    segments = [(t * prefix // t_prime, (t + 1) * prefix // t_prime) for t in range(t_prime)]
    assert all(hi > lo for lo, hi in segments), "empty summary segment"
    assert tiles(segments, 0, prefix)
    counts.append(t_prime)
    candidates = a1 + (0 if p.causal else n - e1)
    counts.append(min(p.select_k, candidates))
    return counts


def reaches_ends(p, n, levels):
    for i in range(n):
        B, r, W = p.block, p.ratio, p.window
        # Recompute the left end of the last compressed level for query i.
        b = i // B
        a = max(0, (b - 1) * B)
        e = i + 1 if p.causal else min(n, (b + 2) * B)
        for l in range(2, levels):
            nl = ceil_div(n, r ** (l - 1))
            c = a // r
            a = max(0, r * ((c - W) // r)) if l < levels - 1 else max(0, c - W)
            if not p.causal:
                ep = ceil_div(e, r)
                e = min(nl, r * ceil_div(ep + W, r)) if l < levels - 1 else min(nl, ep + W)
        if a != 0:
            return False
        if not p.causal and e != ceil_div(n, r ** (levels - 2)):
            return False
    return True


def main():
    ap = argparse.ArgumentParser()
    for k, d in [("block", 64), ("ratio", 4), ("window", 64), ("summary", 64),
                 ("select_k", 0), ("heads", 8), ("head_dim", 64), ("seq", 1024),
                 ("layers", 1), ("batch", 1)]:
        ap.add_argument("--" + k, type=int, default=d)
    ap.add_argument("--levels", default="4")
    ap.add_argument("--causal", type=int, default=1)
    ap.add_argument("--json", required=True, help="hag-compile --format=json output")
    p = ap.parse_args()
    n = p.seq
    if p.levels == "auto":
        levels = next(L for L in range(3, 13) if reaches_ends(p, n, L))
    else:
        levels = int(p.levels)

    total = 0
    kmax = 0
    per_level_sum = [0] * (levels + 1)
    per_level_max = [0] * (levels + 1)
    for i in range(n):
        c = query_keys(p, n, levels, i)
        for j, v in enumerate(c):
            per_level_sum[j] += v
            per_level_max[j] = max(per_level_max[j], v)
        total += sum(c)
        kmax = max(kmax, sum(c))

    dense = n * (n + 1) // 2 if p.causal else n * n
    ratio = Fraction(total, dense)
    # Every attention layer and batch row does the same work.
    flops = 4 * p.head_dim * total * p.heads * p.layers * p.batch
    dense_flops = 4 * p.head_dim * dense * p.heads * p.layers * p.batch

    with open(p.json) as f:
        rep = json.load(f)
    errors = []

    def expect(name, got, want, rel=1e-12):
        if abs(float(got) - float(want)) > rel * max(1.0, abs(float(want))):
            errors.append(f"{name}: report {got}, brute force {want}")

    expect("seq", rep["seq"], n)
    expect("levels", rep["levels"], levels)
    expect("keys_per_query_mean", rep["keys_per_query_mean"], Fraction(total, n))
    expect("keys_per_query_max", rep["keys_per_query_max"], kmax)
    expect("attention_flops", rep["attention_flops"], flops)
    expect("dense_attention_flops", rep["dense_attention_flops"], dense_flops)
    expect("dense_equivalent_ratio", rep["dense_equivalent_ratio"], ratio)
    att = rep["attention"][0]
    expect("keys_total", att["keys_total"], total)
    for j, lvl in enumerate(att["per_level"]):
        expect(f"level {lvl['level']} mean", lvl["keys_per_query_mean"], Fraction(per_level_sum[j], n))
        expect(f"level {lvl['level']} max", lvl["keys_per_query_max"], per_level_max[j])
    if errors:
        print("MISMATCH\n" + "\n".join(errors))
        return 1
    print(f"brute force agrees: seq {n} levels {levels} keys/query {float(Fraction(total, n)):.6f} "
          f"max {kmax} ratio {float(ratio):.9f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
