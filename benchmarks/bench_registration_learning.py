"""Does the demo's DLIR network register? Pseudo-label Dice and end-point error against the identity control and
InstanceBSpline, on unseen phantom patients, for several data seeds (issue 12's acceptance check).

    python benchmarks/bench_registration_learning.py                  # data seeds 0 and 1, demo profile
    python benchmarks/bench_registration_learning.py --seeds 0 --work /tmp/bench-reg

For each data seed: the demo cohort (its ``data`` settings with ``data.seed`` overridden), the DLIR network trained
with the profile's ``registration`` settings (cached under ``--work``), then on the test patients, frames strictly
between ED and ES: the median per-video Dice (LV cavity, myocardium ring) of the forward and bidirectional
pseudo-labels of identity, DLIR and InstanceBSpline in ``sequential`` and ``composed`` propagation, and the mean
end-point error in the myocardium (:mod:`echo_utils.registration.evidence`) on consecutive-frame and ED/ES pairs.
Writes ``benchmarks/results/registration_learning.json``.  Targets (issue 12), for every seed:

* DLIR forward Dice >= identity forward + 0.03 (LV and MYO);
* DLIR bidirectional Dice >= identity bidirectional + 0.01 and within 0.01 of InstanceBSpline (LV and MYO);
* DLIR end-point error on consecutive-frame pairs < half the identity's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * np.logical_and(a, b).sum() / s) if s else 1.0


def video_dice(seqs, reg, mode: str) -> list[dict]:
    """Per-video mean Dice over the frames strictly between ED and ES, forward and bidirectional."""
    from echo_utils.pseudolabels import pseudo_labels

    rows = []
    for seq in seqs:
        pl = pseudo_labels(seq, reg, mode=mode)
        step = 1 if seq.es > seq.ed else -1
        frames = range(seq.ed + step, seq.es, step)
        row = {"key": seq.key}
        for kind in ("forward", "bidirectional"):
            for k, name in ((1, "LV"), (2, "MYO")):
                row[f"{kind}_{name}"] = float(np.mean([dice(pl[kind][t] == k, seq.dense[t] == k) for t in frames]))
        rows.append(row)
    return rows


def run_seed(seed: int, params: Path, work: Path, instance_sequences: int | None) -> dict:
    from echo_utils.data.study import load_study as load_split
    from echo_utils.data.study import study_root
    from echo_utils.registration import IdentityRegistration, registration_from_config
    from echo_utils.registration.evidence import endpoint_error, phantom_pairs
    from echo_utils.rundir import load_study

    from echo_utils.config import config_hash, load_config

    overrides = {"data": {"seed": seed}}
    probe = load_config(params, overrides)  # the run folder is keyed by what matters here: data and registration
    key = config_hash(probe.data.model_dump(mode="json"), probe.registration.model_dump(mode="json"))
    cfg, paths = load_study(params, overrides, work / f"seed{seed}-{key}", "cpu", create=True)
    train, val, test = (load_split(cfg, paths, s) for s in ("train", "val", "test"))
    root = study_root(cfg, paths, generate=False)
    rc = cfg.registration
    t0 = time.perf_counter()
    dlir = registration_from_config("dlir", rc, train=train, val=val, run_dir=paths.registration, device="cpu")
    t_train = time.perf_counter() - t0
    regs = {"identity": IdentityRegistration(), "dlir": dlir, "instance": registration_from_config("instance", rc)}
    inst_seqs = test if instance_sequences is None else test[:instance_sequences]
    out = {"seed": seed, "n_train": len(train), "n_test": len(test), "train_seconds": round(t_train, 1),
           "kept_iteration": getattr(dlir, "kept_iteration", None), "dice": {}, "epe": {}}
    for name, reg in regs.items():
        seqs = inst_seqs if name == "instance" else test
        for mode in (("sequential",) if name == "identity" else ("sequential", "composed")):
            t0 = time.perf_counter()
            rows = video_dice(seqs, reg, mode)
            med = {k: float(np.median([r[k] for r in rows])) for k in rows[0] if k != "key"}
            out["dice"][f"{name}/{mode}"] = {"n_videos": len(rows), "median": med, "videos": rows,
                                             "seconds": round(time.perf_counter() - t0, 1)}
            print(f"seed {seed} {name:9s} {mode:10s} " + " ".join(f"{k} {v:.3f}" for k, v in med.items()), flush=True)
    for kind in ("step", "ed_es"):
        pairs = phantom_pairs(root, test, kind)
        table = endpoint_error({k: v for k, v in regs.items() if k != "instance"}, pairs)
        ipairs = phantom_pairs(root, inst_seqs, kind)
        table = pd.concat([table, endpoint_error({"instance": regs["instance"]}, ipairs)], ignore_index=True)
        out["epe"][kind] = {k: float(v) for k, v in table.groupby("registration").epe_px.mean().items()}
        print(f"seed {seed} EPE {kind}: " + ", ".join(f"{k} {v:.3f} px" for k, v in out["epe"][kind].items()), flush=True)
    out["checks"] = checks(out)
    return out


def checks(r: dict) -> dict:
    d = {k: v["median"] for k, v in r["dice"].items()}
    ident, net, inst = d["identity/sequential"], d["dlir/sequential"], d["instance/sequential"]
    c = {}
    for s in ("LV", "MYO"):
        c[f"forward_{s}_gain_over_identity"] = net[f"forward_{s}"] - ident[f"forward_{s}"]
        c[f"bidirectional_{s}_gain_over_identity"] = net[f"bidirectional_{s}"] - ident[f"bidirectional_{s}"]
        c[f"bidirectional_{s}_minus_instance"] = net[f"bidirectional_{s}"] - inst[f"bidirectional_{s}"]
    e = r["epe"]["step"]
    c["epe_step_ratio_to_identity"] = e["dlir"] / e["identity"]
    c["pass"] = bool(all(c[f"forward_{s}_gain_over_identity"] >= 0.03 for s in ("LV", "MYO"))
                     and all(c[f"bidirectional_{s}_gain_over_identity"] >= 0.01 for s in ("LV", "MYO"))
                     and all(c[f"bidirectional_{s}_minus_instance"] >= -0.01 for s in ("LV", "MYO"))
                     and c["epe_step_ratio_to_identity"] < 0.5)
    return c


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--params", type=Path, default=ROOT / "notebooks" / "params" / "demo.yaml")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "echo-bench-registration")
    ap.add_argument("--instance-sequences", type=int, default=None, help="limit InstanceBSpline (slow) to N videos")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = [run_seed(s, args.params, args.work, args.instance_sequences) for s in args.seeds]
    RESULTS.mkdir(exist_ok=True)
    out = {"profile": str(args.params.relative_to(ROOT)) if args.params.is_relative_to(ROOT) else str(args.params),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                       "python": sys.version.split()[0], "torch": torch.__version__},
           "seeds": results, "pass": all(r["checks"]["pass"] for r in results)}
    path = RESULTS / ("registration_learning.json" if args.seeds == [0, 1] else
                      f"registration_learning_seeds{'_'.join(map(str, args.seeds))}.json")
    path.write_text(json.dumps(out, indent=1))
    for r in results:
        print(f"seed {r['seed']}: " + ", ".join(f"{k} {v:+.3f}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in r["checks"].items()))
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
