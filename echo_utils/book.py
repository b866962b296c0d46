"""Build the Jupyter Book offline.

``python -m echo_utils.book [--strict]`` copies the JavaScript the pages need from installed Python packages into
``book/_static`` (plotly.js from ``plotly``, MathJax 2.7 from ``jupyter-server-mathjax``), so that the built HTML
loads nothing from a CDN, then runs ``jupyter-book build .`` at the project root.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from .config import PROJECT_ROOT

__all__ = ["prepare_static", "build_book", "main"]

STATIC = PROJECT_ROOT / "book" / "_static"


def prepare_static(static_dir: Path = STATIC) -> list[Path]:
    """Copy ``plotly.min.js`` and MathJax into ``static_dir`` (idempotent; skipped when up to date)."""
    import jupyter_server_mathjax
    import plotly

    static_dir.mkdir(parents=True, exist_ok=True)
    written = []
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    dst = static_dir / "plotly.min.js"
    if not dst.exists() or dst.stat().st_size != plotly_js.stat().st_size:
        shutil.copyfile(plotly_js, dst)
        written.append(dst)
    mathjax = Path(jupyter_server_mathjax.__file__).parent / "static"
    dst = static_dir / "mathjax"
    if not (dst / "MathJax.js").exists():
        tmp = static_dir / ".mathjax.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(mathjax, tmp)
        tmp.rename(dst)
        written.append(dst)
    return written


def build_book(strict: bool = False, root: Path = PROJECT_ROOT, builder: str = "html") -> int:
    """Run ``jupyter-book build`` on ``root``; with ``strict`` any Sphinx warning fails the build."""
    prepare_static(root / "book" / "_static")
    missing = [p for p in _toc_files(root) if not _exists(root, p)]
    if missing:
        print(
            "error: these pages of _toc.yml do not exist: "
            + ", ".join(missing)
            + "\n  run the notebooks first: python -m echo_utils.run --params notebooks/params/demo.yaml",
            file=sys.stderr,
        )
        return 1
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(root), "--builder", builder]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    return subprocess.call(cmd, cwd=root)


def _toc_files(root: Path) -> list[str]:
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part.get("chapters", [])]
    return files


def _exists(root: Path, stem: str) -> bool:
    return any((root / f"{stem}{ext}").exists() for ext in (".md", ".ipynb", ".rst"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m echo_utils.book", description=__doc__.split("\n\n")[0])
    parser.add_argument("--strict", action="store_true", help="turn Sphinx warnings into errors")
    args = parser.parse_args(argv)
    return build_book(strict=args.strict)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
