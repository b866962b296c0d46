"""Do the segmentation conclusions survive a second seed? The demo's four nnU-Nets trained at two seeds.

What is measured, per nnU-Net seed (``nnunet.seed``; the cohort, the registration and the pseudo-labels are those
of one run of notebooks 01-03 and the same for every seed):

* the training of each model: epochs, early stop, EMA validation pseudo Dice (mean and per class), convergence
  verdict (the rule of :func:`echo_utils.segmentation.trainer.plateaued`, every class learned), training time (the
  sum of nnU-Net's epoch times);
* Table 1: LV cavity, myocardium and left atrium Dice at ED and ES on the test sequences, per model;
* Table 2: EF mean absolute error (percentage points) and the number of implausible EFs left out, per model;
* Fig. 3: median smoothness (Eq. 2) and median even/odd amplitude (:func:`echo_utils.report.smoothness.
  even_odd_fit`) per model and structure, whether the paper's ordering 3D dense < 2D dense < 2D sparse holds, and
  whether 3D dense < 2D sparse (the paper's main temporal claim);
* the targets of issue 22: every model converged; LV Dice at ED and ES >= 0.90 for 2D sparse, 2D dense and 3D
  dense; |2D dense - 2D sparse| <= 0.02; 3D sparse LV, MYO and LA Dice >= 0.80; 3D dense smoother than 2D sparse
  for LV and MYO, with a lower even/odd amplitude; 3D dense EF MAE <= 2D sparse's + 2 points.

The models of a seed train through the study's jobs (:func:`echo_utils.compute.nnunet_training_jobs`) on the
profile's backend: with the demo's ``compute.local_kinds`` two at once, one torch thread each.

Usage (long: four trainings per seed; run it with ``nice`` on a shared machine)::

    .venv/bin/python benchmarks/bench_segmentation_seeds.py [--params notebooks/params/demo.yaml]
        [--base-run runs/demo] [--seeds 0 1]

``--base-run`` must hold notebooks 01-03 of that profile (they are run there first if its pseudo-labels are
missing). The profile's own ``nnunet.seed`` trains into the base run (notebook 04 there reuses those models), every
other seed into ``<base-run>-nnunet-seed<S>`` (``data``, ``registration`` and ``pseudo_labels`` linked to the base
run); a rerun reuses finished models. Writes ``benchmarks/results/bench_segmentation_seeds.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from echo_utils import compute, segmentation  # noqa: E402
from echo_utils.data import study  # noqa: E402
from echo_utils.config import load_config # noqa: E402
from echo_utils.rundir import RunPaths
from echo_utils.report import smoothness, tables  # noqa: E402

SHARED = ("data", "registration", "pseudo_labels")


def _ensure_base(params: Path, base: Path, cfg) -> None:
    if (base / "pseudo_labels" / cfg.registration.method).is_dir():
        return
    print(f"running notebooks 01-03 into {base} first", flush=True)
    subprocess.run([sys.executable, "-m", "echo_utils.run", "--params", str(params), "--run-dir", str(base),
                    "--only", "01", "02", "03"], check=True, cwd=ROOT)


def _seed_run(base: Path, seed: int, profile_seed: int) -> Path:
    if seed == profile_seed:  # the profile's own models: notebook 04 in the base run reuses them
        return base
    run = base.parent / f"{base.name}-nnunet-seed{seed}"
    run.mkdir(parents=True, exist_ok=True)
    for name in SHARED:
        link = run / name
        if not link.exists():
            link.symlink_to((base / name).resolve(), target_is_directory=True)
    return run


def run_seed(params: Path, base: Path, seed: int, device: str = "cpu", *, train: bool = True) -> dict:
    """Train and predict the four models with ``nnunet.seed = seed``; the scores and verdicts as a dict.

    ``train=False`` only scores what exists: a model without predictions is reported with the progress of its
    training log (``"finished": false``) and the targets that need it are ``None``.
    """
    cfg = load_config(params, overrides={"nnunet": {"seed": seed}})
    nn = cfg.nnunet
    paths = RunPaths(_seed_run(base, seed, load_config(params).nnunet.seed))
    tr, val, test = (study.load_study(cfg, paths, s) for s in ("train", "val", "test"))
    if train:
        dense = segmentation.dense_pseudo_labels(cfg, paths, tr + val)
        for model in nn.models:
            segmentation.export_dataset(cfg, paths, model, tr, val, test, dense)
            segmentation.plan_and_preprocess(cfg, paths, model)
        # the profile's backend: with compute.local_kinds, local processes, compute.local.max_parallel at once
        t0 = time.perf_counter()
        report = compute.run_jobs(compute.nnunet_training_jobs(cfg, paths, device), cfg, progress=False)
        wall = time.perf_counter() - t0
        compute.run_jobs([j for j in compute.nnunet_prediction_jobs(cfg, paths, device) if j.name.endswith("-test")],
                         cfg, progress=False)
        ran = [r["seconds"] for r in report.rows if not r["skipped"] and r["seconds"]]
    preds, missing = tables.load_predictions(paths, nn.models, test)
    done = [m for m in nn.models if m in preds and not missing.get(m)]
    logged = [m for m in nn.models if (segmentation.train.fold_folder(cfg, paths, m, nn.folds[0])
                                       / "echo_training_log.json").is_file()]
    logs = pd.concat([segmentation.training_log(cfg, paths, m, f) for m in logged for f in nn.folds])
    verdicts = segmentation.convergence(logs, nn.epochs, nn.plateau_min_class_dice)
    out = {"seed": seed, "models": {}}
    if train and ran:
        out["training"] = {"backend": report.backend, "jobs": len(ran), "sum_of_job_s": round(sum(ran), 1),
                           "wall_s": round(wall, 1), "load_1min_end": os.getloadavg()[0]}
    for model in logged:
        v, g = verdicts.loc[(model, nn.folds[0])], logs[logs.model == model]
        out["models"][model] = {
            "finished": model in done, "epochs": int(v["epochs"]), "stopped_early": bool(v["stopped early"]),
            "ema_dice": round(float(v["EMA Dice"]), 4), "verdict": v["verdict"],
            "ema_per_class": {k[len("EMA "):]: round(float(v[k]), 4) for k in v.index
                              if k.startswith("EMA ") and k != "EMA Dice"},
            "train_s": round(float(g["seconds"].sum()), 1),
        }
    if not done:
        return out
    preds = {m: preds[m] for m in done}
    mean, _ = tables.summarise_table1(tables.segmentation_scores(preds, test))
    reference, auto = tables.clinical_indices(test, preds)
    t2 = tables.table2(auto, reference)
    sm = smoothness.smoothness_table(preds, test, include_reference=False)
    med = sm.groupby(["structure", "model"])["smoothness"].median().unstack("model")
    eo = smoothness.even_odd_summary(smoothness.even_odd_table(preds, test, include_reference=False))
    for model in done:
        out["models"][model].update({
            "dice": {f"{ph} {st}": round(float(mean.loc[model, (ph, st, "dice")]), 4)
                     for ph in ("ED", "ES") for st in ("LV", "MYO", "LA")},
            "ef_mae": round(float(t2.loc[model, ("EF", "mae")]), 2),
            "ef_missing": int(t2.loc[model, ("missing", "EF")]),
            "median_smoothness": {st: float(med.loc[st, model]) for st in med.index},
            "median_smoothness_without_even_odd": {st: float(eo.loc[(st, model), "smoothness_without_even_odd"])
                                                   for st in med.index},
            "median_even_odd": {st: round(float(eo.loc[(st, model), "even_odd"]), 3) for st in med.index},
        })
    m = out["models"]
    has = set(done).__contains__
    if {"3d_dense", "2d_dense", "2d_sparse"} <= set(done):
        order = smoothness.median_ordering(sm)
        out["fig3_ordering_holds"] = {st: bool(order.loc[st, "holds"]) for st in order.index}
        out["2d_dense_between"] = {
            st: bool(med.loc[st, "3d_dense"] < med.loc[st, "2d_dense"] < med.loc[st, "2d_sparse"]) for st in med.index}
    if has("3d_dense") and has("2d_sparse"):
        out["3d_dense_smoother_than_2d_sparse"] = {st: bool(med.loc[st, "3d_dense"] < med.loc[st, "2d_sparse"])
                                                   for st in med.index}
    lv_models = ("2d_sparse", "2d_dense", "3d_dense")
    out["targets"] = {
        "all_converged": all(m.get(k, {}).get("verdict") == "converged" for k in nn.models)
        if len(done) == len(nn.models) else None,
        "lv_dice_ge_0.90": all(m[k]["dice"][f"{ph} LV"] >= 0.90 for k in lv_models for ph in ("ED", "ES"))
        if all(map(has, lv_models)) else None,
        "dense_minus_sparse_le_0.02": all(abs(m["2d_dense"]["dice"][f"{ph} LV"] - m["2d_sparse"]["dice"][f"{ph} LV"])
                                          <= 0.02 for ph in ("ED", "ES"))
        if has("2d_dense") and has("2d_sparse") else None,
        "3d_sparse_dice_ge_0.80": all(m["3d_sparse"]["dice"][f"{ph} {st}"] >= 0.80 for ph in ("ED", "ES")
                                      for st in ("LV", "MYO", "LA")) if has("3d_sparse") else None,
        "3d_dense_smoother_lv_myo": all(out["3d_dense_smoother_than_2d_sparse"][st] for st in ("LV", "MYO"))
        if "3d_dense_smoother_than_2d_sparse" in out else None,
        "3d_dense_even_odd_below_2d_sparse": all(m["3d_dense"]["median_even_odd"][st] < m["2d_sparse"]["median_even_odd"][st]
                                                 for st in ("LV", "MYO")) if has("3d_dense") and has("2d_sparse") else None,
        "3d_dense_ef_mae_le_2d_sparse_plus_2": bool(m["3d_dense"]["ef_mae"] <= m["2d_sparse"]["ef_mae"] + 2)
        if has("3d_dense") and has("2d_sparse") else None,
    }
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="notebooks/params/demo.yaml")
    ap.add_argument("--base-run", default=None, help="run directory of notebooks 01-03 (default runs/<profile>)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--score-only", action="store_true", help="train nothing: score the models that are finished")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_segmentation_seeds.json"))
    args = ap.parse_args(argv)
    params = (ROOT / args.params) if not Path(args.params).is_absolute() else Path(args.params)
    cfg = load_config(params)
    base = Path(args.base_run).resolve() if args.base_run else ROOT / "runs" / cfg.name
    _ensure_base(params, base, cfg)
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    results = [run_seed(params, base, s, train=not args.score_only) for s in args.seeds]
    report = {
        "profile": cfg.name, "seeds": args.seeds, "results": results,
        "held_at_every_seed": {k: (all(r["targets"][k] for r in results)
                                   if all(r.get("targets", {}).get(k) is not None for r in results) else None)
                               for k in results[0].get("targets", {})},
        "fig3_ordering_held_at_every_seed": {st: all(r["fig3_ordering_holds"][st] for r in results)
                                             for st in results[0].get("fig3_ordering_holds", {})
                                             if all("fig3_ordering_holds" in r for r in results)},
        "wall_s": round(time.perf_counter() - t0, 1),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "threads": os.environ.get("ECHO_NNUNET_THREADS", cfg.nnunet.threads),
                    "trainings_at_once": cfg.compute.local.max_parallel
                    if cfg.compute.backend == "local" or "nnunet_training" in cfg.compute.local_kinds else 1,
                    "load_1min_start": load0, "load_1min_end": os.getloadavg()[0]},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    for r in results:
        print(f"seed {r['seed']}:")
        for model, v in r["models"].items():
            dice = ", ".join(f"{k} {x:.3f}" for k, x in v.get("dice", {}).items())
            print(f"  {model:>9}: {v['verdict']:>15} after {v['epochs']} epochs ({v['train_s']:.0f} s training)"
                  + (f"; Dice {dice}; EF MAE {v['ef_mae']}" if v["finished"] else "; not finished"))
        print(f"  targets: {r.get('targets')}")
    print(f"held at every seed: {report['held_at_every_seed']}; wrote {args.out}")
    return report


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
