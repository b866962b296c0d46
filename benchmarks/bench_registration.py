"""Registration speed as a fraction of the machine's peak: DIR training at the demo size, inference at 512 px.

    OMP_NUM_THREADS=2 taskset -c 0,1 .venv/bin/python benchmarks/bench_registration.py --threads 2
    python benchmarks/bench_registration.py --device cuda        # the same code path on a GPU

Prints a table and writes ``benchmarks/results/registration[_cuda].json`` (read by the book's benchmarks chapter):

* **one DIR training iteration at the demo size** (batch 16 of 128x128 pairs, grid spacing 8, 32 kernels, Adam,
  ``-NCC + alpha * bending energy``): pairs per second, achieved GFLOP/s (three forward passes' worth of
  convolution work per pair: forward, and the gradients with respect to inputs and weights) and its ratio to a
  2048² matrix product of the same run, for the network before issue 16 (PyTorch's ELU, contiguous layout,
  float32), for today's default (channels_last, vectorised ELU, float32) and with bfloat16 autocast (float32
  master weights); a short run of the three from the same initialisation on the same batches checks that they
  follow the same loss curve;
* **inference vs per-pair optimisation** at 512x512 with the paper's layout (grid spacing 32): the network's
  batched path against ``InstanceBSpline`` (the network should be at least 10x faster per pair).

Timings do not depend on the image content or on trained weights (fixed FLOPs, fixed iteration count), so the
script uses smooth random textures and an untrained network.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402

from echo_utils.registration import BSplineDIR, InstanceBSpline, RegistrationLoss, register_pairs  # noqa: E402
from echo_utils.registration.inference import keep_freed_memory  # noqa: E402
from echo_utils.artifacts.atomic import write_json  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def textures(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """``(n, 1, size, size)`` smooth random images in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size // 8, size // 8, generator=g)
    x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    return x.clamp(0, 1)


def reference_network(net: BSplineDIR) -> BSplineDIR:
    """A copy of ``net`` as before issue 16: PyTorch's ``nn.ELU``, contiguous layout."""
    ref = copy.deepcopy(net)
    for i, layer in enumerate(ref.net):
        if isinstance(layer, torch.nn.ELU):
            ref.net[i] = torch.nn.ELU()
    return ref.to(memory_format=torch.contiguous_format)


def training_variants(size: int, spacing: int, kernels: int, device: str) -> dict:
    """The three networks, from one initialisation (a non-zero output layer, as during training)."""
    torch.manual_seed(0)
    base = BSplineDIR(spacing, kernels, (size, size))
    with torch.no_grad():
        base.net[-1].weight.normal_(0, 1e-2)
    bf16 = copy.deepcopy(base)
    bf16.training_dtype = torch.bfloat16
    return {"reference": reference_network(base).to(device), "default": base.to(device), "bf16": bf16.to(device)}


def make_step(net: BSplineDIR, fixed: torch.Tensor, moving: torch.Tensor, alpha: float, lr: float = 1e-3):
    """One training iteration of ``net`` on a batch, as ``train_registration`` does it."""
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=lr, amsgrad=True)
    loss_fn = RegistrationLoss(alpha, "pair")

    def step(f=fixed, m=moving):
        terms = loss_fn.pair_loss(f, m, net(f, m))
        opt.zero_grad(set_to_none=True)
        terms.loss.backward()
        opt.step()
        return float(terms.loss.detach())

    return step


