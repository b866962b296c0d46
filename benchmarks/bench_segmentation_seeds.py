"""Do the segmentation conclusions survive a second seed? The demo's four nnU-Nets and 3d_dense_masked at two seeds.

What is measured, per nnU-Net seed (``nnunet.seed``; the cohort, the registration, the pseudo-labels and their
confidence maps are those of one run of notebooks 01-03, computed once and shared by every seed). The models are the
profile's ``nnunet.models`` plus the optional ones (``labels.OPTIONAL_MODELS``: ``3d_dense_masked``, 3D dense with
its low-confidence pseudo-labelled pixels ignored; ``--models`` to choose):

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
  for LV and MYO, with a lower even/odd amplitude; 3D dense EF MAE <= 2D sparse's + 2 points;
* issue 25: the confidence-masked 3D dense against plain 3D dense (Dice, EF MAE, median Eq. 2, even/odd, verdict),
  its threshold (chosen on the validation patients) and the share of pseudo-labelled pixels it ignores;
* the 1-minute load average at the start and the end of each seed (timings on a shared machine).

The JSON is rewritten after every seed, so a seed that could not finish leaves the earlier ones.

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
from echo_utils.config import load_config  # noqa: E402
from echo_utils.labels import MODELS, OPTIONAL_MODELS  # noqa: E402
from echo_utils.report import smoothness, tables  # noqa: E402
from echo_utils.rundir import RunPaths  # noqa: E402
from echo_utils.study import Study, stages  # noqa: E402
from summary import seed_settings  # noqa: E402 - benchmarks/summary.py, beside this script: one record, one comparison

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


def default_models(params: Path) -> list[str]:
    """The profile's ``nnunet.models`` and the optional models (``3d_dense_masked``)."""
    return [*load_config(params).nnunet.models, *(m for m in OPTIONAL_MODELS if m not in load_config(params).nnunet.models)]


def run_seed(params: Path, base: Path, seed: int, device: str = "cpu", *, train: bool = True,
             models: list[str] | None = None) -> dict:
    """Train and predict ``models`` (default :func:`default_models`) with ``nnunet.seed = seed``; the scores,
    verdicts and comparisons as a dict.

    ``train=False`` only scores what exists: a model without predictions is reported with the progress of its
    training log (``"finished": false``) and the targets that need it are ``None``.
    """
    load0, t_seed = os.getloadavg()[0], time.perf_counter()
    cfg = load_config(params, overrides={"nnunet": {"seed": seed, "models": list(models or default_models(params))}})
    nn = cfg.nnunet
    paths = RunPaths(_seed_run(base, seed, load_config(params).nnunet.seed))
    study = Study.of(cfg, paths)  # the seed run's cohort (its data/ is the base run's)
    run = stages.nnunet_run(study)
    test = study.sequences("test")
    if train:
        stages.nnunet_datasets(study)  # export, plan and preprocess every model (cached), as the nnunet_prepare job
        # the profile's backend: with compute.local_kinds, local processes, compute.local.max_parallel at once
        t0 = time.perf_counter()
        report = compute.run_jobs(compute.nnunet_training_jobs(study, device), cfg, progress=False)
        wall = time.perf_counter() - t0
        compute.run_jobs([j for j in compute.nnunet_prediction_jobs(study, device) if j.name.endswith("-test")],
                         cfg, progress=False)
        ran = [r["seconds"] for r in report.rows if not r["skipped"] and r["seconds"]]
    preds, missing = tables.load_predictions(paths, nn.models, test)
    done = [m for m in nn.models if m in preds and not missing.get(m)]
    logged = [m for m in nn.models if (segmentation.train.fold_folder(run, m, nn.folds[0])
                                       / "echo_training_log.json").is_file()]
    logs = pd.concat([segmentation.training_log(run, m, f) for m in logged for f in nn.folds])
    verdicts = segmentation.convergence(logs, segmentation.epoch_budgets(nn), nn.plateau_min_class_dice)
    out = {"seed": seed, "models": {}, "load_1min_start": load0}
    masked = [m for m in nn.models if segmentation.SPECS[m].masked]
    exported = [m for m in masked if segmentation.export.export_marker(run, m).is_file()]
    if exported:
        out["masking"] = {m: segmentation.dataset_masking(run, m) for m in exported}
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
        out.update(load_1min_end=os.getloadavg()[0], wall_s=round(time.perf_counter() - t_seed, 1))
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
    if {"3d_dense", "2d_dense", "2d_sparse"} <= set(done):
        order = smoothness.median_ordering(sm)
        out["fig3_ordering_holds"] = {st: bool(order.loc[st, "holds"]) for st in order.index}
    conclusions(out)
    out.update(load_1min_end=os.getloadavg()[0], wall_s=round(time.perf_counter() - t_seed, 1))
    return out


