"""Run the study's notebooks with papermill, and set up a notebook from its parameters.

Command line::

    python -m echo_utils.run --params notebooks/params/demo.yaml [--set registration.alpha=0 ...]
                             [--only 01 03] [--run-dir DIR] [--output-dir DIR] [--device cpu] [--check]

Each ``notebooks/NN_name.ipynb`` is executed in order with the parameters ``params``, ``run_dir``, ``device`` and
``overrides`` (the ``--set`` values, a nested dict) injected into its cell tagged ``parameters``; paths are
given relative to the project (the notebooks run with the project root as working directory), so the book shows
no machine paths. Before any notebook runs, the profile (with its overrides) is validated, compared with the
settings recorded in the run directory's ``run.json`` (a different profile is refused, nothing touched), and the
run directory is locked against a second runner (``run.lock``).

The executed copy is first written next to its destination as ``NN_name.partial.ipynb`` and renamed over
``NN_name.ipynb`` only when the whole notebook succeeded, so a failed run never destroys a previously executed
notebook; the partial copy is kept for inspection and the error names the notebook and the failing cell. Ctrl-C
ends with one line saying what was kept and the command that resumes.
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .config import (
    PROJECT_ROOT,
    ConfigError,
    StudyConfig,
    deep_merge,
    display_path,
    load_config,
    parse_overrides,
    resolve_params_path,
)
from .artifacts import files
from .study.checks import preflight
from .rundir import RunLock, RunPaths, assert_not_locked_by_other, check_settings, open_run, resume_command, run_dir_path, settings_record
from .rundir.resume import set_items

__all__ = [
    "NotebookFailed",
    "RunInterrupted",
    "discover_notebooks",
    "run_notebooks",
    "setup_notebook",
    "NotebookContext",
    "resume_command",
    "main",
]

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
BOOK_NOTEBOOK_DIR = PROJECT_ROOT / "book" / "notebooks"
_NB_RE = re.compile(r"^(\d\d)_[A-Za-z0-9_]+\.ipynb$")


class NotebookFailed(RuntimeError):
    """A notebook raised: names the notebook, the failing cell and where the partial copy is."""


class RunInterrupted(RuntimeError):
    """Ctrl-C (or SIGTERM) during a run: one line saying what was kept and how to resume."""


@dataclass(frozen=True)
class NotebookContext:
    """What a notebook needs after its parameters cell: the validated profile and the run's folders."""

    cfg: StudyConfig
    paths: RunPaths
    device: str

    @property
    def run_dir(self) -> Path:
        return self.paths.root

    @property
    def display_run_dir(self) -> str:
        """The run directory as the book shows it: relative to the project when inside it."""
        return display_path(self.paths.root)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU results are then deterministic)."""
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass


def setup_notebook(
    params: str | Path,
    run_dir: str | Path | None = None,
    device: str | None = None,
    *,
    overrides: object = None,
    create: bool = True,
) -> NotebookContext:
    """Load the profile with its overrides, check and resolve the run directory, seed, set up offline plotly.

    Parameters
    ----------
    params : path of the YAML profile (relative paths are resolved against the project root too).
    run_dir : run directory; default ``runs/<profile name>``.
    device : ``"cpu"``, ``"cuda"`` or ``"auto"``; ``None`` keeps the profile's choice.
    overrides : profile overrides (the notebook's ``overrides`` parameter), any form
        :func:`echo_utils.config.parse_overrides` accepts.
    create : create a missing run directory (notebook 01) or require it (later notebooks).

    Raises what :func:`echo_utils.rundir.open_run` raises: a bad profile, a run directory made with other
    settings, or one locked by another runner, before anything is written.
    """
    cfg, paths = open_run(params, overrides, run_dir, device, create=create)
    seed_everything(cfg.seed)
    from .report.widgets import setup_plotly

    setup_plotly()
    return NotebookContext(cfg=cfg, paths=paths, device=cfg.torch_device)


def discover_notebooks(only: list[str] | None = None, notebook_dir: Path = NOTEBOOK_DIR) -> list[Path]:
    """The ``NN_name.ipynb`` notebooks in order, optionally only those whose number or name is in ``only``."""
    notebooks = sorted(p for p in notebook_dir.glob("*.ipynb") if _NB_RE.match(p.name))
    if not only:
        return notebooks
    wanted = {str(o) for o in only}
    selected = [p for p in notebooks if p.name[:2] in wanted or p.stem in wanted]
    missing = wanted - {p.name[:2] for p in selected} - {p.stem for p in selected}
    if missing:
        raise ConfigError(f"--only names no notebook in {display_path(notebook_dir)}: {sorted(missing)}")
    return selected


def _format_seconds(s: float) -> str:
    m, s = divmod(int(round(s)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def run_notebooks(
    params: str | Path,
    *,
    only: list[str] | None = None,
    run_dir: str | Path | None = None,
    overrides: object = None,
    output_dir: str | Path = BOOK_NOTEBOOK_DIR,
    notebook_dir: str | Path = NOTEBOOK_DIR,
    device: str | None = None,
    kernel_name: str = "python3",
    check_only: bool = False,
    log=print,
) -> list[Path]:
    """Execute the notebooks with papermill; returns the executed copies.

    Before anything is written: the profile and ``overrides`` are validated, the notebooks found, the
    profile compared with the run directory's recorded settings, and :func:`echo_utils.study.checks.preflight` checks
    the run directory can be written, the device exists, the data roots hold their layout and the split leaves a
    patient in each split. Then the run directory is locked (``run.lock``)
    and, on its first run, its settings are recorded (``run.json``). With ``check_only`` the run stops after the
    checks (nothing written; a lock held by another runner is reported) and returns the notebooks it would run.

    Raises
    ------
    ConfigError (bad profile or overrides, ``SettingsMismatch``, ``RunLocked``, ``RunDirNotWritable``,
    ``PreflightError``), :class:`NotebookFailed` on
    the first failing notebook, :class:`RunInterrupted` on Ctrl-C / SIGTERM.
    """
    import papermill as pm
    from nbclient.exceptions import DeadKernelError

    params = resolve_params_path(params)
    extra = parse_overrides(overrides)
    cfg = load_config(params, overrides=deep_merge(extra, {"device": device}) if device else extra)
    run_dir = run_dir_path(cfg.name, run_dir)
    notebooks = discover_notebooks(only, Path(notebook_dir))
    if not notebooks:
        raise ConfigError(f"no NN_*.ipynb notebooks in {display_path(notebook_dir)}")
    record = settings_record(cfg, params=params, overrides=extra)
    recorded = check_settings(run_dir, record)  # read-only: refused before the run directory is touched
    found = preflight(cfg, run_dir)  # writable run dir, device, data roots and layout, split: still read-only
    if check_only:
        if run_dir.is_dir():
            assert_not_locked_by_other(run_dir)
        state = "matches its run.json" if recorded else "new run directory (run.json written on the first run)"
        split = found["split"]
        log(f"ok: profile {cfg.name} [{record['profile_hash']}]"
            + (f" with {' '.join(set_items(extra))}" if extra else "")
            + f"; run dir {display_path(run_dir)}: {state}; device {found['device']}; split {split['train']} train,"
            f" {split['val']} val, {split['test']} test patients; would run {', '.join(p.stem for p in notebooks)}")
        return notebooks
    output_dir = Path(output_dir)
    # Parameters as the book shows them: paths relative to the project (papermill runs in the project root).
    parameters = {"params": display_path(params), "run_dir": display_path(run_dir), "device": device}
    if extra:
        parameters["overrides"] = extra
    executed: list[Path] = []
    current: Path | None = None
    with RunLock(run_dir, log=log):
        check_settings(run_dir, record, write=True)
        output_dir.mkdir(parents=True, exist_ok=True)
        t_all = time.perf_counter()
        try:
            for i, nb in enumerate(notebooks, 1):
                current = nb
                final = output_dir / nb.name
                partial = output_dir / f"{nb.stem}.partial.ipynb"
                log(f"[{i}/{len(notebooks)}] {nb.name}  (profile {cfg.name}, run dir {display_path(run_dir)})",
                    flush=True)
                t0 = time.perf_counter()
                kernel_log = RunPaths(run_dir).logs / f"{nb.stem}{files.KERNEL_LOG_SUFFIX}"
                try:
                    with _Kernel(kernel_name, kernel_log) as km:
                        pm.execute_notebook(
                            str(nb),
                            str(partial),
                            parameters=parameters,
                            kernel_name=kernel_name,
                            km=km,
                            cwd=str(PROJECT_ROOT),
                            progress_bar=sys.stderr.isatty(),
                            log_output=False,
                        )
                except (pm.PapermillExecutionError, DeadKernelError) as exc:
                    if getattr(exc, "ename", None) == "KeyboardInterrupt":
                        raise KeyboardInterrupt from None
                    if isinstance(exc, DeadKernelError):
                        what = "a dead kernel: its process ended while a cell ran (out of memory? a crash?)"
                    else:
                        what = f"cell {exc.cell_index}" + (
                            f" (execution count {exc.exec_count})" if exc.exec_count else "")
                        what += f": {exc.ename}: {exc.evalue}"
                    raise NotebookFailed(
                        f"notebook {nb.name} failed in {what}\n"
                        f"  partially executed copy kept at {display_path(partial)}"
                        + (f"\n  the kernel's own output is in {display_path(kernel_log)}"
                           if kernel_log.is_file() and kernel_log.stat().st_size else "")
                        + (f"\n  the previous successful copy {display_path(final)} is untouched"
                           if final.exists() else "")
                    ) from None
                _relative_papermill_paths(partial, nb, final)
                os.replace(partial, final)
                executed.append(final)
                current = None
                log(
                    f"[{i}/{len(notebooks)}] {nb.name} done in {_format_seconds(time.perf_counter() - t0)}"
                    f" (total {_format_seconds(time.perf_counter() - t_all)})",
                    flush=True,
                )
        except KeyboardInterrupt:
            remaining = [p.name[:2] for p in notebooks[len(executed):]]
            kept = ", ".join(p.stem for p in executed) or "no notebook finished"
            where = f"in {current.name}" if current else "between notebooks"
            raise RunInterrupted(
                f"interrupted {where}; kept: {kept}, and every finished step cached in {display_path(run_dir)}. "
                f"Resume with: {resume_command(params, extra, run_dir, device, remaining)}"
            ) from None
    return executed


def _relative_papermill_paths(executed: Path, source: Path, final: Path) -> None:
    """Papermill records the machine's absolute input and output paths in the notebook's metadata; keep them
    project-relative like the parameters (the published notebook names no builder's path)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    meta = nb.metadata.get("papermill", {})
    meta.update(input_path=display_path(source), output_path=display_path(final))
    nbformat.write(nb, executed)


class _Kernel:
    """The kernel of one notebook, whose manager the runner holds so that Ctrl-C can interrupt the running cell.

    While a notebook runs, the first SIGINT (or SIGTERM) interrupts the kernel as Jupyter's stop button does: the
    cell ends with ``KeyboardInterrupt``, papermill saves the partial copy, and the runner stops cleanly. A second
    signal stops the runner at once. The kernel is shut down on exit in every case.

    On POSIX the kernel talks over Unix sockets in a private temporary folder rather than local TCP ports: no
    port is opened, and the kernel does not print its "running over TCP without encryption" warning.

    The kernel process's own stdout and stderr (what C libraries and subprocesses print outside
    any cell; a cell's output goes to the notebook) are written to ``log_path``, not to the runner's terminal: the
    runner's messages stay its own. (Shutting an interrupted kernel down interrupts it once more, and libzmq then
    sometimes prints an assertion on its way out; that line used to land in the middle of the runner's one-line
    Ctrl-C message.)

    The manager is jupyter_client's asynchronous one: nbclient then polls the kernel's messages without blocking
    its event loop, so its check that the kernel is still alive runs, and a kernel that dies (killed for memory,
    a crash in a C library) ends the notebook with ``DeadKernelError`` instead of a wait for a message that never
    comes. (With the blocking manager a dead kernel left the runner waiting forever.)
    """

    def __init__(self, kernel_name: str, log_path: Path):
        from jupyter_client.manager import AsyncKernelManager

        self._sockets = tempfile.mkdtemp(prefix="echo-kernel-") if os.name == "posix" else None
        ipc = dict(transport="ipc", ip=os.path.join(self._sockets, "kernel")) if self._sockets else {}
        self.km = AsyncKernelManager(kernel_name=kernel_name, **ipc)
        self._log_path = log_path
        self._log = None
        self._signals = 0
        self._previous: dict = {}

    def _interrupt_kernel(self) -> None:
        """SIGINT to the kernel's process group, what ``interrupt_kernel`` does for ipykernel (interrupt mode
        "signal"), sent synchronously: a signal handler cannot await the manager's coroutine."""
        process = self.km.provisioner.process
        if os.name == "posix":
            os.killpg(os.getpgid(process.pid), signal.SIGINT)
        else:  # pragma: no cover - Windows kernels are interrupted through their interrupt event
            from jupyter_core.utils import run_sync

            run_sync(self.km.interrupt_kernel)()

    def _handler(self, signum, frame):
        self._signals += 1
        if self._signals == 1 and self.km.has_kernel:
            self._interrupt_kernel()
        else:
            raise KeyboardInterrupt

    def __enter__(self):
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self._log_path, "wb")  # noqa: SIM115 - closed in __exit__
        # jupyter_client passes start_kernel's keywords on to the kernel's Popen: its stdout and stderr go to the log
        self.km.start_kernel = functools.partial(self.km.start_kernel, stdout=self._log, stderr=self._log)
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self.km

    def __exit__(self, exc_type, exc, tb) -> None:
        from jupyter_core.utils import run_sync

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        try:
            if self.km.has_kernel:
                run_sync(self.km.shutdown_kernel)(now=exc_type is not None)
        finally:
            run_sync(self.km.cleanup_resources)()
            if self._sockets:
                shutil.rmtree(self._sockets, ignore_errors=True)
            self._log.close()
        if self._signals and exc_type is None:  # interrupted after the last cell had finished
            raise KeyboardInterrupt


def _interrupt(signum, frame):  # SIGTERM ends a run like Ctrl-C: the lock is released, the message printed
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m echo_utils.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", required=True, help="YAML profile, e.g. notebooks/params/demo.yaml")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
        help="override one profile value, e.g. --set registration.alpha=0 (YAML value; repeatable)",
    )
    parser.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks (number or name)")
    parser.add_argument("--run-dir", help="run directory (default runs/<profile name>)")
    parser.add_argument("--output-dir", default=str(BOOK_NOTEBOOK_DIR), help="where executed notebooks go")
    parser.add_argument("--notebook-dir", default=str(NOTEBOOK_DIR), help=argparse.SUPPRESS)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override the profile's device")
    parser.add_argument("--submit", action="store_true", help="instead of the notebooks, submit the study's jobs "
                        "on the profile's compute backend (Slurm: submit and return; then `make book`)")
    parser.add_argument("--dry-run", action="store_true", help="with --submit: list the jobs and their resources "
                        "(and the sbatch header), submit nothing")
    parser.add_argument("--check", action="store_true",
                        help="only check, writing nothing: the profile and overrides against the run directory, "
                        "that the run directory is writable, the device, the data roots and the split; run nothing")
    args = parser.parse_args(argv)
    if args.submit or args.dry_run:  # echo_utils.compute: the cluster path (issue 18)
        from .compute.runner import submit_main

        return submit_main(args.params, overrides=args.overrides, run_dir=args.run_dir, device=args.device,
                           dry_run=args.dry_run)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        run_notebooks(
            args.params,
            only=args.only,
            run_dir=args.run_dir,
            overrides=args.overrides,
            output_dir=args.output_dir,
            notebook_dir=args.notebook_dir,
            device=args.device,
            check_only=args.check,
        )
    except (ConfigError, NotebookFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (RunInterrupted, KeyboardInterrupt) as exc:
        print(str(exc) or "interrupted before any notebook ran; nothing to resume", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
