#!/usr/bin/env python3
"""Issue 5's GPU benchmark: HAG's pyramid attention layer vs cuDNN's fused
dense attention, in the same run, on one GPU.

  bench/gpu_bench.py --hag-bench build/bin/hag-bench-gpu --artifact pa.hag \
      [--sizes 4K,8K,16K,32K,64K,128K] [--repeat 5]

HAG: hag-bench-gpu on a CUDA artifact of examples/pyramid_attention.yaml
(its kernels' time from CUDA events), run first; it reports the layer's
shape. The peer, through PyTorch, with that shape (D, heads, head size,
causal or not; K and V heads repeated for GQA): cuDNN's fused attention
(torch SDPA restricted to the cuDNN backend, fp16) alone ("core"), and as
a dense layer with the same Q, K, V, O projections in fp16 (cuBLAS), each
the median of --repeat timed calls after a warm-up, with CUDA events.
FLOPs are the executed ones of spec section 6 (dense causal: 4 d N(N+1)/2
per head). Exits non-zero when HAG failed or a peer measurement did.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def size(text):
    text = text.strip()
    if not text:
        raise ValueError("an empty size")
    return int(text[:-1]) * 1024 if text[-1] in "kK" else int(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hag-bench", required=True, help="hag-bench-gpu binary")
    ap.add_argument("--artifact", required=True, help="CUDA artifact (attention kind)")
    ap.add_argument("--sizes", default="4K,8K,16K,32K,64K,128K")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    a = ap.parse_args()
    try:
        sizes = [size(s) for s in a.sizes.split(",")]
    except ValueError as e:
        ap.error(f"--sizes {a.sizes!r}: {e}")

    # HAG first: its report gives the layer's shape for the peer.
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "hag.json")
        r = subprocess.run([a.hag_bench, a.artifact, "--sizes", ",".join(map(str, sizes)),
                            "--repeat", str(a.repeat), "--json", out,
                            "--peak-tflops", str(a.peak_tflops)], text=True)
        try:
            with open(out) as f:
                report = json.load(f)
        except (OSError, ValueError) as e:
            print(f"gpu_bench: hag-bench-gpu wrote no report ({e})", file=sys.stderr)
            return 1
    hag = {row["n"]: row for row in report["rows"]}
    layer = report["layer"]
    D, H, Hkv, d = layer["d_model"], layer["heads"], layer["kv_heads"], layer["head_dim"]
    causal = layer["causal"]
    kind = "causal" if causal else "bidirectional"

    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    dev = torch.device("cuda")
    name = torch.cuda.get_device_name(0)
    print(f"\ngpu_bench: {name}; torch {torch.__version__}, cuDNN "
          f"{torch.backends.cudnn.version()}; D {D}, H {H}, Hkv {Hkv}, d {d}; fp16, {kind}",
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

    g = torch.Generator(device=dev).manual_seed(0)
    wq = torch.randn(H * d, D, device=dev, dtype=torch.float16, generator=g) / D ** 0.5
    wk = torch.randn(Hkv * d, D, device=dev, dtype=torch.float16, generator=g) / D ** 0.5
    wv = torch.randn(Hkv * d, D, device=dev, dtype=torch.float16, generator=g) / D ** 0.5
    wo = torch.randn(D, H * d, device=dev, dtype=torch.float16, generator=g) / (H * d) ** 0.5

    def heads(t, n, h):  # [1, n, h d] -> [1, H, n, d]; K/V heads repeated for GQA
        t = t.view(1, n, h, d).transpose(1, 2)
        return t.repeat_interleave(H // h, dim=1) if h != H else t

    peer, peer_failed = {}, False
    for n in sizes:
        row = {}
        try:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            x = torch.randn(1, n, D, device=dev, dtype=torch.float16, generator=g)
            q, k, v = heads(x @ wq.T, n, H), heads(x @ wk.T, n, Hkv), heads(x @ wv.T, n, Hkv)
            with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                row["core_ms"] = timed(
                    lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal))

                def dense_layer():
                    qq, kk, vv = (heads(x @ wq.T, n, H), heads(x @ wk.T, n, Hkv),
                                  heads(x @ wv.T, n, Hkv))
                    o = F.scaled_dot_product_attention(qq, kk, vv, is_causal=causal)
                    return o.transpose(1, 2).reshape(1, n, H * d) @ wo.T
                row["layer_ms"] = timed(dense_layer)
            row["peak_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
            del x, q, k, v
        except Exception as e:  # out of memory, no cuDNN backend, ...
            row["error"] = (str(e).splitlines() or [type(e).__name__])[0][:60]
            peer_failed = True
        peer[n] = row
        print(f"  cuDNN N={n}: {row}", file=sys.stderr, flush=True)

    print()
    print(f"HAG pyramid attention layer vs cuDNN fused dense attention (fp16, {kind}) on {name}")
    hdr = ("N", "HAG ms", "HAG lyr TF/s", "core %peak", "cuDNN core ms", "cuDNN TF/s",
           "dense lyr ms", "HAG vs core", "HAG vs lyr")
    print("%8s %9s %12s %10s %13s %10s %12s %11s %10s" % hdr)
    for n in sizes:
        h, p = hag.get(n), peer.get(n, {})
        dense_core = 4.0 * d * (n * (n + 1) / 2 if causal else n * n) * H
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
    if peer_failed:
        print("gpu_bench: a cuDNN measurement failed (see above)", file=sys.stderr)
    return r.returncode or int(peer_failed)


if __name__ == "__main__":
    sys.exit(main())
