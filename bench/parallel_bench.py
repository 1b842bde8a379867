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

With --bubble (default on) it also runs the model as a 2-stage pipeline
for several micro-batch counts m and prints the measured bubble -- the
share of a stage's schedule (its forwards, backwards and the waits between
them; the update excluded) in which the stage computes nothing, from the
stage's own timing (HAG_PIPELINE_TIMING) -- against 1F1B's (p-1)/(m+p-1).

It is a benchmark, not a test: it asserts nothing.
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
    ap.add_argument("--bubble", default="1,2,4,8",
                    help="micro-batch counts of the 2-stage pipeline runs "
                         "('' for none)")
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
    batch, seq = 8, 1024  # interfaces.md's defaults
    for line in model_text.splitlines():
        t = line.strip()
        if t.startswith("batch:"):
            batch = int(t.split(":")[1])
        if t.startswith("seq:"):
            seq = int(t.split(":")[1])
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

    # The pipeline bubble: 2 stages, one process each.
    bubble = [int(x) for x in args.bubble.split(",") if x]
    if bubble and mpirun:
        stages = 2
        rows = []
        for m in bubble:
            if batch % m:
                print(f"pipeline m={m}: skipped (batch {batch} is not divisible)")
                continue
            name = f"pipe{stages}_m{m}"
            yaml = os.path.join(work, name + ".yaml")
            with open(yaml, "w") as f:
                f.write(model_text + "\n" +
                        f"parallel: {{pipeline: {stages}, microbatches: {m}}}\n")
            artifact = os.path.join(work, name + ".hag")
            run([compile_, yaml, "--train", "-o", artifact])
            log = os.path.join(work, name + ".csv")
            timing = os.path.join(work, name + ".timing")
            threads = max(1, cores // stages)
            env = dict(os.environ, OMP_NUM_THREADS=str(threads),
                       HAG_PIPELINE_TIMING=timing)
            run([mpirun, "--allow-run-as-root", "--oversubscribe",
                 "--bind-to", "none", "--mca", "btl", "self,vader",
                 "-x", f"OMP_NUM_THREADS={threads}", "-x", "HAG_PIPELINE_TIMING",
                 "-np", str(stages), hagrun, artifact, "--train", "--data", corpus,
                 "--steps", str(args.steps), "--log", log,
                 "--checkpoint-dir", os.path.join(work, name + "-ckpt"),
                 "--checkpoint-every", str(10 ** 6), "--quiet"], env=env)
            secs, _ = step_seconds(log, args.warmup)
            idle = []
            for r in range(stages):
                with open(f"{timing}.rank{r}") as f:
                    lines = [l.split() for l in f if l.strip()][args.warmup:]
                busy = sum(float(l[1]) for l in lines)
                wall = sum(float(l[2]) for l in lines)
                idle.append(1.0 - busy / wall)
            theory = (stages - 1) / (m + stages - 1)
            rows.append((m, secs, batch * seq / secs, idle, theory))
        print()
        print(f"pipeline bubble, {stages} stages (1F1B), measured per stage "
              "from the stages' own timing (update excluded):")
        print(f"{'m':>3} {'ms/step':>9} {'tok/s':>9} "
              + " ".join(f"{'idle s' + str(r):>8}" for r in range(stages))
              + f" {'mean':>7} {'(p-1)/(m+p-1)':>14}")
        for m, secs, tps, idle, theory in rows:
            print(f"{m:>3} {secs * 1e3:>9.1f} {tps:>9.0f} "
                  + " ".join(f"{x:>8.3f}" for x in idle)
                  + f" {sum(idle) / len(idle):>7.3f} {theory:>14.3f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
