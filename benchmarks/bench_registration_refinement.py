"""How far is the trained DLIR network from the optimum of its own loss? Test-time refinement against InstanceBSpline.

    python benchmarks/bench_registration_refinement.py                 # data seeds 0 and 1, demo profile
    python benchmarks/bench_registration_refinement.py --seeds 0 --steps 10 20

The DLIR network is an *amortised* optimiser: one pass per pair stands in for the per-pair optimisation of the
same loss (NCC + alpha * bending energy on the same B-spline grid) that :class:`~echo_utils.registration.
InstanceBSpline` runs.  Its *amortisation gap* is what one pass leaves on the table.  For each data seed, on the test
patients' consecutive-frame pairs (and the ED/ES pairs), this benchmark measures the mean end-point error in the
myocardium against the phantom's exact motion (:func:`~echo_utils.registration.evidence.endpoint_error`) of:

* the identity (the control) and the network alone (the paper's method);
* :class:`~echo_utils.registration.RefinedRegistration`: the network's control points refined by ``k`` steps of
  InstanceBSpline's optimiser (the profile's ``instance_lr``), for each ``k`` of ``--steps``;
* InstanceBSpline from zeros with the same ``k`` steps, and with the profile's ``instance_iterations``.

So the table separates what the network's start is worth (refined vs. from zeros at equal ``k``) from what the
optimiser alone reaches.  Each row also has its wall and CPU seconds per pair (load average beside them).

The networks are those of ``bench_registration_learning.py``: the same ``--work`` folder and run-folder key, so a
network that benchmark trained is reused, and one it did not is trained here (about 2.5 minutes on 2 cores).
Writes ``benchmarks/results/registration_refinement.json``.  Reports only: nothing here is a target of the
profile, and the book's DLIR stays the network alone (the paper's method).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from bench_registration_learning import RESULTS, seed_study  # noqa: E402 - the same work folders and networks


def measure(name: str, registration, pairs: dict) -> dict:
    """Mean EPE (px) of ``registration`` on ``pairs`` with its wall and CPU seconds per pair."""
    from echo_utils.registration.evidence import endpoint_error

    load, t0, c0 = os.getloadavg()[0], time.perf_counter(), time.process_time()
    table = endpoint_error({name: registration}, pairs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(pairs["info"])
    return {"epe_px": float(table.epe_px.mean()), "wall_ms_per_pair": round(1e3 * wall / n, 3),
            "cpu_ms_per_pair": round(1e3 * cpu / n, 3), "loadavg_1min": round(load, 2)}


def run_seed(seed: int, params: Path, work: Path, steps: list[int]) -> dict:
    from echo_utils.registration import IdentityRegistration, RefinedRegistration, registration_from_config
    from echo_utils.registration.evidence import phantom_pairs
    from echo_utils.study import stages

    study = seed_study(seed, params, work)
    rc = study.cfg.registration
    train, val, test = (study.sequences(s) for s in ("train", "val", "test"))
    network = stages.registration(study, "cpu", name="dlir", train=train, val=val)
    instance = registration_from_config("instance", rc)
    out = {"seed": seed, "n_test_sequences": len(test), "instance_iterations": instance.iterations,
           "instance_lr": instance.lr, "kinds": {}}
    for kind in ("step", "ed_es"):
        pairs = phantom_pairs(study.cohort.root, test, kind)
        rows = {"identity": measure("identity", IdentityRegistration(), pairs),
                "dlir": measure("dlir", network, pairs)}
        for k in steps:
            refine = registration_from_config("instance", rc.model_copy(update={"instance_iterations": k}))
            rows[f"dlir+{k}"] = measure(f"dlir+{k}", RefinedRegistration(network, refine), pairs)
            rows[f"instance{k}"] = measure(f"instance{k}", refine, pairs)
        if instance.iterations not in steps:
            rows[f"instance{instance.iterations}"] = measure("instance", instance, pairs)
        identity = rows["identity"]["epe_px"]
        for r in rows.values():
            r["ratio_to_identity"] = round(r["epe_px"] / identity, 4)
        out["kinds"][kind] = {"n_pairs": len(pairs["info"]), "rows": rows}
        print(f"seed {seed} {kind} ({len(pairs['info'])} pairs): " + ", ".join(
            f"{k} {v['epe_px']:.3f} px ({v['ratio_to_identity']:.0%})" for k, v in rows.items()), flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--params", type=Path, default=ROOT / "notebooks" / "params" / "demo.yaml")
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "echo-bench-registration")
    ap.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20, 40], help="refinement steps k")
    ap.add_argument("--threads", type=int, default=2, help="torch threads outside training")
    args = ap.parse_args(argv)
    if any(k < 1 for k in args.steps):
        ap.error(f"--steps must be positive, got {args.steps}")
    torch.set_num_threads(args.threads)
    results = [run_seed(s, args.params, args.work, sorted(set(args.steps))) for s in args.seeds]
    out = {"profile": str(args.params.relative_to(ROOT)) if args.params.is_relative_to(ROOT) else str(args.params),
           "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "threads": args.threads,
                       "python": sys.version.split()[0], "torch": torch.__version__},
           "steps": sorted(set(args.steps)), "seeds": results}
    path = RESULTS / ("registration_refinement.json" if args.seeds == [0, 1] else
                      f"registration_refinement_seeds{'_'.join(map(str, args.seeds))}.json")
    path.write_text(json.dumps(out, indent=1))
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