def _training_section(train: dict, curves: dict, args, gflop_iter: float) -> dict:
    return {"batch": args.train_batch, "size": args.train_size, "grid_spacing": args.train_spacing, "kernels": 32,
            "gflop_per_iteration": gflop_iter, "variants": train,
            "speedup_pairs_per_s_default_vs_reference": train["default"]["pairs_per_s"] / train["reference"]["pairs_per_s"],
            "speedup_pairs_per_s_bf16_vs_reference": train["bf16"]["pairs_per_s"] / train["reference"]["pairs_per_s"],
            "speedup_cpu_default_vs_reference": train["reference"]["cpu_s"] / train["default"]["cpu_s"],
            "speedup_cpu_bf16_vs_reference": train["reference"]["cpu_s"] / train["bf16"]["cpu_s"],
            "loss_curves": curves}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--repeats", type=int, default=5, help="timed training iterations per variant")
    ap.add_argument("--train-size", type=int, default=128)
    ap.add_argument("--train-batch", type=int, default=16)
    ap.add_argument("--train-spacing", type=int, default=8)
    ap.add_argument("--curve-iterations", type=int, default=30, help="loss-curve check length (0: skip)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--sequence-pairs", type=int, default=38, help="network passes of one 20-frame sequence")
    ap.add_argument("--instance-pairs", type=int, default=2, help="pairs optimised together by InstanceBSpline")
    ap.add_argument("--instance-iterations", type=int, default=100, help="Adam steps per pair (profile default)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/registration[_cuda].json)")
    ap.add_argument("--only-training", action="store_true",
                    help="measure the training iteration only and replace that section of the existing JSON")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 1
    dev = args.device
    meta = machine.describe(dev)
    peak0 = machine.peak(dev)

    # -- training at the demo size
    b, size = args.train_batch, args.train_size
    fixed, moving = textures(b, size, 3).to(dev), textures(b, size, 4).to(dev)
    nets = training_variants(size, args.train_spacing, 32, dev)
    gflop_iter = 3 * b * nets["default"].flops() / 1e9
    train = {}
    for name, net in nets.items():
        if name != "reference":  # what train_registration does before its first iteration (after the reference)
            keep_freed_memory()
        r = machine.timed(make_step(net, fixed, moving, 1.0), args.repeats, dev)
        train[name] = {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "pairs_per_s": b / r["wall_s"],
                       "pairs_per_cpu_s": b / r["cpu_s"]}
    curves = {}
    if args.curve_iterations:
        # pairs with a known motion (the moving image is the fixed one shifted by (2, -1) px), so that the
        # network has something to learn at the demo's learning rate
        batches = [(f, torch.roll(f, shifts=(2, -1), dims=(2, 3)))
                   for f in (textures(b, size, 100 + i).to(dev) for i in range(4))]
        for name, net in training_variants(size, args.train_spacing, 32, dev).items():
            step = make_step(net, fixed, moving, 1.0, lr=1e-2)
            curves[name] = [step(*batches[i % len(batches)]) for i in range(args.curve_iterations)]
        ref_curve = np.array(curves["reference"])
        for name in ("default", "bf16"):
            train[name]["loss_curve_max_abs_difference"] = float(np.abs(np.array(curves[name]) - ref_curve).max())
        for name in curves:
            train[name]["loss_first_last"] = [curves[name][0], curves[name][-1]]

    out = Path(args.out) if args.out else RESULTS / f"registration{'_cuda' if dev == 'cuda' else ''}.json"
    if args.only_training:
        peak1 = machine.peak(dev)
        ref = {key: max(peak0[key], peak1[key]) for key in peak0}
        for row in train.values():
            row.update(machine.ratios(gflop_iter, row["wall_s"], ref, row["cpu_s"]))
        result = json.loads(out.read_text())
        result["training"] = _training_section(train, curves, args, gflop_iter)
        result["training"].update(meta={**meta, "load_average_1min_end": os.getloadavg()[0]},
                                  matmul_reference={"n": machine.MATMUL_N, "start": peak0, "end": peak1, "best": ref})
        write_json(out, result, indent=2, sort_keys=False, newline=True)
        for name, row in train.items():
            print(f"  {name:<10} {row['wall_s']:.3f} s ({row['cpu_s']:.3f} CPU s)  {row['pairs_per_s']:.1f} pairs/s  "
                  f"{row['fraction_of_fp32_matmul']:.2f} of fp32 matmul ({row['fraction_of_fp32_matmul_cpu']:.2f} by CPU)")
        print(f"written {out} (training section)")
        return 0

    # -- inference at 512 px: the network's batched path against per-pair optimisation
    n = args.sequence_pairs
    torch.manual_seed(0)
    model = BSplineDIR(32, 32, (args.size, args.size)).to(dev)
    with torch.no_grad():
        model.net[-1].weight.normal_(0, 1e-2)
    model.optimise_for_inference()
    images = textures(n + 1, args.size, 1)[:, 0].numpy()
    pairs = [(k + 1, k) for k in range(n)]
    infer = {}
    for prec in ("float32", "bfloat16", "auto"):
        r = machine.timed(lambda: register_pairs(model, images, pairs, precision=prec), max(1, args.repeats // 2), dev)
        infer[prec] = {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "ms_per_pair": 1e3 * r["wall_s"] / n}
    k = args.instance_pairs
    inst = InstanceBSpline(32, alpha=1.0, iterations=args.instance_iterations, lr=0.05)
    r = machine.timed(lambda: register_pairs(inst, images[: k + 1], pairs[:k]), 1, dev)
    infer["instance"] = {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "ms_per_pair": 1e3 * r["wall_s"] / k}

    peak1 = machine.peak(dev)
    ref = {key: max(peak0[key], peak1[key]) for key in peak0}
    for name, row in train.items():
        row.update(machine.ratios(gflop_iter, row["wall_s"], ref, row["cpu_s"]))
    gflop_infer = n * model.flops() / 1e9
    for prec in ("float32", "bfloat16", "auto"):
        infer[prec].update(machine.ratios(gflop_infer, infer[prec]["wall_s"], ref, infer[prec]["cpu_s"]))

    result = {
        "meta": {**meta, "load_average_1min_end": os.getloadavg()[0]},
        "matmul_reference": {"n": machine.MATMUL_N, "start": peak0, "end": peak1, "best": ref},
        "training": _training_section(train, curves, args, gflop_iter),
        "inference": {"size": args.size, "grid_spacing": 32, "kernels": 32, "pairs": n,
                      "gflop": gflop_infer, "rows": infer,
                      "speedup_network_vs_instance": infer["instance"]["ms_per_pair"] / infer["auto"]["ms_per_pair"]},
    }
    print(f"registration benchmark on {dev} ({meta['cpu']}), {meta['torch_threads']} torch threads, affinity "
          f"{meta['cpu_affinity']}, load {meta['load_average_1min_start']:.1f} -> {result['meta']['load_average_1min_end']:.1f}")
    print(f"matmul {machine.MATMUL_N}^2: fp32 {ref['fp32_gflops']:.0f}, bf16 {ref['bf16_gflops']:.0f} GFLOP/s")
    print(f"training, batch {b} at {size}^2 ({gflop_iter:.1f} GFLOP per iteration):")
    for name, row in train.items():
        print(f"  {name:<10} {row['wall_s']:.3f} s ({row['cpu_s']:.3f} CPU s)  {row['pairs_per_s']:.1f} pairs/s  "
              f"{row['gflops']:.1f} GFLOP/s = {row['fraction_of_fp32_matmul']:.2f} of fp32 matmul "
              f"({row['fraction_of_fp32_matmul_cpu']:.2f} by CPU time)"
              + (f"  loss-curve max diff {row['loss_curve_max_abs_difference']:.2e}"
                 if "loss_curve_max_abs_difference" in row else ""))
    print(f"inference, {n} pairs at {args.size}^2:")
    for name, row in infer.items():
        print(f"  {name:<10} {row['ms_per_pair']:.1f} ms/pair"
              + (f"  {row['gflops']:.1f} GFLOP/s = {row['fraction_of_fp32_matmul']:.2f} of fp32 matmul"
                 if "gflops" in row else ""))
    write_json(out, result, indent=2, sort_keys=False, newline=True)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
