"""Speed of pseudo-label generation for one 20-frame 512x512 sequence (DESIGN.md target: <= 2 s on 2 CPU cores).

What is timed (median of ``--repeats`` runs after one warm-up):

* ``registration``: the 38 image pairs (19 forward + 19 backward, sequential mode) through the DIR network in
  batched calls under ``inference_mode`` with ``channels_last`` weights (the network has the paper's layout:
  grid spacing 32, 32 kernels; its weights are random, which costs the same as trained ones);
* ``warp``: the 38 sequential nearest-neighbour label warps;
* ``fusion``: Eq. 1 for 20 frames x 4 classes (exact EDT restricted to the foreground box), both assembly rules,
  against a full-frame scipy EDT per class and frame for comparison;
* ``total``: :func:`echo_utils.fusion.pseudo_labels` end to end (forward + backward + fusion);
* ``registration_bf16`` / ``total_bf16``: the same with the network's convolutions under bfloat16 autocast
  (``precision='bfloat16'``), with the resulting displacement error and the fraction of changed label pixels.

The sequence is a 512x512 phantom sequence (``echo_utils.phantom``) with 20 frames from ED to ES.

Usage::

    .venv/bin/python benchmarks/bench_pseudo_labels.py [--threads 2] [--repeats 5] [--device cpu]

Prints a table and writes ``benchmarks/results/bench_pseudo_labels.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np


CPU_TIMES: dict[str, float] = {}


def _median_time(fn, repeats: int, name: str | None = None) -> tuple[float, object]:
    """Median wall time of ``fn`` over ``repeats`` runs after a warm-up; the median process CPU time (all threads)
    goes to ``CPU_TIMES[name]``: on a busy machine, CPU time / threads estimates the wall time of a quiet one."""
    out = fn()  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    if name:
        CPU_TIMES[name] = statistics.median(cpu)
    return statistics.median(times), out


def make_sequence(size: int = 512, frames: int = 20, seed: int = 0):
    """A 20-frame phantom sequence (ED -> ES) at ``size`` x ``size``, as an EchoSequence."""
    from echo_utils import phantom
    from echo_utils.camus import EchoSequence

    pp = phantom.sample_patient(0, seed, frames=(frames, frames))
    img, lab, sp = phantom.render_view(
        pp, "4CH", size, phantom.systole_phase(pp.n_frames, pp.knots), np.random.default_rng(seed)
    )
    images = img.astype(np.float32) / 255.0
    t = images.shape[0]
    return EchoSequence(
        patient="patient0000", view="4CH", images=images, spacing=(sp, sp), ed=0, es=t - 1,
        labels={0: lab[0].copy(), t - 1: lab[-1].copy()}, dense=lab, dense_kind="exact",
    )


def naive_fusion_scipy(forward, backward):
    """Full-frame scipy EDT per class and frame (the slow baseline DESIGN.md warns about)."""
    from scipy import ndimage as ndi

    from echo_utils.fusion import fusion_weights

    wf, wb = fusion_weights(forward.shape[0])
    out = np.zeros_like(forward)
    for k in range(forward.shape[0]):
        s = []
        for c in range(4):
            d = 0.0
            for w, lab in ((wf[k], forward[k]), (wb[k], backward[k])):
                m = lab == c
                d = d + w * (ndi.distance_transform_edt(m) - ndi.distance_transform_edt(~m))
            s.append(d)
        out[k] = np.argmax(np.stack(s), 0)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_pseudo_labels.json"))
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from echo_utils import fusion
    from echo_utils.registration import BSplineDIR, warp

    seq = make_sequence(args.size, args.frames)
    t = seq.n_frames
    torch.manual_seed(0)
    net = BSplineDIR(grid_spacing=32, kernels=32, image_size=(args.size, args.size))
    with torch.no_grad():  # random output layer: non-zero displacements (the zero init is the identity)
        net.net[-1].weight.normal_(0, 1.0)
    net.optimise_for_inference().to(args.device)

    images = seq.images
    pairs = [(k + 1, k) for k in range(t - 1)] + [(k - 1, k) for k in range(t - 1, 0, -1)]
    rows = {}

    def timed(name, fn, repeats=args.repeats):
        rows[name], out = _median_time(fn, repeats, name)
        return out

    bs = args.batch_size
    disp = timed("registration", lambda: fusion.register_pairs(net, images, pairs, batch_size=bs))

    def warps():
        fwd, bwd = fusion._warp_chains([seq.labels[0], seq.labels[t - 1]], [disp[: t - 1], disp[t - 1 :]],
                                       "sequential", warp)
        return fwd, bwd[::-1]

    fwd, bwd = timed("warp", warps)
    timed("fusion_sdf", lambda: fusion.fuse_bidirectional(fwd, bwd, assemble="sdf"))
    timed("fusion_argmax", lambda: fusion.fuse_bidirectional(fwd, bwd, assemble="argmax"))
    timed("fusion_scipy_full_frame", lambda: naive_fusion_scipy(fwd, bwd), 1)
    pl32 = timed("total", lambda: fusion.pseudo_labels(seq, net, batch_size=bs))
    disp16 = timed("registration_bf16",
                   lambda: fusion.register_pairs(net, images, pairs, batch_size=bs, precision="bfloat16"))
    pl16 = timed("total_bf16", lambda: fusion.pseudo_labels(seq, net, batch_size=bs, precision="bfloat16"))
    accuracy = {
        "max_abs_displacement_px": float(disp.abs().max()),
        "bf16_max_abs_displacement_error_px": float((disp16 - disp).abs().max()),
        "bf16_bidirectional_pixels_changed_fraction": float((pl16.bidirectional != pl32.bidirectional).mean()),
    }

    result = {
        "what": f"pseudo-labels for one {t}-frame {args.size}x{args.size} sequence (forward+backward+fusion)",
        "target_s": 2.0,
        "threads": args.threads,
        "device": args.device,
        "n_pairs": len(pairs),
        "batch_size": args.batch_size,
        "seconds": {k: round(v, 4) for k, v in rows.items()},
        "cpu_seconds": {k: round(v, 4) for k, v in CPU_TIMES.items()},
        "bf16_accuracy": accuracy,
        "cpu": platform.processor() or platform.machine(),
        "cores_visible": os.cpu_count(),
        "torch": torch.__version__,
        "load_average_1min": os.getloadavg()[0],
    }
    print(f"{result['what']} on {args.device} with {args.threads} threads (load avg {result['load_average_1min']:.1f})")
    print(f"{'step':<26}{'wall s':>10}{'CPU s':>10}")
    for k, v in rows.items():
        print(f"{k:<26}{v:>10.3f}{CPU_TIMES.get(k, float('nan')):>10.3f}")
    for k, v in accuracy.items():
        print(f"{k:<44}{v:.4g}")
    for k in ("total", "total_bf16"):
        print(f"target: {k} <= {result['target_s']} s -> {'met' if rows[k] <= result['target_s'] else 'NOT met'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
