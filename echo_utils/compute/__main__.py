"""Job folders from the command line: their state, and resubmitting one.

    python -m echo_utils.compute status runs/paper                 # every job of a run: done / submitted / failed
    python -m echo_utils.compute resubmit runs/paper/jobs/NAME ...  # resubmit jobs (their job.json), wait unless Slurm
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .jobs import is_done, load_spec, read_marker
from .progress import JobsFailed
from .runner import compute_settings, run_jobs


def _state(folder: Path) -> tuple[str, str]:
    try:
        job, _ = load_spec(folder)
    except (OSError, ValueError) as exc:
        return "unreadable", str(exc)
    if is_done(job):
        return "done", read_marker(job).get("finished", "")
    if (folder / "error.txt").is_file():
        return "failed", f"see {folder / 'error.txt'}"
    if (folder / "submitted.json").is_file():
        rec = json.loads((folder / "submitted.json").read_text())
        return "submitted", f"{rec.get('backend')} job {rec.get('job_id')} at {rec.get('submitted')}"
    return "not run", ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m echo_utils.compute", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_status = sub.add_parser("status", help="list the jobs of a run directory")
    p_status.add_argument("run_dir")
    p_re = sub.add_parser("resubmit", help="resubmit job folders (runs/NAME/jobs/JOB)")
    p_re.add_argument("folders", nargs="+")
    p_re.add_argument("--backend", choices=["inline", "local", "slurm"], help="override the recorded backend")
    args = parser.parse_args(argv)
    if args.command == "status":
        folders = sorted(p for p in (Path(args.run_dir) / "jobs").glob("*") if (p / "job.json").is_file())
        if not folders:
            print(f"error: no job folders under {Path(args.run_dir) / 'jobs'}", file=sys.stderr)
            return 1
        for f in folders:
            state, note = _state(f)
            print(f"{state:10}  {f.name}  {note}")
        return 0
    specs = []
    try:
        specs = [load_spec(f) for f in args.folders]
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    compute = compute_settings(specs[0][1]["compute"])
    if args.backend:
        compute = compute.model_copy(update={"backend": args.backend})
    try:
        report = run_jobs([job for job, _ in specs], compute, wait=compute.backend != "slurm")
    except JobsFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the command line shows the reason, not a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
