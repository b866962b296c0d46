"""Run the study's notebooks with papermill, and set up a notebook from its parameters.

Command line::

    python -m echo_utils.run --params notebooks/params/demo.yaml [--only 01 03] [--run-dir DIR] [--output-dir DIR]

Each ``notebooks/NN_name.ipynb`` is executed in order with the parameters ``params``, ``run_dir`` and ``device``
injected into its cell tagged ``parameters``. The executed copy is first written next to its destination as
``NN_name.partial.ipynb`` and renamed over ``NN_name.ipynb`` only when the whole notebook succeeded, so a failed
run never destroys a previously executed notebook; the partial copy is kept for inspection and the error names the
notebook and the failing cell.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .config import PROJECT_ROOT, ConfigError, RunPaths, StudyConfig, load_config, resolve_run_dir

__all__ = ["NotebookFailed", "discover_notebooks", "run_notebooks", "setup_notebook", "NotebookContext", "main"]

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
BOOK_NOTEBOOK_DIR = PROJECT_ROOT / "book" / "notebooks"
_NB_RE = re.compile(r"^(\d\d)_[A-Za-z0-9_]+\.ipynb$")


class NotebookFailed(RuntimeError):
    """A notebook raised: names the notebook, the failing cell and where the partial copy is."""


@dataclass(frozen=True)
class NotebookContext:
    """What a notebook needs after its parameters cell: the validated profile and the run's folders."""

    cfg: StudyConfig
    paths: RunPaths
    device: str

    @property
    def run_dir(self) -> Path:
        return self.paths.root


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
    create: bool = True,
) -> NotebookContext:
    """Load the profile, resolve the run directory, seed, and configure offline plotly output.

    Parameters
    ----------
    params : path of the YAML profile (relative paths are resolved against the project root too).
    run_dir : run directory; default ``runs/<profile name>``.
    device : ``"cpu"``, ``"cuda"`` or ``"auto"``; ``None`` keeps the profile's choice.
    create : create a missing run directory (notebook 01) or require it (later notebooks).
    """
    overrides = {"device": device} if device else None
    cfg = load_config(params, overrides=overrides)
    paths = RunPaths(resolve_run_dir(cfg, run_dir, create=create))
    seed_everything(cfg.seed)
    from .plots import setup_plotly

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
        raise ConfigError(f"--only names no notebook in {notebook_dir}: {sorted(missing)}")
    return selected


def _format_seconds(s: float) -> str:
    m, s = divmod(int(round(s)), 60)
    return f"{m}m{s:02d}s" if m else f"{s}s"


def run_notebooks(
    params: str | Path,
    *,
    only: list[str] | None = None,
    run_dir: str | Path | None = None,
    output_dir: str | Path = BOOK_NOTEBOOK_DIR,
    notebook_dir: str | Path = NOTEBOOK_DIR,
    device: str | None = None,
    kernel_name: str = "python3",
    log=print,
) -> list[Path]:
    """Execute the notebooks with papermill; returns the executed copies.

    The profile is validated before anything runs. Raises :class:`NotebookFailed` on the first failing notebook.
    """
    import papermill as pm

    params = Path(params).resolve()
    cfg = load_config(params)  # fail fast on a bad profile, before any work
    run_dir = resolve_run_dir(cfg, run_dir)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    notebooks = discover_notebooks(only, Path(notebook_dir))
    if not notebooks:
        raise ConfigError(f"no NN_*.ipynb notebooks in {notebook_dir}")
    parameters = {"params": str(params), "run_dir": str(run_dir), "device": device}
    executed = []
    t_all = time.perf_counter()
    for i, nb in enumerate(notebooks, 1):
        final = output_dir / nb.name
        partial = output_dir / f"{nb.stem}.partial.ipynb"
        log(f"[{i}/{len(notebooks)}] {nb.name}  (profile {cfg.name}, run dir {run_dir})", flush=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(
                str(nb),
                str(partial),
                parameters=parameters,
                kernel_name=kernel_name,
                cwd=str(PROJECT_ROOT),
                progress_bar=sys.stderr.isatty(),
                log_output=False,
            )
        except pm.PapermillExecutionError as exc:
            cell = f"cell {exc.cell_index}" + (f" (execution count {exc.exec_count})" if exc.exec_count else "")
            raise NotebookFailed(
                f"notebook {nb.name} failed in {cell}: {exc.ename}: {exc.evalue}\n"
                f"  partially executed copy kept at {partial}"
                + (f"\n  the previous successful copy {final} is untouched" if final.exists() else "")
            ) from None
        os.replace(partial, final)
        executed.append(final)
        log(
            f"[{i}/{len(notebooks)}] {nb.name} done in {_format_seconds(time.perf_counter() - t0)}"
            f" (total {_format_seconds(time.perf_counter() - t_all)})",
            flush=True,
        )
    return executed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m echo_utils.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", required=True, help="YAML profile, e.g. notebooks/params/demo.yaml")
    parser.add_argument("--only", nargs="+", metavar="NN", help="run only these notebooks (number or name)")
    parser.add_argument("--run-dir", help="run directory (default runs/<profile name>)")
    parser.add_argument("--output-dir", default=str(BOOK_NOTEBOOK_DIR), help="where executed notebooks go")
    parser.add_argument("--notebook-dir", default=str(NOTEBOOK_DIR), help=argparse.SUPPRESS)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override the profile's device")
    args = parser.parse_args(argv)
    try:
        run_notebooks(
            args.params,
            only=args.only,
            run_dir=args.run_dir,
            output_dir=args.output_dir,
            notebook_dir=args.notebook_dir,
            device=args.device,
        )
    except (ConfigError, NotebookFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
