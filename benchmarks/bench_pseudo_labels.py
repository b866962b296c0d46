"""Speed of pseudo-label generation for one 20-frame 512x512 sequence, as a fraction of the machine's peak.

What is timed (median of ``--repeats`` runs after one warm-up), each as wall and process-CPU seconds:

* ``registration_reference``: the 38 image pairs (19 forward + 19 backward, sequential mode) through the DIR
  network called as a module with PyTorch's own ELU, float32, 64 pairs per call: the path before issue 16;
* ``registration_fp32`` / ``registration_bf16`` / ``registration``: the batched inference path
  (:func:`echo_utils.registration.register_pairs`) in float32, in bfloat16 and with the default precision
  (``'auto'``: bfloat16 where the CPU computes it natively);
* ``warp``: the 38 sequential nearest-neighbour label warps;
* ``fusion_sdf`` / ``fusion_argmax``: Eq. 1 for 20 frames x 4 classes, both assembly rules, against a full-frame
  scipy EDT per class and frame for comparison;
* ``total``: :func:`echo_utils.fusion.pseudo_labels` end to end with the default settings; ``total_fp32`` the same
  in float32.

The network has the paper's layout (grid spacing 32, 32 kernels; random weights cost the same as trained ones):
``BSplineDIR.flops`` counts its work, 38 passes of about 1.9 GFLOP. The achieved GFLOP/s of each registration and of
the end-to-end total is reported with its ratio to a 2048² matrix product measured in the same run (float32 and
bfloat16; the best of a measurement before and after), which is what carries over on a shared, noisy machine.
Run it pinned and with the thread count noted, e.g.::

    OMP_NUM_THREADS=2 taskset -c 0,1 .venv/bin/python benchmarks/bench_pseudo_labels.py [--threads 2] [--repeats 3]

Prints a table and writes ``benchmarks/results/bench_pseudo_labels.json`` (read by the book's benchmarks chapter).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402

from echo_utils.artifacts.atomic import write_json  # noqa: E402


def make_sequence(size: int = 512, frames: int = 20, seed: int = 0):
    """A ``frames``-frame phantom sequence (ED -> ES) at ``size`` x ``size``: the 4CH view of a one-patient cohort
    written by :func:`echo_utils.phantom.make_cohort` to a temporary folder and read back."""
    import tempfile

    from echo_utils.camus import iter_sequences
    from echo_utils.phantom import make_cohort

    with tempfile.TemporaryDirectory() as tmp:
        root = make_cohort(tmp, 1, size=size, frames=(frames, frames), seed=seed, workers=1, progress=False)
        seqs = list(iter_sequences(root))
    return next(s for s in seqs if s.view == "4CH")


def naive_fusion_scipy(forward, backward):
    """Full-frame scipy EDT per class and frame: the slow baseline the cropped EDT of the fusion replaces."""
    from scipy import ndimage as ndi

    from echo_utils.pseudolabels import fusion_weights

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


def reference_network(net):
    """A copy of ``net`` with PyTorch's own ``nn.ELU`` (the module before issue 16), float32, contiguous."""
    import copy

    import torch

    ref = copy.deepcopy(net)
    for i, layer in enumerate(ref.net):
        if isinstance(layer, torch.nn.ELU):
            ref.net[i] = torch.nn.ELU()
    return ref.to(memory_format=torch.contiguous_format)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_pseudo_labels.json"))
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from echo_utils import fusion, pseudolabels
    from echo_utils.pseudolabels.propagate import _warp_chains
    from echo_utils.registration import BSplineDIR, register_pairs, warp
    from echo_utils.registration.inference import default_precision

    meta = machine.describe(args.device)
    peak0 = machine.peak(args.device)
    seq = make_sequence(args.size, args.frames)
    t = seq.n_frames
    torch.manual_seed(0)
    net = BSplineDIR(grid_spacing=32, kernels=32, image_size=(args.size, args.size))
    with torch.no_grad():  # random output layer: non-zero displacements (the zero init is the identity)
        net.net[-1].weight.normal_(0, 1.0)
    net.optimise_for_inference().to(args.device)
    legacy = reference_network(net)

    images = seq.images
    pairs = [(k + 1, k) for k in range(t - 1)] + [(k - 1, k) for k in range(t - 1, 0, -1)]
    rows: dict[str, dict] = {}

    def timed(name, fn, repeats=args.repeats):
        r = machine.timed(fn, repeats, args.device)
        rows[name] = {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"]}
        return r["result"]

    frames_t = torch.from_numpy(images)[:, None].to(args.device)
    fi, mi = [p[0] for p in pairs], [p[1] for p in pairs]

    def reference():
        with torch.inference_mode():
            return torch.cat([legacy(frames_t[fi[s:s + 64]], frames_t[mi[s:s + 64]]).cpu()
                              for s in range(0, len(pairs), 64)])

    disp_ref = timed("registration_reference", reference)
    disp32 = timed("registration_fp32", lambda: register_pairs(net, images, pairs, precision="float32"))
    disp16 = timed("registration_bf16", lambda: register_pairs(net, images, pairs, precision="bfloat16"))
    timed("registration", lambda: register_pairs(net, images, pairs))

    def warps():
        fwd, bwd = _warp_chains([seq.labels[0], seq.labels[t - 1]], [disp32[: t - 1], disp32[t - 1 :]],
                                "sequential", warp)
        return fwd, bwd[::-1]

    fwd, bwd = timed("warp", warps)
    timed("fusion_sdf", lambda: fusion.fuse_bidirectional(fwd, bwd, assemble="sdf"))
    timed("fusion_argmax", lambda: fusion.fuse_bidirectional(fwd, bwd, assemble="argmax"))
    timed("fusion_scipy_full_frame", lambda: naive_fusion_scipy(fwd, bwd), 1)
    pl32 = timed("total_fp32", lambda: fusion.pseudo_labels(seq, net, precision="float32"))
    pl = timed("total", lambda: fusion.pseudo_labels(seq, net))
    pl16 = fusion.pseudo_labels(seq, net, precision="bfloat16")
    peak1 = machine.peak(args.device)
    ref = {k: max(peak0[k], peak1[k]) for k in peak0}

    gflop = len(pairs) * net.flops() / 1e9
    throughput = {name: machine.ratios(gflop, rows[name]["wall_s"], ref, rows[name]["cpu_s"])
                  for name in ("registration_reference", "registration_fp32", "registration_bf16", "registration",
                               "total", "total_fp32")}
    accuracy = {
        "max_abs_displacement_px": float(disp32.abs().max()),
        "fp32_vs_reference_max_abs_displacement_error_px": float((disp32 - disp_ref).abs().max()),
        "bf16_max_abs_displacement_error_px": float((disp16 - disp32).abs().max()),
        "bf16_label_pixels_changed_fraction": {k: float((pl16[k] != pl32[k]).mean()) for k in pseudolabels.KINDS},
    }
    result = {
        "what": f"pseudo-labels for one {t}-frame {args.size}x{args.size} sequence (forward+backward+fusion)",
        "meta": {**meta, "load_average_1min_end": os.getloadavg()[0], "default_precision":
                 default_precision(args.device)},
        "n_pairs": len(pairs),
        "dirnet_gflop_per_pair": net.flops() / 1e9,
        "dirnet_gflop": gflop,
        "matmul_reference": {"n": machine.MATMUL_N, "start": peak0, "end": peak1, "best": ref},
        "seconds": rows,
        "throughput": throughput,
        "speedup_vs_reference": rows["registration_reference"]["wall_s"] / rows["registration"]["wall_s"],
        "speedup_vs_reference_cpu": rows["registration_reference"]["cpu_s"] / rows["registration"]["cpu_s"],
        "target_fraction_of_fp32_matmul": 0.35,
        "accuracy": accuracy,
        "default_labels_equal_fp32": bool(all(np.array_equal(pl[k], pl32[k]) for k in pseudolabels.KINDS))
        if meta["native_bfloat16"] else None,
    }
    print(f"{result['what']} on {args.device} with {args.threads} threads, {meta['cpu']}, "
          f"load {meta['load_average_1min_start']:.1f} -> {result['meta']['load_average_1min_end']:.1f}")
    print(f"matmul {machine.MATMUL_N}^2: fp32 {ref['fp32_gflops']:.0f} GFLOP/s, bf16 {ref['bf16_gflops']:.0f} GFLOP/s; "
          f"DIRNet work {gflop:.1f} GFLOP")
    print(f"{'step':<26}{'wall s':>9}{'CPU s':>9}{'GFLOP/s':>9}{'/fp32 mm':>9}{'/bf16 mm':>9}{'cpu/fp32':>9}")
    for k, v in rows.items():
        tp = throughput.get(k)
        extra = (f"{tp['gflops']:>9.1f}{tp['fraction_of_fp32_matmul']:>9.2f}{tp['fraction_of_bf16_matmul']:>9.2f}"
                 f"{tp['fraction_of_fp32_matmul_cpu']:>9.2f}" if tp else "")
        print(f"{k:<26}{v['wall_s']:>9.3f}{v['cpu_s']:>9.3f}{extra}")
    print(json.dumps(accuracy))
    frac = throughput["total"]["fraction_of_fp32_matmul"]
    frac_cpu = throughput["total"]["fraction_of_fp32_matmul_cpu"]
    print(f"target: total at >= 35 % of the fp32 matmul -> {frac:.0%} by wall time, {frac_cpu:.0%} by CPU time "
          f"({'met' if frac >= 0.35 else 'NOT met'} / {'met' if frac_cpu >= 0.35 else 'NOT met'})")
    write_json(Path(args.out), result, indent=2, sort_keys=False, newline=True)
    return result


if __name__ == "__main__":
    main()
