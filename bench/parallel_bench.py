#!/usr/bin/env python3
"""hag-bench-parallel: training throughput of one process against several
(data and tensor parallelism under mpirun) on this machine, as a table.

  bench/parallel_bench.py [--build build] [--model examples/tiny_lm.yaml]
                          [--steps 30] [--warmup 5] [--configs LIST]

Each configuration compiles the model with its `parallel:` split
(hag-compile --train) and trains it for --steps steps on the same generated
text with `hag-run --train --log`; time per step is measured from the log
(elapsed_s between the end of step --warmup and the last step), so compile
and start-up are excluded. Every configuration uses all the machine's
cores: P processes get cores / P OpenMP threads each. Peak memory is the
largest resident set of any one hag-run process (/usr/bin/time).

It is a benchmark, not a test: it asserts nothing. Pipeline parallelism
(hag-split-pipeline) is not implemented yet, so the bubble fraction of the
issue's benchmark is not measured here.
"""
import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIGS = {
    "single": ("1 process", "", 1),
    "data2": ("data 2", "parallel: {data: 2}", 2),
    "tensor2": ("tensor 2", "parallel: {tensor: 2}", 2),
    "tensor2data2": ("tensor 2 x data 2", "parallel: {tensor: 2, data: 2}", 4),
}


def run(cmd, env=None):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"parallel_bench: failed: {' '.join(cmd)}")
    return proc.stdout + proc.stderr


def step_seconds(log_path, warmup):
    with open(log_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) <= warmup + 1:
        raise SystemExit(f"parallel_bench: {log_path}: too few steps")
    t0 = float(rows[warmup - 1]["elapsed_s"]) if warmup > 0 else 0.0
    t1 = float(rows[-1]["elapsed_s"])
    return (t1 - t0) / (len(rows) - warmup), rows


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--model", default=os.path.join(ROOT, "examples", "tiny_lm.yaml"))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--configs", default="single,data2,tensor2,tensor2data2",
                    help="comma-separated: " + ", ".join(CONFIGS))
    args = ap.parse_args()
    compile_ = os.path.join(args.build, "bin", "hag-compile")
    hagrun = os.path.join(args.build, "bin", "hag-run")
    mpirun = shutil.which("mpirun")
    cores = os.cpu_count() or 1
    names = [c for c in args.configs.split(",") if c]
    for c in names:
        if c not in CONFIGS:
            raise SystemExit(f"parallel_bench: unknown configuration '{c}'")

    work = tempfile.mkdtemp(prefix="hag-bench-parallel-")
    corpus = os.path.join(work, "corpus.txt")
    run([sys.executable, os.path.join(ROOT, "examples", "data", "make_corpus.py"),
         corpus, "--bytes", "400000"])
    with open(args.model) as f:
        model_text = f.read()
    print(f"hag-bench-parallel: {os.path.relpath(args.model, ROOT)}, "
          f"{args.steps} steps (time from step {args.warmup} on), "
          f"{cores} cores, load {os.getloadavg()[0]:.2f}", flush=True)
    results = []
    for name in names:
        label, parallel, procs = CONFIGS[name]
        if procs > 1 and not mpirun:
            print(f"{label}: skipped (no mpirun)")
            continue
        yaml = os.path.join(work, name + ".yaml")
        with open(yaml, "w") as f:
            f.write(model_text + "\n" + parallel + "\n")
        artifact = os.path.join(work, name + ".hag")
        run([compile_, yaml, "--train", "-o", artifact])
        log = os.path.join(work, name + ".csv")
        threads = max(1, cores // procs)
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        timer = ["/usr/bin/time", "-f", "HAGRSS %M"] if os.path.exists(
            "/usr/bin/time") else []
        cmd = timer + [hagrun, artifact, "--train", "--data", corpus,
               "--steps", str(args.steps), "--log", log,
               "--checkpoint-dir", os.path.join(work, name + "-ckpt"),
               "--checkpoint-every", str(10 ** 6), "--quiet"]
        if procs > 1:
            cmd = [mpirun, "--allow-run-as-root", "--oversubscribe",
                   "--bind-to", "none", "--mca", "btl", "self,vader",
                   "-x", f"OMP_NUM_THREADS={threads}", "-np", str(procs)] + cmd
        output = run(cmd, env=env)
        rss = [int(l.split()[1]) for l in output.splitlines()
               if l.startswith("HAGRSS ")]
        secs, rows = step_seconds(log, args.warmup)
        tokens = None
        for line in model_text.splitlines():
            s = line.strip()
            if s.startswith("batch:"):
                batch = int(s.split(":")[1])
            if s.startswith("seq:"):
                seq = int(s.split(":")[1])
        tokens = batch * seq
        results.append((label, procs, threads, secs, tokens / secs,
                        max(rss) / 1024.0 if rss else None,
                        float(rows[-1]["loss"])))
    base = results[0][4] if results else 1.0
    print()
    print(f"{'configuration':<20} {'procs':>5} {'threads':>7} {'ms/step':>9} "
          f"{'tok/s':>9} {'vs first':>8} {'max RSS MiB':>11} {'last loss':>9}")
    for label, procs, threads, secs, tps, rss, loss in results:
        rss_text = f"{rss:.0f}" if rss else "n/a"
        print(f"{label:<20} {procs:>5} {threads:>7} {secs * 1e3:>9.1f} "
              f"{tps:>9.0f} {tps / base:>7.2f}x {rss_text:>11} {loss:>9.4f}")
    print()
    print("Every configuration computes the same training (the same global batch "
          "and updates; the losses agree up to reassociation).")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
