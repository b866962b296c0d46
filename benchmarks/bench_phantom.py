"""Speed of the synthetic cohort and of the reader (issue target: 50 patients at 256x256 in < 1 min on 2 cores).

What is measured:

* ``generate``: :func:`echo_utils.phantom.make_cohort` for ``--patients`` patients at ``--size`` pixels
  (frames 10-40, both views, NIfTI written), wall time with ``--workers`` processes and the total CPU time of
  the generating processes (which does not depend on other jobs sharing the machine);
* ``render``: the in-memory rendering only, per frame and view (one process);
* ``read``: :func:`echo_utils.camus.iter_sequences` over the whole cohort (wall time);
* ``ef``: the biplane EF of the exact ED/ES labels against the requested EF (percentage points).

Usage::

    .venv/bin/python benchmarks/bench_phantom.py [--patients 50] [--size 256] [--workers 2]

Prints a table and writes ``benchmarks/results/bench_phantom.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from echo_utils.artifacts.atomic import write_json


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=50)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_phantom.json"))
    args = ap.parse_args(argv)

    from echo_utils import camus, metrics, phantom
    from echo_utils.data import phantom_cohort

    tmp = Path(tempfile.mkdtemp(prefix="bench_phantom-"))
    try:
        load = os.getloadavg()[0]
        cpu0, t0 = _cpu_seconds(), time.perf_counter()
        root = phantom.make_cohort(tmp / "cohort", args.patients, size=args.size, frames=(10, 40), seed=args.seed,
                                   workers=args.workers, progress=False)
        wall = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
        summary = phantom_cohort.cohort_summary(root)
        n_frames = sum(p["n_frames"] for p in summary["patients"])
        size_mb = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20

        # rendering alone, one patient, one process
        pp = phantom.sample_patient(0, args.seed, (20, 20))
        c0 = time.process_time()
        phantom.render_patient(pp, args.size)
        render_ms = (time.process_time() - c0) / (2 * pp.n_frames) * 1000

        t1 = time.perf_counter()
        seqs = list(camus.iter_sequences(root))
        read = time.perf_counter() - t1

        by = {}
        for s in seqs:
            by.setdefault(s.patient, {})[s.view] = s
        err = []
        for pat in by.values():
            a, b = pat["2CH"], pat["4CH"]
            edv = metrics.lv_volume_biplane(a.labels[a.ed] == 1, b.labels[b.ed] == 1, a.spacing, b.spacing)
            esv = metrics.lv_volume_biplane(a.labels[a.es] == 1, b.labels[b.es] == 1, a.spacing, b.spacing)
            err.append(metrics.ejection_fraction(edv, esv) - float(a.info["EF"]))
        err = np.asarray(err)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    result = {
        "patients": args.patients,
        "size": args.size,
        "workers": args.workers,
        "frames_ed_es_total": int(n_frames),
        "generate_wall_s": round(wall, 2),
        "generate_cpu_s": round(cpu, 2),
        "generate_wall_s_if_cpu_bound_on_2_cores": round(cpu / 2, 2),
        "render_cpu_ms_per_frame_view": round(render_ms, 2),
        "cohort_size_mb": round(size_mb, 1),
        "read_wall_s": round(read, 2),
        "ef_error_mean_pp": round(float(err.mean()), 3),
        "ef_error_max_abs_pp": round(float(np.abs(err).max()), 3),
        "load_average_at_start": round(load, 2),
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
    print(f"{'measure':45s} value")
    for k, v in result.items():
        print(f"{k:45s} {v}")
    write_json(Path(args.out), result, indent=1, sort_keys=False)
    return result


if __name__ == "__main__":
    main()
