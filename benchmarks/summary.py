"""The benchmarks chapter's headline tables, rendered from the committed JSON results.

    .venv/bin/python benchmarks/summary.py          # rewrites book/benchmark_summary.md

``book/benchmarks.md`` includes ``book/benchmark_summary.md``; ``tests/test_benchmark_summary.py`` checks that the
committed file is what this script renders from ``benchmarks/results/*.json``, so no number in it is typed by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
OUT = ROOT.parent / "book" / "benchmark_summary.md"
SEEDS_OUT = ROOT.parent / "book" / "seed_summary.md"


def _machine(meta: dict) -> str:
    aff = meta.get("cpu_affinity")
    return (f"{meta['date_utc']} UTC, {meta['cpu']}, {meta['torch_threads']} torch threads "
            f"(OMP_NUM_THREADS={meta.get('omp_num_threads')}, CPU affinity {aff}), device {meta['device']}, "
            f"native bfloat16: {'yes' if meta.get('native_bfloat16') else 'no'}, torch {meta['torch']}, 1-minute "
            f"load average {meta['load_average_1min_start']:.1f} at the start and {meta['load_average_1min_end']:.1f} "
            "at the end")


def render(results: Path = RESULTS) -> str:
    """The markdown of the headline tables (pseudo-label generation, DIR training) from the JSON files."""
    pl = json.loads((results / "bench_pseudo_labels.json").read_text())
    reg = json.loads((results / "registration.json").read_text())
    out = []
    ref = pl["matmul_reference"]["best"]
    tp, sec = pl["throughput"], pl["seconds"]
    out += [
        f"**Pseudo-labels, one {pl['what'].split('one ')[1]}:** {pl['n_pairs']} DIRNet passes, "
        f"{pl['dirnet_gflop']:.0f} GFLOP. Same-run 2048² matmul: {ref['fp32_gflops']:.0f} GFLOP/s (fp32), "
        f"{ref['bf16_gflops']:.0f} GFLOP/s (bf16). Measured {_machine(pl['meta'])}.",
        "",
        "| path | wall s | CPU s | GFLOP/s | **fraction of fp32 matmul** | fraction of bf16 matmul | "
        "fraction of fp32 matmul, by CPU time |",
        "|---|---|---|---|---|---|---|",
    ]
    names = {
        "registration_reference": "registration, before (module call, PyTorch ELU, fp32)",
        "registration_fp32": "registration, batched path, fp32",
        "registration_bf16": "registration, batched path, bf16",
        "registration": f"registration, default ({pl['meta']['default_precision']})",
        "total_fp32": "**end to end**, `pseudo_labels`, fp32",
        "total": "**end to end**, `pseudo_labels`, default",
    }
    for key, label in names.items():
        t = tp[key]
        out.append(f"| {label} | {sec[key]['wall_s']:.2f} | {sec[key]['cpu_s']:.2f} | {t['gflops']:.1f} | "
                   f"**{t['fraction_of_fp32_matmul']:.0%}** | {t['fraction_of_bf16_matmul']:.0%} | "
                   f"{t['fraction_of_fp32_matmul_cpu']:.0%} |")
    acc = pl["accuracy"]
    changed = acc["bf16_label_pixels_changed_fraction"]
    out += [
        "",
        f"Target: end to end at ≥ {pl['target_fraction_of_fp32_matmul']:.0%} of the fp32 matmul; measured "
        f"{tp['total']['fraction_of_fp32_matmul']:.0%} by wall time "
        f"({'met' if tp['total']['fraction_of_fp32_matmul'] >= pl['target_fraction_of_fp32_matmul'] else 'not met'}) "
        f"and {tp['total']['fraction_of_fp32_matmul_cpu']:.0%} by CPU time (the matmul's rate measured the same way; "
        "on a shared machine the process's wall time grows with the other jobs, its CPU time much less). "
        f"Registration {pl['speedup_vs_reference']:.1f}× faster than before in wall time "
        f"({pl['speedup_vs_reference_cpu']:.1f}× in CPU time). bf16 changed the displacements by at most "
        f"{acc['bf16_max_abs_displacement_error_px']:.4f} px (largest displacement "
        f"{acc['max_abs_displacement_px']:.2f} px) and "
        + ", ".join(f"{v:.3%} of the {k} label pixels" for k, v in changed.items()) + ".",
        "",
    ]
    tr = reg["training"]
    rref = tr.get("matmul_reference", reg["matmul_reference"])["best"]
    out += [
        f"**DIR training, one iteration at the demo size** (batch {tr['batch']}, {tr['size']}², grid spacing "
        f"{tr['grid_spacing']}, {tr['kernels']} kernels; {tr['gflop_per_iteration']:.1f} GFLOP per iteration). "
        f"Same-run matmul: {rref['fp32_gflops']:.0f} GFLOP/s (fp32), {rref['bf16_gflops']:.0f} GFLOP/s (bf16). "
        f"Measured {_machine(tr.get('meta', reg['meta']))}.",
        "",
        "| network | wall s | CPU s | pairs/s | GFLOP/s | **fraction of fp32 matmul** | by CPU time | "
        "loss curve vs before (max abs diff) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    labels = {"reference": "before (PyTorch ELU, contiguous, fp32)", "default": "default (channels_last, vectorised ELU, allocator keeps freed memory, fp32)",
              "bf16": "bf16 autocast, fp32 master weights (opt-in)"}
    for key, label in labels.items():
        v = tr["variants"][key]
        diff = v.get("loss_curve_max_abs_difference")
        out.append(f"| {label} | {v['wall_s']:.3f} | {v['cpu_s']:.3f} | {v['pairs_per_s']:.1f} | {v['gflops']:.1f} | "
                   f"**{v['fraction_of_fp32_matmul']:.0%}** | {v['fraction_of_fp32_matmul_cpu']:.0%} | "
                   f"{'–' if diff is None else f'{diff:.1e}'} |")
    out += [
        "",
        f"Pairs per second, default vs before: {tr['speedup_pairs_per_s_default_vs_reference']:.1f}× in wall time "
        f"({tr['speedup_cpu_default_vs_reference']:.1f}× in CPU time); bf16 vs before "
        f"{tr['speedup_pairs_per_s_bf16_vs_reference']:.1f}× ({tr['speedup_cpu_bf16_vs_reference']:.1f}× in CPU "
        "time). Target: at least 2×.",
        "",
    ]
    inf = reg["inference"]
    rows = inf["rows"]
    out += [
        f"**Network against per-pair optimisation** at {inf['size']}² (grid spacing {inf['grid_spacing']}): "
        f"{rows['auto']['ms_per_pair']:.0f} ms per pair for the network (default precision, "
        f"{rows['auto']['fraction_of_fp32_matmul']:.0%} of the fp32 matmul), "
        f"{rows['instance']['ms_per_pair']:.0f} ms for `InstanceBSpline` (100 Adam steps): the network is "
        f"{inf['speedup_network_vs_instance']:.0f}× faster per pair (target ≥ 10×).",
        "",
    ]
    out += registration_learning(json.loads((results / "registration_learning.json").read_text()))
    variants = sorted((results / "registration_variants").glob("*.json"))
    if variants:
        out += registration_variants([json.loads(p.read_text()) for p in variants],
                                     json.loads((results / "registration_learning.json").read_text()))
    if (results / "registration_refinement.json").exists():
        out += registration_refinement(json.loads((results / "registration_refinement.json").read_text()))
    if (results / "registration_alpha.json").exists():
        out += registration_alpha(json.loads((results / "registration_alpha.json").read_text()))
    if (results / "registration_recipe.json").exists():
        out += registration_recipe(json.loads((results / "registration_recipe.json").read_text()))
    if (results / "reference_tuning.json").exists():
        out += reference_tuning(json.loads((results / "reference_tuning.json").read_text()))
    return "\n".join(out)


def registration_variants(trials: list[dict], profile: dict) -> list[str]:
    """Trials of other registration settings (``bench_registration_learning.py --variant``) beside the profile's own
    run at the same data seed: what each change did to the end-point error, the Dice gains and the training time."""
    rows = [("the profile (demo)", sd) for sd in profile["seeds"]]
    rows += [(f"`{t['variant']}`: " + ", ".join(f"`{o}`" for o in t["overrides"]), sd) for t in trials for sd in t["seeds"]]
    out = ["**Trials of other registration settings** (`bench_registration_learning.py --variant`; the same "
           "benchmark, one change each against the profile's settings; training seconds are wall time at the "
           "load average shown, on a shared 2-core machine):", "",
           "| setting | seed | iterations | training (s) | load at start | kept iteration | val loss at the kept iteration "
           "| EPE DLIR (px) | DLIR / identity | network alive | forward gain LV / MYO "
           "| bidirectional minus InstanceBSpline LV / MYO |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, sd in sorted(rows, key=lambda r: (r[1]["seed"], r[0] != "the profile (demo)")):
        c, e = sd["checks"], sd["epe"]["step"]
        kept = [r for r in sd["curve"] if r["iteration"] == sd["kept_iteration"]]
        out.append(f"| {name} | {sd['seed']} | {sd['registration'].get('iterations')} | {sd['train_seconds']:.0f} "
                   f"| {sd.get('loadavg_1min_at_start', float('nan')):.1f} | {sd['kept_iteration']} "
                   f"| {kept[0]['val_loss']:.5f} | {e['dlir']:.3f} | {c['epe_step_ratio_to_identity']:.0%} "
                   f"| {'yes' if c['network_alive'] else '**no: constant field**'} "
                   f"| {c['forward_LV_gain_over_identity']:+.3f} / {c['forward_MYO_gain_over_identity']:+.3f} "
                   f"| {c['bidirectional_LV_minus_instance']:+.3f} / {c['bidirectional_MYO_minus_instance']:+.3f} |"
                   if kept else f"| {name} | {sd['seed']} | (no validation row at the kept iteration) |")
    return out + [""]


def registration_refinement(rr: dict) -> list[str]:
    """The network's amortisation gap (``bench_registration_refinement.py``): consecutive-frame EPE of the identity,
    the network, the network refined by k InstanceBSpline steps and InstanceBSpline from zeros with k steps."""
    steps = rr["steps"]
    names = ["identity", "dlir", *(n for k in steps for n in (f"dlir+{k}", f"instance{k}"))]
    extra = [n for n in rr["seeds"][0]["kinds"]["step"]["rows"] if n not in names]
    names += extra
    label = {"identity": "identity (control)", "dlir": "DLIR network (one pass: the paper's method)",
             **{f"dlir+{k}": f"DLIR + {k} InstanceBSpline steps" for k in steps},
             **{n: f"InstanceBSpline, {n[len('instance'):]} steps from zeros" for n in names if n.startswith("instance")}}
    seeds = rr["seeds"]
    out = ["**How far one network pass is from the optimum of its own loss** (`benchmarks/bench_registration_refinement.py`; "
           "the networks of the learning benchmark; mean end-point error in the myocardium on the test patients' "
           "consecutive-frame pairs, and its ratio to the identity's; time per pair at the load shown, "
           f"{rr['machine']['threads']} torch threads). Refined and from-zeros rows with the same steps separate what "
           "the network's start is worth from what the per-pair optimiser reaches alone:", "",
           "| registration | " + " | ".join(f"seed {sd['seed']}: EPE (px) | / identity | ms per pair (load)" for sd in seeds) + " |",
           "|---|" + "---|---|---|" * len(seeds)]
    for n in names:
        cells = []
        for sd in seeds:
            r = sd["kinds"]["step"]["rows"].get(n)
            cells.append(f"{r['epe_px']:.3f} | {r['ratio_to_identity']:.0%} | {r['wall_ms_per_pair']:.1f} "
                         f"({r['loadavg_1min']:.1f})" if r else "– | – | –")
        out.append(f"| {label.get(n, n)} | " + " | ".join(cells) + " |")
    return out + [""]


def registration_learning(rl: dict) -> list[str]:
    """Does the demo's DLIR network learn, and what does it add over the identity control? At each data seed:
    the dead-network check, the learning curve, EPE and Dice of identity, DLIR and InstanceBSpline, the targets."""
    sd0 = rl["seeds"][0]
    rc = sd0.get("registration", {})
    out = [
        f"**Registration learning on the demo profile, at {len(rl['seeds'])} data seeds** "
        f"(`benchmarks/bench_registration_learning.py`, torch threads in training: {rc.get('threads')}; "
        f"{rc.get('iterations')} iterations of batch {rc.get('batch_size')}, lr {rc.get('lr')}, alpha "
        f"{rc.get('alpha')} at {rc.get('alpha_reference_size')} px; default propagation mode "
        f"`{sd0.get('mode', 'sequential')}`). Median per-video Dice on the unseen test sequences, frames strictly "
        "between ED and ES; `InstanceBSpline` (same grid, loss and bending weight, optimised per pair) on its first "
        "sequences only; EPE = mean end-point error in the myocardium against the phantom's exact motion, "
        "consecutive frames; field variation = spread of the network's control points across pairs / their mean "
        "length (below 0.1: one field for every pair).",
        "",
        "| seed | training (s) | load at start | kept iteration | field variation val / test | EPE identity (px) "
        "| EPE DLIR (px) | DLIR / identity | EPE InstanceBSpline (px) | network alive | targets met |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for sd in rl["seeds"]:
        e, c = sd["epe"]["step"], sd["checks"]
        out.append(f"| {sd['seed']} | {sd['train_seconds']:.0f} | {sd.get('loadavg_1min_at_start', float('nan')):.1f} "
                   f"| {sd['kept_iteration']} | {sd['field_variation_val']:.2f} / {sd['field_variation_test']:.2f} "
                   f"| {e['identity']:.3f} | {e['dlir']:.3f} | {c['epe_step_ratio_to_identity']:.0%} "
                   f"| {e['instance']:.3f} | {'yes' if c['network_alive'] else '**no**'} "
                   f"| {'yes' if c['pass'] else '**no**'} |")
    out += ["", "Learning curve (test patients' consecutive-frame EPE in px, reported only; the kept weights are those "
            "of the lowest validation loss), at about every fifth of the training:", "",
            "| seed | " + " | ".join(f"iteration {r['iteration']}" for r in _fifths(sd0["curve"])) + " |",
            "|---|" + "---|" * len(_fifths(sd0["curve"]))]
    for sd in rl["seeds"]:
        pts = _fifths(sd["curve"])
        out.append(f"| {sd['seed']} | " + " | ".join(f"{r['test_step_epe_px']:.3f} (fv {r['field_variation']:.2f})"
                                                     for r in pts) + " |")
    out += ["", "| seed | registration / mode | videos | forward LV | forward MYO | bidirectional LV | bidirectional MYO |",
            "|---|---|---|---|---|---|---|"]
    for sd in rl["seeds"]:
        for name, row in sd["dice"].items():
            m = row["median"]
            out.append(f"| {sd['seed']} | {name} | {row['n_videos']} | {m['forward_LV']:.3f} | {m['forward_MYO']:.3f} "
                       f"| {m['bidirectional_LV']:.3f} | {m['bidirectional_MYO']:.3f} |")
    out += ["", "| seed | mode | forward gain LV / MYO | bidirectional gain LV / MYO | bidirectional minus "
            "InstanceBSpline LV / MYO (paired) |", "|---|---|---|---|---|"]
    for sd in rl["seeds"]:
        c = sd["checks"]
        out.append(f"| {sd['seed']} | {c['mode']} | {c['forward_LV_gain_over_identity']:+.3f} / "
                   f"{c['forward_MYO_gain_over_identity']:+.3f} | {c['bidirectional_LV_gain_over_identity']:+.3f} / "
                   f"{c['bidirectional_MYO_gain_over_identity']:+.3f} | {c['bidirectional_LV_minus_instance']:+.3f} / "
                   f"{c['bidirectional_MYO_minus_instance']:+.3f} |")
    failed = sorted({k for sd in rl["seeds"] for k, v in sd["checks"]["targets"].items() if not v})
    out += ["", "Targets (network alive; EPE below half of the identity's; forward ≥ identity + 0.03 and bidirectional "
            "≥ identity + 0.01 for LV and MYO, bidirectional within 0.01 of `InstanceBSpline`; training ≤ 300 s): "
            + ("**met** at these seeds." if rl["pass"] else "**not met** at these seeds: " + ", ".join(failed) + "."),
            ""]
    return out


def _fifths(curve: list) -> list:
    """About five points of a learning curve, the first (identity) and the last included."""
    n = len(curve)
    idx = sorted({round(i * (n - 1) / 5) for i in range(6)})
    return [curve[i] for i in idx]


def registration_alpha(ra: dict) -> list[str]:
    """The bending-weight sweep (``bench_registration_alpha.py``): InstanceBSpline EPE on training patients."""
    sd0 = ra["seeds"][0]
    rows = sd0["epe"]["step"]["sweep"]
    out = [f"**The demo's bending weight** (`benchmarks/bench_registration_alpha.py`, training patients only, "
           f"{sd0['epe']['step']['n_pairs']} consecutive-frame and {sd0['epe']['ed_es']['n_pairs']} ED/ES pairs of "
           f"{len(sd0['sequences'])} sequences at data seed(s) {', '.join(str(s['seed']) for s in ra['seeds'])}, "
           f"{sd0['size']} px): `InstanceBSpline`'s mean end-point error in the myocardium as a fraction of the "
           "identity's, for each effective weight (after the rescaling to the image size). Rule: "
           f"{ra['rule']}.", "",
           "| effective alpha | alpha at " + f"{sd0['alpha_reference_size']} px | " + " | ".join(
               f"seed {s['seed']} {k}" for s in ra["seeds"] for k in ("step", "ED/ES")) + " |",
           "|---|---|" + "---|" * (2 * len(ra["seeds"]))]
    for j, r in enumerate(rows):
        cells = []
        for s in ra["seeds"]:
            for k in ("step", "ed_es"):
                cells.append(f"{s['epe'][k]['sweep'][j]['ratio_to_identity']:.0%}")
        out.append(f"| {r['alpha_effective']:g} | {r['alpha']:g} | " + " | ".join(cells) + " |")
    ch = ra["chosen"]
    out += ["", f"Chosen: effective alpha {ch['alpha_effective']:g}, i.e. `registration.alpha: {ch['alpha']:g}` at "
            f"`alpha_reference_size: {ch['alpha_reference_size']}` (the paper's 1.0 at 512 px would be 1/16 here).",
            ""]
    return out


def registration_recipe(rr: dict) -> list[str]:
    """The training variants tried for the demo (``bench_registration_recipe.py``), judged on validation patients."""
    out = ["**Training variants tried for the demo network** (`benchmarks/bench_registration_recipe.py`; judged by "
           "the end-point error on the *validation* patients' consecutive frames, never the test patients; 2 torch "
           "threads):", "",
           "| variant | seed | settings changed | iterations | batch | training (s) | s / iteration | load | kept "
           "iteration | val EPE / identity | field variation |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rr["runs"]:
        reg = r["registration"]
        out.append(f"| {r['variant']} | {r['seed']} | {_changed(r)} | {reg.get('iterations')} | {reg.get('batch_size')} "
                   f"| {r['train_seconds']:.0f} | {r['seconds_per_iteration']:.3f} | {r['loadavg_1min_at_start']:.1f} "
                   f"| {r['kept_iteration']} | {r['kept_ratio_to_identity']:.0%} | {r['kept_field_variation']:.2f} |")
    if "chosen" in rr:
        ch = rr["chosen"]
        out += ["", f"Kept: `{ch['variant']}` ({ch['rule']}).", ""]
    return out


def reference_tuning(rt: dict) -> list[str]:
    """The references' settings (``bench_reference_tuning.py``): every candidate's step EPE on training patients."""
    ident = rt["identity"]["step"]["epe_px"]
    fixed = rt.get("instance_fixed", {})
    names = {"instance": "InstanceBSpline", "elastix": "elastix B-spline", "optical_flow": "TV-L1 optical flow"}
    out = [f"**The references' settings** (`benchmarks/bench_reference_tuning.py`, profile `{rt['profile']}`): "
           f"{rt['pairs']['step']} consecutive-frame pairs drawn (seed {rt['pair_seed']}) from the "
           f"{len(rt['tuning_patients'])} training patients, never the {len(rt['test_patients'])} test patients; mean "
           f"end-point error in the myocardium against the phantom's exact motion (identity: {ident:.3f} px). "
           f"InstanceBSpline keeps the network's bending weight (alpha {fixed.get('alpha', float('nan')):g} at "
           f"{fixed.get('alpha_reference_size')} px) and only its optimiser is swept. One torch thread, elastix one "
           f"thread; 1-minute load average {rt['load_average_1min_start']:.1f} at the start and "
           f"{rt['load_average_1min_end']:.1f} at the end (the times are wall times on a shared machine).", "",
           "| reference | setting | step EPE (px) | EPE / identity | pairs better than identity | ms per pair | chosen |",
           "|---|---|---|---|---|---|---|"]
    for method, rows in rt["candidates"].items():
        chosen = rt["chosen"].get(method, {}).get("settings")
        for r in rows:
            st = r["step"]
            setting = ", ".join(f"{k} {v}" for k, v in r["settings"].items())
            out.append(f"| {names.get(method, method)} | {setting} | {st['epe_px']:.3f} | {st['epe_px'] / ident:.0%} | "
                       f"{st['pairs_better_than_identity']:.0%} | {1e3 * st['seconds_per_pair']:.0f} | "
                       f"{'**chosen**' if r['settings'] == chosen else ''} |")
    out.append("")
    for method, c in rt["chosen"].items():
        out.append(f"- {names.get(method, method)}: " + ", ".join(f"`{k}: {v}`" for k, v in c["settings"].items())
                   + f", step EPE {c['step_epe_px']:.3f} px = {c['step_epe_px'] / ident:.0%} of the identity's "
                   + ("(beats it)" if c["beats_identity"] else "(does **not** beat it: not a yardstick)"))
    if rt.get("elastix_missing"):
        out.append("- elastix: not installed when this ran, left out")
    out.append("")
    return out


def _changed(run: dict) -> str:
    sys.path.insert(0, str(ROOT))
    from bench_registration_recipe import VARIANTS

    v = VARIANTS.get(run["variant"], {})
    return ", ".join(f"{k} {val}" for k, val in v.items()) or "none (the base recipe)"


_TARGETS = {
    "all_converged": "every default model (the four of Table 1) converged (EMA validation Dice rose < 0.01 over the "
                     "last 20 % of training, every class learned)",
    "lv_dice_ge_0.90": "Table 1 LV Dice ≥ 0.90 at ED and ES for 2D sparse, 2D dense and 3D dense",
    "dense_minus_sparse_le_0.02": "2D dense within 0.02 of 2D sparse (LV Dice, ED and ES)",
    "3d_sparse_dice_ge_0.80": "3D sparse LV, MYO and LA Dice ≥ 0.80 at ED and ES",
    "3d_dense_smoother_lv_myo": "3D dense smoother than 2D sparse (median Eq. 2, LV and MYO)",
    "3d_dense_even_odd_below_2d_sparse": "3D dense even/odd amplitude below 2D sparse's (median, LV and MYO)",
    "3d_dense_ef_mae_le_2d_sparse_plus_2": "3D dense EF MAE ≤ 2D sparse's + 2 points",
}
_COMPARISONS = {  # issue 25: the confidence-masked 3D dense against plain 3D dense
    "3d_dense_masked_mean_dice_ge_3d_dense": "confidence-masked 3D dense: mean Dice (LV, MYO, LA at ED and ES) ≥ "
                                             "3D dense's",
    "3d_dense_masked_lv_dice_ge_3d_dense": "confidence-masked 3D dense: LV Dice ≥ 3D dense's at ED and ES",
    "3d_dense_masked_ef_mae_le_3d_dense": "confidence-masked 3D dense: EF MAE ≤ 3D dense's",
    "3d_dense_masked_smoother_than_3d_dense_lv_myo": "confidence-masked 3D dense smoother than 3D dense (median "
                                                     "Eq. 2, LV and MYO)",
    "3d_dense_masked_converged": "confidence-masked 3D dense converged",
}


def _runtime_exclude(section: str) -> dict:
    """The run's speed-only keys (:data:`echo_utils.rundir.settings.RUNTIME_KEYS`) of one profile section as a
    pydantic ``exclude``, e.g. ``{"threads": True, "elastix": {"workers": True}}`` for ``registration``."""
    from echo_utils.rundir.settings import RUNTIME_KEYS

    out: dict = {}
    for key in RUNTIME_KEYS:
        first, *inner = key.split(".")
        if first != section or not inner:
            continue
        node = out
        for part in inner[:-1]:
            node = node.setdefault(part, {})
        node[inner[-1]] = True
    return out


def seed_settings(cfg) -> dict:
    """The settings ``bench_segmentation_seeds.py`` records beside its results (what the pseudo-labels and the
    nnU-Net datasets came from; the run's speed-only keys, threads, pools, elastix's workers, left out) and
    :func:`_staleness` compares."""
    return {section: getattr(cfg, section).model_dump(mode="json", exclude=_runtime_exclude(section))
            for section in ("registration", "pseudo_labels", "nnunet")}


def _staleness(d: dict) -> str:
    """A sentence when the seeds' results were measured with other registration / pseudo-label / nnU-Net settings
    than the profile now has (or do not record theirs): the reader then knows the tables are not the book's run."""
    params = ROOT.parent / "notebooks" / "params" / f"{d['profile']}.yaml"
    if not params.exists():
        return ""
    if "settings" not in d:
        return (" **These results do not record the settings they were measured with** (measured before the "
                "benchmark recorded them): the profile may have changed since.")
    from echo_utils.config import load_config

    now = seed_settings(load_config(params))
    changed = [f"{sec}.{k}" for sec, vals in now.items() for k in sorted(set(vals) | set(d["settings"].get(sec, {})))
               if vals.get(k) != d["settings"].get(sec, {}).get(k)]
    if not changed:
        return ""
    return (f" **Measured with other settings than the profile now has** ({', '.join(f'`{c}`' for c in changed)}): "
            "rerun the benchmark to compare with the book's run.")