def conclusions(out: dict) -> dict:
    """Set the conclusions of one seed's result ``out`` from its per-model numbers alone (``out["models"]``), so
    that they can be recomputed from the JSON (``--recompute-conclusions``): ``targets`` (issue 22, over the default
    models ``labels.MODELS``; the optional models do not count in "every model converged"), ``comparisons`` and
    ``<masked>_minus_3d_dense`` (issue 25), ``3d_dense_smoother_than_2d_sparse`` and ``2d_dense_between``."""
    m = out["models"]
    done = [k for k, v in m.items() if v.get("finished") and "dice" in v]
    has = set(done).__contains__
    med = {k: m[k]["median_smoothness"] for k in done}
    structures = list(next(iter(med.values()), {}))
    if {"3d_dense", "2d_dense", "2d_sparse"} <= set(done):
        out["2d_dense_between"] = {st: bool(med["3d_dense"][st] < med["2d_dense"][st] < med["2d_sparse"][st])
                                   for st in structures}
    if has("3d_dense") and has("2d_sparse"):
        out["3d_dense_smoother_than_2d_sparse"] = {st: bool(med["3d_dense"][st] < med["2d_sparse"][st])
                                                   for st in structures}
    defaults = [k for k in m if k in MODELS]
    lv_models = ("2d_sparse", "2d_dense", "3d_dense")
    out["targets"] = {
        "all_converged": all(m[k].get("verdict") == "converged" for k in defaults)
        if defaults and all(map(has, defaults)) else None,
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
    out["comparisons"] = {}
    for mk in [k for k in m if k in OPTIONAL_MODELS]:  # issue 25: does ignoring the doubtful pseudo-labels help?
        if not (has(mk) and has("3d_dense")):
            continue
        a, b = m[mk], m["3d_dense"]
        out[f"{mk}_minus_3d_dense"] = {
            "dice": {k: round(a["dice"][k] - b["dice"][k], 4) for k in a["dice"]},
            "ef_mae": round(a["ef_mae"] - b["ef_mae"], 2),
            "median_smoothness_ratio": {st: round(a["median_smoothness"][st] / b["median_smoothness"][st], 4)
                                        for st in a["median_smoothness"]},
            "median_even_odd": {st: round(a["median_even_odd"][st] - b["median_even_odd"][st], 3)
                                for st in a["median_even_odd"]},
        }
        out["comparisons"].update({
            f"{mk}_mean_dice_ge_3d_dense": bool(np.mean(list(a["dice"].values())) >= np.mean(list(b["dice"].values()))),
            f"{mk}_lv_dice_ge_3d_dense": all(a["dice"][f"{ph} LV"] >= b["dice"][f"{ph} LV"] for ph in ("ED", "ES")),
            f"{mk}_ef_mae_le_3d_dense": bool(a["ef_mae"] <= b["ef_mae"]),
            f"{mk}_smoother_than_3d_dense_lv_myo": all(a["median_smoothness"][st] < b["median_smoothness"][st]
                                                      for st in ("LV", "MYO")),
            f"{mk}_converged": a["verdict"] == "converged",
        })
    return out


def held(results: list[dict], section: str) -> dict:
    """``{conclusion: True / False / None}`` over the seeds: True when it held at every seed, None when some seed
    did not measure it."""
    keys = list(dict.fromkeys(k for r in results for k in r.get(section, {})))
    return {k: (all(r[section][k] for r in results)
                if all(r.get(section, {}).get(k) is not None for r in results) else None) for k in keys}


def _write(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, out)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="notebooks/params/demo.yaml")
    ap.add_argument("--base-run", default=None, help="run directory of notebooks 01-03 (default runs/<profile>)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--models", nargs="+", default=None,
                    help="models to train (default: the profile's nnunet.models and the optional 3d_dense_masked)")
    ap.add_argument("--score-only", action="store_true", help="train nothing: score the models that are finished")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bench_segmentation_seeds.json"))
    ap.add_argument("--recompute-conclusions", action="store_true",
                    help="train and score nothing: recompute the conclusions of --out from its per-model numbers")
    args = ap.parse_args(argv)
    if args.recompute_conclusions:
        report = json.loads(Path(args.out).read_text())
        for r in report["results"]:
            conclusions(r)
        report["held_at_every_seed"] = held(report["results"], "targets")
        report["comparisons_held_at_every_seed"] = held(report["results"], "comparisons")
        _write(report, Path(args.out))
        print(f"held at every seed: {report['held_at_every_seed']}, {report['comparisons_held_at_every_seed']}")
        return report
    params = (ROOT / args.params) if not Path(args.params).is_absolute() else Path(args.params)
    cfg = load_config(params)
    base = Path(args.base_run).resolve() if args.base_run else ROOT / "runs" / cfg.name
    _ensure_base(params, base, cfg)
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    models = args.models or default_models(params)
    results = []
    for s in args.seeds:  # the JSON is rewritten after every seed
        results.append(run_seed(params, base, s, train=not args.score_only, models=models))
        report = {
            "profile": cfg.name, "seeds": [r["seed"] for r in results], "seeds_requested": args.seeds,
            "models": models, "results": results,
            # what the pseudo-labels and the 3D datasets came from: a result is stale when these differ from the profile
            "settings": seed_settings(cfg),
            "held_at_every_seed": held(results, "targets"),
            "comparisons_held_at_every_seed": held(results, "comparisons"),
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
        _write(report, Path(args.out))
    for r in results:
        print(f"seed {r['seed']}:")
        for model, v in r["models"].items():
            dice = ", ".join(f"{k} {x:.3f}" for k, x in v.get("dice", {}).items())
            print(f"  {model:>15}: {v['verdict']:>15} after {v['epochs']} epochs ({v['train_s']:.0f} s training)"
                  + (f"; Dice {dice}; EF MAE {v['ef_mae']}" if v["finished"] else "; not finished"))
        print(f"  targets: {r.get('targets')}")
        print(f"  comparisons: {r.get('comparisons')}; masking: {r.get('masking')}")
    print(f"held at every seed: {report['held_at_every_seed']}, {report['comparisons_held_at_every_seed']}; "
          f"wrote {args.out}")
    return report


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
