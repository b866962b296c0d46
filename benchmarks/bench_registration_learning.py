"""Does the demo's DLIR network register? Pseudo-label Dice and end-point error against the identity control and
InstanceBSpline at the same bending weight, on unseen phantom patients, for several data seeds (issues 12, 21).

    python benchmarks/bench_registration_learning.py                  # data seeds 0 and 1, demo profile
    python benchmarks/bench_registration_learning.py --seeds 0 --work /tmp/bench-reg

For each data seed: the demo cohort (its ``data`` settings with ``data.seed`` overridden), the DLIR network trained
with the profile's ``registration`` settings (cached under ``--work``; trained with a monitor that logs, at every
validation, the end-point error on the validation and on the test patients' consecutive-frame pairs: the learning
curve, which only reports, the kept weights being chosen by the validation loss), then on the test patients,
frames strictly between ED and ES: the median per-video Dice (LV cavity, myocardium ring) of the forward and
bidirectional pseudo-labels of identity, DLIR (``sequential`` and ``composed`` propagation) and InstanceBSpline
(the profile's mode, on its first ``--instance-sequences`` videos), and the mean end-point error in the myocardium
(:mod:`echo_utils.registration.evidence`) on consecutive-frame and ED/ES pairs.  The dead-network check
(:func:`echo_utils.registration.evidence.network_check`): the field variation of the kept network across the
validation pairs and across the test pairs, and its EPE against the identity's.
Writes ``benchmarks/results/registration_learning.json``; a trial of other settings (``--set`` with ``--variant
NAME``) writes ``benchmarks/results/registration_variants/NAME.json`` instead.  Targets, for every seed, in the profile's default
propagation mode (``pseudo_labels.mode``):

* the network is alive (field variation >= ``FIELD_VARIATION_MIN`` on validation and test pairs, EPE below identity);
* DLIR end-point error on consecutive-frame pairs < half the identity's;
* DLIR forward Dice >= identity forward + 0.03 (LV and MYO);
* DLIR bidirectional Dice >= identity bidirectional + 0.01 (LV and MYO), and within 0.01 of InstanceBSpline (paired
  on the videos InstanceBSpline registered);
* training <= 300 s (wall time of the training loop, as in the demo book).

The exit status is non-zero when a target is not met ("targets_met": false in the JSON).
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
VARIANTS = RESULTS / "registration_variants"  # trials of other settings (--variant): what did not (or did) help
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


def seed_study(seed: int, params: Path, work: Path, sets=()):
    """The study of data seed ``seed`` (``data.seed`` and ``sets`` over the profile) in its own run folder under
    ``work``, keyed by what the registration depends on (the data and registration settings): every benchmark of
    the registration that uses this function reuses the network trained there."""
    from echo_utils.config import config_hash, load_config
    from echo_utils.study import open_study

    overrides = [f"data.seed={seed}", *sets]
    probe = load_config(params, overrides)
    key = config_hash(probe.data.model_dump(mode="json"), probe.registration.model_dump(mode="json",
                                                                                        exclude={"threads"}))
    return open_study(params, overrides, work / f"seed{seed}-{key}", "cpu", create=True)


def run_seed(seed: int, params: Path, work: Path, instance_sequences: int | None, sets=()) -> dict:
    from echo_utils.registration import IdentityRegistration, load_training_log, registration_from_config
    from echo_utils.registration.evidence import (control_point_variation, endpoint_error, epe_monitor,
                                                  network_check, phantom_pairs)
    from echo_utils.report.registration import network_check_lines
    from echo_utils.study import stages

    study = seed_study(seed, params, work, sets)
    cfg = study.cfg
    train, val, test = (study.sequences(s) for s in ("train", "val", "test"))
    root = study.cohort.root
    rc, mode = cfg.registration, cfg.pseudo_labels.mode
    mon_val, mon_test = epe_monitor(root, val, "step", prefix="val"), epe_monitor(root, test, "step", prefix="test")
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    dlir = stages.registration(study, "cpu", name="dlir", train=train, val=val,  # the study's network, as notebook 02
                               monitor=lambda m: {**mon_val(m), **mon_test(m)})
    t_wall = time.perf_counter() - t0
    log = load_training_log(dlir)
    va = log[log.split == "val"]
    regs = {"identity": IdentityRegistration(), "dlir": dlir, "instance": registration_from_config("instance", rc)}
    inst_seqs = test if instance_sequences is None else test[:instance_sequences]
    out = {"seed": seed, "n_train": len(train), "n_val": len(val), "n_test": len(test), "mode": mode,
           "registration": rc.model_dump(mode="json"),
           "train_seconds": round(float(log["seconds"].max()), 1), "train_wall_seconds": round(t_wall, 1),
           "loadavg_1min_at_start": round(load0, 2), "loadavg_1min_after_training": round(os.getloadavg()[0], 2),
           "kept_iteration": dlir.kept_iteration, "field_variation_val": dlir.field_variation,
           "curve": [{"iteration": int(r.iteration), "seconds": round(float(r.seconds), 1), "val_loss": float(r.loss),
                      "field_variation": float(r.field_variation), "val_step_epe_px": float(r.val_step_epe_px),
                      "test_step_epe_px": float(r.test_step_epe_px)} for r in va.itertuples()],
           "identity_step_epe_px": {"val": float(va.val_step_identity_epe_px.iloc[0]),
                                    "test": float(va.test_step_identity_epe_px.iloc[0])},
           "dice": {}, "epe": {}}
    modes = {"identity": ("sequential",), "dlir": ("sequential", "composed"), "instance": (mode,)}
    for name, reg in regs.items():
        seqs = inst_seqs if name == "instance" else test
        for m in modes[name]:
            t0 = time.perf_counter()
            rows = video_dice(seqs, reg, m)
            med = {k: float(np.median([r[k] for r in rows])) for k in rows[0] if k != "key"}
            out["dice"][f"{name}/{m}"] = {"n_videos": len(rows), "median": med, "videos": rows,
                                          "seconds": round(time.perf_counter() - t0, 1)}
            print(f"seed {seed} {name:9s} {m:10s} " + " ".join(f"{k} {v:.3f}" for k, v in med.items()), flush=True)
    for kind in ("step", "ed_es"):
        pairs = phantom_pairs(root, test, kind)
        table = endpoint_error({k: v for k, v in regs.items() if k != "instance"}, pairs)
        ipairs = phantom_pairs(root, inst_seqs, kind)
        table = pd.concat([table, endpoint_error({"instance": regs["instance"]}, ipairs)], ignore_index=True)
        out["epe"][kind] = {k: float(v) for k, v in table.groupby("registration").epe_px.mean().items()}
        print(f"seed {seed} EPE {kind}: " + ", ".join(f"{k} {v:.3f} px" for k, v in out["epe"][kind].items()), flush=True)
    step = phantom_pairs(root, test, "step")
    out["field_variation_test"] = control_point_variation(dlir, step["fixed"], step["moving"])["field_variation"]
    alive_val = network_check(out["field_variation_val"], out["epe"]["step"]["dlir"], out["epe"]["step"]["identity"],
                              where="the validation pairs")
    alive_test = network_check(out["field_variation_test"], where="the test pairs")
    out["network_check"] = {"ok": bool(alive_val and alive_test),
                            "lines": network_check_lines(alive_val) + network_check_lines(alive_test),
                            "problems": alive_val.problems + alive_test.problems}
    print("\n".join(f"seed {seed} check: {x}" for x in out["network_check"]["lines"]), flush=True)
    out["checks"] = checks(out)
    return out


def checks(r: dict) -> dict:
    d = {k: v["median"] for k, v in r["dice"].items()}
    mode = r["mode"]
    ident, net = d["identity/sequential"], d[f"dlir/{mode}"]
    inst_keys = [v["key"] for v in r["dice"][f"instance/{mode}"]["videos"]]
    inst = r["dice"][f"instance/{mode}"]["median"]
    net_paired = {k: float(np.median([v[k] for v in r["dice"][f"dlir/{mode}"]["videos"] if v["key"] in inst_keys]))
                  for k in net}
    c = {"mode": mode}
    for s in ("LV", "MYO"):
        c[f"forward_{s}_gain_over_identity"] = net[f"forward_{s}"] - ident[f"forward_{s}"]
        c[f"bidirectional_{s}_gain_over_identity"] = net[f"bidirectional_{s}"] - ident[f"bidirectional_{s}"]
        c[f"bidirectional_{s}_minus_instance"] = net_paired[f"bidirectional_{s}"] - inst[f"bidirectional_{s}"]
    e = r["epe"]["step"]
    c["epe_step_ratio_to_identity"] = e["dlir"] / e["identity"]
    c["instance_epe_step_ratio_to_identity"] = e["instance"] / e["identity"]  # on the instance videos' pairs
    c["network_alive"] = bool(r["network_check"]["ok"])
    c["train_seconds"] = r["train_seconds"]
    targets = {
        "network_alive": c["network_alive"],
        "epe_below_half_identity": c["epe_step_ratio_to_identity"] < 0.5,
        "forward_gain_ge_0.03": all(c[f"forward_{s}_gain_over_identity"] >= 0.03 for s in ("LV", "MYO")),
        "bidirectional_gain_ge_0.01": all(c[f"bidirectional_{s}_gain_over_identity"] >= 0.01 for s in ("LV", "MYO")),
        "bidirectional_within_0.01_of_instance": all(c[f"bidirectional_{s}_minus_instance"] >= -0.01
                                                     for s in ("LV", "MYO")),
        "training_le_300_s": r["train_seconds"] <= 300,
    }
    c["targets"] = targets
    c["pass"] = bool(all(targets.values()))
    return c


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--params", type=Path, default=ROOT / "notebooks" / "params" / "demo.yaml")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "echo-bench-registration")
    ap.add_argument("--instance-sequences", type=int, default=4, help="InstanceBSpline (slow) on the first N "
                    "test videos (0: all)")
    ap.add_argument("--set", dest="sets", nargs="*", default=[], metavar="KEY=VALUE",
                    help="profile overrides, e.g. registration.iterations=3000 (recorded in the JSON)")
    ap.add_argument("--variant", default=None, help="a name for a trial of other settings (--set): written to "
                    "results/registration_variants/<name>.json, beside the profile's own result, never over it")
    ap.add_argument("--threads", type=int, default=2, help="torch threads outside training (training: the "
                    "profile's registration.threads)")
    args = ap.parse_args(argv)
    if args.sets and not args.variant:  # refused before anything is computed
        ap.error("--set without --variant would write other settings over the profile's result; name the trial")
    torch.set_num_threads(args.threads)
    args.instance_sequences = args.instance_sequences or None
    results = [run_seed(s, args.params, args.work, args.instance_sequences, args.sets) for s in args.seeds]
    RESULTS.mkdir(exist_ok=True)
    out = {"profile": str(args.params.relative_to(ROOT)) if args.params.is_relative_to(ROOT) else str(args.params),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                       "python": sys.version.split()[0], "torch": torch.__version__},
           "overrides": list(args.sets), "seeds": results, "pass": all(r["checks"]["pass"] for r in results)}
    out["targets_met"] = out["pass"]
    if args.variant:
        out["variant"] = args.variant
        path = VARIANTS / f"{args.variant}.json"
    else:
        path = RESULTS / ("registration_learning.json" if args.seeds == [0, 1] else
                          f"registration_learning_seeds{'_'.join(map(str, args.seeds))}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    for r in results:
        print(f"seed {r['seed']}: " + ", ".join(f"{k} {v:+.3f}" if isinstance(v, float) else f"{k} {v}"
                                                for k, v in r["checks"].items()))
        if not r["network_check"]["ok"]:
            print(f"seed {r['seed']}: DEAD NETWORK: {r['network_check']['problems']}")
    print(f"-> {path}; targets {'met' if out['targets_met'] else 'NOT met'}")
    return 0 if out["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