def render_seeds(results: Path = RESULTS) -> str:
    """The results chapter's tables: the demo nnU-Nets at two seeds (``bench_segmentation_seeds.py``): per seed and
    model the scores; per conclusion whether it held at each seed and at every seed; the sentence that lists them."""
    d = json.loads((results / "bench_segmentation_seeds.json").read_text())
    mach = d["machine"]
    at_once = mach.get("trainings_at_once", 1)
    load = (f", 1-minute load average {mach['load_1min_start']:.1f} at the start and {mach['load_1min_end']:.1f} at "
            "the end" if "load_1min_start" in mach else "")
    requested = d.get("seeds_requested", d["seeds"])
    unfinished = [s for s in requested if s not in d["seeds"]]
    out = [
        f"Trained and scored by `benchmarks/bench_segmentation_seeds.py` on the `{d['profile']}` profile at seeds "
        f"{', '.join(str(s) for s in d['seeds'])} ({mach['cpus']} CPU cores, {mach['threads']} torch "
        f"thread(s) per training, {at_once} training(s) at once{load}). A model missing from a seed was not trained "
        "there within the session's budget."
        + (f" Seed(s) {', '.join(map(str, unfinished))} were requested but not finished." if unfinished else "")
        + _staleness(d),
        "",
        "| seed | model | verdict | epochs | EMA val. Dice LV / MYO / LA | train s | LV Dice ED / ES | MYO Dice ED / ES | LA Dice ED / ES | "
        "EF MAE (points) | EF missing | median Eq. 2 LV / MYO / LA | median even/odd amplitude LV / MYO (px) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def pair(dc, st):
        keys = (f"ED {st}", f"ES {st}")
        return " / ".join(f"{dc[k]:.3f}" for k in keys) if all(k in dc for k in keys) else "–"

    for res in d["results"]:
        for name, m in res["models"].items():
            train_s = f"{m['train_s']:.0f}" if "train_s" in m else "–"
            ema = m.get("ema_per_class", {})
            ema_text = " / ".join(f"{ema[c]:.2f}" for c in ("LV cavity", "LV myocardium", "left atrium")
                                  if c in ema) or "–"
            if "dice" not in m:
                out.append(f"| {res['seed']} | {name} | {m['verdict']} | {m['epochs']} | {ema_text} | {train_s} "
                           "| not predicted | | | | | | |")
                continue
            dc, sm, eo = m["dice"], m["median_smoothness"], m.get("median_even_odd", {})
            eo_text = f"{eo['LV']:.2f} / {eo['MYO']:.2f}" if {"LV", "MYO"} <= set(eo) else "–"
            sm_text = " / ".join(f"{sm[st]:.3g}" for st in ("LV", "MYO", "LA") if st in sm)
            out.append(f"| {res['seed']} | {name} | {m['verdict']} | {m['epochs']} | {ema_text} | {train_s} "
                       f"| {pair(dc, 'LV')} "
                       f"| {pair(dc, 'MYO')} | {pair(dc, 'LA')} | {m['ef_mae']:.1f} | {m['ef_missing']} | {sm_text} "
                       f"| {eo_text} |")
    for res in d["results"]:
        for model, rec in (res.get("masking") or {}).items():
            out += ["", f"Seed {res['seed']}, {model}: pseudo-labelled pixels with confidence < {rec['threshold']:g} "
                    f"ignored (threshold: {rec['source']}"
                    + (f"; validation F1 {rec['val_f1']:.3f}, precision {rec['val_precision']:.3f}, recall "
                       f"{rec['val_recall']:.3f}" if "val_f1" in rec else "")
                    + f"): {100 * rec['ignored_fraction_of_pseudo']:.2f} % of the pseudo-labelled pixels, "
                    f"{100 * rec['ignored_fraction_of_all']:.2f} % of all training voxels."]
    word = {True: "held", False: "**did not hold**", None: "not measured (a model missing)"}
    at_every = {**d.get("held_at_every_seed", {}), **d.get("comparisons_held_at_every_seed", {})}
    rows = [(k, label, "targets") for k, label in _TARGETS.items()]
    rows += [(k, label, "comparisons") for k, label in _COMPARISONS.items()
             if any(k in r.get("comparisons", {}) for r in d["results"])]
    out += ["", "| conclusion | " + " | ".join(f"seed {r['seed']}" for r in d["results"]) + " | at every seed |",
            "|---|" + "---|" * (len(d["results"]) + 1)]
    for key, label, section in rows:
        out.append(f"| {label} | " + " | ".join(word[r.get(section, {}).get(key)] for r in d["results"])
                   + f" | {word[at_every.get(key)]} |")
    orders = d.get("fig3_ordering_held_at_every_seed") or {}
    if orders:
        out += ["", "The paper's Fig. 3 ordering 3D dense < 2D dense < 2D sparse (median Eq. 2), at every seed: "
                + ", ".join(f"{st} {'held' if ok else '**did not hold**'}" for st, ok in orders.items()) + "."]
    if len(d["results"]) > 1:
        def count(key, section):
            return sum(bool(r.get(section, {}).get(key)) for r in d["results"])

        n = len(d["results"])
        every = [label for key, label, _ in rows if at_every.get(key) is True]
        some = [label for key, label, sec in rows if at_every.get(key) is False and count(key, sec)]
        none = [label for key, label, sec in rows if at_every.get(key) is False and not count(key, sec)]
        out += ["", f"**Held at all {n} seeds:** " + ("; ".join(every) or "none") + ". **At some seeds only:** "
                + ("; ".join(some) or "none") + ". **At none:** " + ("; ".join(none) or "none") + "."]
    timing = [r["training"] for r in d["results"] if "training" in r]
    if timing:
        out += ["", "Training wall time per seed (the jobs' own times added up, against the wall time they took): "
                + "; ".join(f"{t['jobs']} trainings on backend {t['backend']}: {t['sum_of_job_s']:.0f} s of jobs in "
                            f"{t['wall_s']:.0f} s" for t in timing) + "."]
    loads = [r for r in d["results"] if "load_1min_start" in r]
    if loads:
        out += ["", "1-minute load average per seed, at its start and end: "
                + "; ".join(f"seed {r['seed']} {r['load_1min_start']:.1f} → {r['load_1min_end']:.1f}"
                            + (f" ({r['wall_s'] / 60:.0f} min)" if "wall_s" in r else "") for r in loads) + "."]
    return "\n".join(out) + "\n"


def main() -> int:
    OUT.write_text(render())
    SEEDS_OUT.write_text(render_seeds())
    print(f"written {OUT} and {SEEDS_OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
