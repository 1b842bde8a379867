#!/usr/bin/env python3
"""Issue 5's GPU benchmark: HAG's pyramid attention layer vs cuDNN's fused
dense attention, in the same run, on one GPU.

  bench/gpu_bench.py --hag-bench build/bin/hag-bench-gpu --artifact pa.hag \
      [--sizes 4K,8K,16K,32K,64K,128K] [--repeat 5]

HAG: hag-bench-gpu on a CUDA artifact of examples/pyramid_attention.yaml
(its kernels' time from CUDA events). The peer, through PyTorch: cuDNN's
fused attention (torch SDPA restricted to the cuDNN backend; fp16, causal,
the artifact's heads and head size) alone ("core"), and as a dense layer
with the same Q, K, V, O projections in fp16 (cuBLAS), each the median of
--repeat timed calls after a warm-up, with CUDA events. FLOPs are the
executed ones of spec section 6 (dense causal: 4 d N(N+1)/2 per head).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def size(text):
    text = text.strip()
    return int(text[:-1]) * 1024 if text[-1] in "kK" else int(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hag-bench", required=True, help="hag-bench-gpu binary")
    ap.add_argument("--artifact", required=True, help="CUDA artifact (attention kind)")
    ap.add_argument("--sizes", default="4K,8K,16K,32K,64K,128K")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=64)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    a = ap.parse_args()
    sizes = [size(s) for s in a.sizes.split(",")]

    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    import torch.nn.functional as F

    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(0)
    H, d = a.heads, a.head_dim
    D = H * d
    print(f"gpu_bench: {name}; torch {torch.__version__}, cuDNN "
          f"{torch.backends.cudnn.version()}; H {H}, d {d}, D {D}; fp16, causal",
          flush=True)

    def timed(fn):
        fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(a.repeat):
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e))
        times.sort()
        return times[len(times) // 2]

    peer = {}
    g = torch.Generator(device=dev).manual_seed(0)
    wq, wk, wv, wo = (torch.randn(D, D, device=dev, dtype=torch.float16, generator=g) / D ** 0.5
                      for _ in range(4))
    for n in sizes:
        row = {}
        try:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            x = torch.randn(1, n, D, device=dev, dtype=torch.float16, generator=g)
            q, k, v = ((x @ w.T).view(1, n, H, d).transpose(1, 2) for w in (wq, wk, wv))
            with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                row["core_ms"] = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))

                def layer():
                    qq, kk, vv = ((x @ w.T).view(1, n, H, d).transpose(1, 2) for w in (wq, wk, wv))
                    o = F.scaled_dot_product_attention(qq, kk, vv, is_causal=True)
                    return o.transpose(1, 2).reshape(1, n, D) @ wo.T
                row["layer_ms"] = timed(layer)
            row["peak_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
            del x, q, k, v
        except Exception as e:  # out of memory, no cuDNN backend, ...
            row["error"] = str(e).splitlines()[0][:60]
        peer[n] = row
        print(f"  cuDNN N={n}: {row}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "hag.json")
        r = subprocess.run([a.hag_bench, a.artifact, "--sizes", ",".join(map(str, sizes)),
                            "--repeat", str(a.repeat), "--json", out,
                            "--peak-tflops", str(a.peak_tflops)], text=True)
        hag = {row["n"]: row for row in json.load(open(out))} if os.path.exists(out) else {}

    print()
    print("HAG pyramid attention layer vs cuDNN fused dense attention "
          f"(fp16, causal) on {name}")
    hdr = ("N", "HAG ms", "HAG lyr TF/s", "core %peak", "cuDNN core ms", "cuDNN TF/s",
           "dense lyr ms", "HAG vs core", "HAG vs lyr")
    print("%8s %9s %12s %10s %13s %10s %12s %11s %10s" % hdr)
    for n in sizes:
        h, p = hag.get(n), peer.get(n, {})
        dense_core = 4.0 * d * n * (n + 1) / 2 * H
        hm = h["kernels_ms"] if h else None
        cells = [str(n),
                 f"{hm:.3f}" if hm else "-",
                 f"{h['layer_flops'] / hm * 1e-9:.2f}" if hm else "-",
                 f"{100 * h['core_flops'] / hm * 1e-9 / a.peak_tflops:.2f}%" if hm else "-",
                 f"{p['core_ms']:.3f}" if "core_ms" in p else p.get("error", "-"),
                 f"{dense_core / p['core_ms'] * 1e-9:.1f}" if "core_ms" in p else "-",
                 f"{p['layer_ms']:.3f}" if "layer_ms" in p else "-",
                 f"{p['core_ms'] / hm:.2f}x" if hm and "core_ms" in p else "-",
                 f"{p['layer_ms'] / hm:.2f}x" if hm and "layer_ms" in p else "-"]
        print("%8s %9s %12s %10s %13s %10s %12s %11s %10s" % tuple(cells))
    print("HAG ms: the layer's kernels (projections, gate, levels, summaries, "
          "attention; CUDA events). core %peak: HAG's attention-core FLOPs over "
          "the whole layer's time against the peak. HAG vs core / lyr: cuDNN "
          "attention alone / the dense layer, over HAG's layer time (> 1: HAG "
          "faster).")
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
