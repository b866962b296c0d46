"""Registration speed: BSplineDIR inference vs. InstanceBSpline per frame pair, side by side, at 512x512.

    python benchmarks/bench_registration.py                      # CPU (the DESIGN target: 2 cores)
    python benchmarks/bench_registration.py --device cuda        # + one training iteration at batch 32 on the GPU

Prints a table and writes ``benchmarks/results/registration[_cuda].json``.  The DESIGN targets:

* the network is at least 10x faster per pair than ``InstanceBSpline``;
* the 38 network passes of a 20-frame sequence (19 forward + 19 backward pairs) take <= 2 s on 2 CPU cores
  (pseudo-label fusion adds to that; see ``bench_pseudo_labels.py``).

Timings do not depend on the image content or on trained weights (fixed FLOPs, fixed iteration count), so the
script uses smooth random textures and an untrained network of the paper's architecture.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from echo_utils.registration import BSplineDIR, InstanceBSpline, RegistrationLoss, warp

RESULTS = Path(__file__).resolve().parent / "results"


def textures(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``(n, 1, size, size)`` smooth random images in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size // 8, size // 8, generator=g)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return x.clamp(0, 1)


CPU_TIMES: list[float] = []  # process CPU seconds of the last timed() call, per repeat


def timed(fn, repeats: int, sync=lambda: None) -> list[float]:
    """Wall seconds per repeat; the process CPU seconds go to ``CPU_TIMES`` (on a shared, busy machine
    ``cpu / threads`` estimates the wall time the run would take alone)."""
    out = []
    CPU_TIMES.clear()
    for _ in range(repeats):
        sync()
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
        CPU_TIMES.append(time.process_time() - c0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--grid-spacing", type=int, default=32)
    ap.add_argument("--kernels", type=int, default=32)
    ap.add_argument("--sequence-pairs", type=int, default=38, help="network passes of one 20-frame sequence")
    ap.add_argument("--instance-pairs", type=int, default=4, help="pairs optimised together by InstanceBSpline")
    ap.add_argument("--instance-iterations", type=int, default=100, help="Adam steps per pair (profile default)")
    ap.add_argument("--train-batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/registration[_cuda].json)")
    args = ap.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 1
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    n, size = args.sequence_pairs, args.size

    meta = {
        "device": args.device,
        "gpu": torch.cuda.get_device_name(0) if dev.type == "cuda" else None,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch": torch.__version__,
        "size": size,
        "grid_spacing": args.grid_spacing,
        "kernels": args.kernels,
        "instance_iterations": args.instance_iterations,
    }
    rows = []

    # -- the network: fp32, channels_last, inference_mode (the default path of a loaded model)
    model = BSplineDIR(args.grid_spacing, args.kernels, (size, size)).to(dev)
    with torch.no_grad():  # non-zero output layer, as in a trained model (timing is the same either way)
        model.net[-1].weight.normal_(0, 1e-2)
    model.optimise_for_inference()
    fixed, moving = textures(n, size, 1).to(dev), textures(n, size, 2).to(dev)
    model(fixed[:2], moving[:2])  # warm-up
    t = timed(lambda: model(fixed, moving), args.repeats, sync)
    dir_pair = statistics.median(t) / n
    rows.append({"method": "BSplineDIR (fp32, channels_last)", "pairs_per_call": n, "s_per_call": statistics.median(t),
                 "ms_per_pair": 1e3 * dir_pair, "cpu_s_per_call": statistics.median(CPU_TIMES)})

    if dev.type == "cpu":
        model.optimise_for_inference(torch.bfloat16)  # autocast at inference

        def bf16():
            return model(fixed, moving)

        bf16()
        t = timed(bf16, args.repeats, sync)
        model.optimise_for_inference(torch.float32)
        rows.append({"method": "BSplineDIR (bf16 autocast)", "pairs_per_call": n, "s_per_call": statistics.median(t),
                     "ms_per_pair": 1e3 * statistics.median(t) / n, "cpu_s_per_call": statistics.median(CPU_TIMES)})

    # -- instance optimisation: the same grid and loss, Adam per pair (pairs vectorised)
    k = args.instance_pairs
    inst = InstanceBSpline(args.grid_spacing, alpha=1.0, iterations=args.instance_iterations, lr=0.05)
    InstanceBSpline(args.grid_spacing, iterations=2)(fixed[:1], moving[:1])  # warm-up
    t = timed(lambda: inst(fixed[:k], moving[:k]), max(1, args.repeats - 1), sync)
    inst_pair = statistics.median(t) / k
    rows.append({"method": f"InstanceBSpline ({args.instance_iterations} Adam steps)", "pairs_per_call": k,
                 "s_per_call": statistics.median(t), "ms_per_pair": 1e3 * inst_pair,
                 "cpu_s_per_call": statistics.median(CPU_TIMES)})

    result = {
        "meta": meta,
        "rows": rows,
        "speedup_network_vs_instance": inst_pair / dir_pair,
        "sequence_38_passes_s": dir_pair * 38,
        "sequence_38_passes_cpu_s": rows[0]["cpu_s_per_call"] * 38 / n,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }

    # -- one training iteration at batch 32 (GPU; on CPU too if asked with --train-batch)
    if dev.type == "cuda" or os.environ.get("BENCH_TRAIN_CPU"):
        net = BSplineDIR(args.grid_spacing, args.kernels, (size, size)).to(dev).train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, amsgrad=True)
        loss_fn = RegistrationLoss(1.0, "global")
        b = args.train_batch
        f, m = textures(b, size, 3).to(dev), textures(b, size, 4).to(dev)

        def step():
            u = net(f, m)
            terms = loss_fn(f, warp(m, u), u)
            opt.zero_grad(set_to_none=True)
            terms.loss.backward()
            opt.step()

        step()
        t = timed(step, max(3, args.repeats), sync)
        result["train_iteration_s"] = statistics.median(t)
        result["train_batch"] = b
        result["train_10000_iterations_h"] = statistics.median(t) * 10_000 / 3600
        if dev.type == "cuda":
            result["train_peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30

    print(f"registration benchmark, {size}x{size}, grid spacing {args.grid_spacing}, device {args.device}"
          + (f" ({meta['gpu']})" if meta["gpu"] else f", {meta['torch_threads']} torch threads"))
    print(f"{'method':<40} {'pairs/call':>10} {'s/call':>9} {'ms/pair':>9} {'CPU s/call':>11}")
    for r in rows:
        print(f"{r['method']:<40} {r['pairs_per_call']:>10} {r['s_per_call']:>9.3f} {r['ms_per_pair']:>9.1f}"
              f" {r['cpu_s_per_call']:>11.2f}")
    print(f"network vs instance: {result['speedup_network_vs_instance']:.0f}x faster per pair; "
          f"38 passes (20-frame sequence): {result['sequence_38_passes_s']:.2f} s wall, "
          f"{result['sequence_38_passes_cpu_s']:.2f} CPU s; 1-min load average {result['load_average_1min']}")
    if "train_iteration_s" in result:
        print(f"one training iteration, batch {result['train_batch']}: {result['train_iteration_s']:.3f} s "
              f"(10,000 iterations: {result['train_10000_iterations_h']:.2f} h)"
              + (f", peak memory {result['train_peak_memory_gib']:.1f} GiB" if "train_peak_memory_gib" in result else ""))

    out = Path(args.out) if args.out else RESULTS / f"registration{'_cuda' if dev.type == 'cuda' else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, out)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
