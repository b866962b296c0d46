"""Build the Jupyter Book offline, from executed notebooks to HTML that loads nothing from outside the machine.

``python -m echo_utils.book [--strict]`` prepares ``book/_static`` and the executed notebooks, then runs
``jupyter-book build .`` at the project root:

- plotly.js is copied from the installed ``plotly`` package, and MathJax 3 (the ``tex-chtml`` component with its
  TeX extensions and web fonts) from the ``django-static-mathjax`` package, a pinned PyPI release of MathJax 3.2.2,
  so that formulas render with MathJax's own fonts and no page names a CDN;
- the executed copies in ``book/notebooks`` are cleaned for publication: papermill's injected-parameters cell and
  printed messages show paths relative to the project instead of the builder's machine paths, and progress bars
  show their final state once instead of one output box per update.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from .artifacts.atomic import write_text
from .config import PROJECT_ROOT

__all__ = ["prepare_static", "clean_executed_notebooks", "build_book", "main"]

STATIC = PROJECT_ROOT / "book" / "_static"
MATHJAX_DIST = "django-static-mathjax"
# What the pages need from MathJax's es5 build: the tex-chtml component, the TeX extensions it autoloads, the CHTML
# web fonts, the menu and accessibility components (and the speech-rule engine they load on demand). The other
# combined components (SVG output, MathML input, node) are left out.
_MATHJAX_SKIP = ("*-svg*.js", "mml-*.js", "tex-mml-*.js", "tex-chtml-full*.js", "node-main.js", "svg", "adaptors")


def _mathjax_es5() -> Path:
    """The ``es5`` folder of the MathJax 3 release shipped by the ``django-static-mathjax`` package."""
    import mathjax  # the import name of django-static-mathjax

    es5 = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"
    if not (es5 / "tex-chtml.js").exists():
        raise FileNotFoundError(f"MathJax 3 not found at {es5}/tex-chtml.js: reinstall {MATHJAX_DIST} (make install)")
    return es5


def prepare_static(static_dir: Path = STATIC) -> list[Path]:
    """Copy ``plotly.min.js`` and MathJax 3 into ``static_dir`` (idempotent; skipped when up to date)."""
    import plotly

    static_dir.mkdir(parents=True, exist_ok=True)
    written = []
    plotly_js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    dst = static_dir / "plotly.min.js"
    if not dst.exists() or dst.stat().st_size != plotly_js.stat().st_size:
        shutil.copyfile(plotly_js, dst)
        written.append(dst)
    version = f"{MATHJAX_DIST}=={metadata.version(MATHJAX_DIST)}"
    dst = static_dir / "mathjax"
    stamp = dst / "VERSION"
    if not stamp.exists() or stamp.read_text().strip() != version:  # also replaces an old MathJax 2 copy
        tmp = static_dir / ".mathjax.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(_mathjax_es5(), tmp, ignore=shutil.ignore_patterns(*_MATHJAX_SKIP))
        (tmp / "VERSION").write_text(version + "\n")
        shutil.rmtree(dst, ignore_errors=True)
        tmp.rename(dst)
        written.append(dst)
    return written


def _relative(text: str, roots: tuple[Path, ...]) -> str:
    """``text`` with every absolute path under one of ``roots`` written relative to that root."""
    for root in roots:
        for prefix in {str(root) + "/", str(root.resolve()) + "/"}:
            text = text.replace(prefix, "")
    return text


def _terminal_text(text: str) -> str:
    """What a terminal shows for ``text``: on each line, a carriage return lets the text after it overwrite the
    line, so a progress bar's updates leave only its last state."""
    return "\n".join(line.rsplit("\r", 1)[-1] if "\r" in line.rstrip("\r") else line.rstrip("\r")
                     for line in text.split("\n"))


def _merge_streams(outputs: list[dict]) -> list[dict]:
    """Consecutive ``stream`` outputs of the same name (stdout, stderr) merged into one, as a terminal shows them,
    with carriage returns applied (see :func:`_terminal_text`); empty streams dropped; other outputs kept."""
    merged: list[dict] = []
    for out in outputs:
        if out.get("output_type") == "stream":
            text = "".join(out.get("text", ""))
            if merged and merged[-1].get("output_type") == "stream" and merged[-1]["name"] == out["name"]:
                merged[-1]["text"] += text
                continue
            merged.append({**out, "text": text})
        else:
            merged.append(out)
    cleaned = []
    for out in merged:
        if out.get("output_type") == "stream":
            text = _terminal_text(out["text"])
            if not text.strip():
                continue
            out = {**out, "text": text.splitlines(keepends=True)}
        cleaned.append(out)
    return cleaned


def clean_executed_notebooks(notebook_dir: Path, root: Path = PROJECT_ROOT) -> list[Path]:
    """Make the executed notebooks in ``notebook_dir`` publishable; returns the notebooks that changed.

    - Every absolute path under the project ``root`` (and under the project whose code ran them, when the book
      is built in another folder) is written relative to it: in papermill's ``injected-parameters`` cell, in
      printed messages and tables, and in papermill's metadata, so that neither the pages nor the downloadable
      notebooks show the builder's machine paths.
    - Printed output is shown as a terminal (or JupyterLab) shows it: a cell's consecutive stdout (stderr) pieces
      form one block, and a progress bar's carriage-return updates leave only its last state, instead of one
      box per update.

    The notebooks are rewritten in place (they are build products of ``python -m echo_utils.run``); running this
    twice changes nothing the second time.
    """
    roots = tuple(sorted({Path(root), PROJECT_ROOT}, key=lambda r: -len(str(r))))  # the deeper root first
    changed = []
    for path in sorted(Path(notebook_dir).glob("[0-9][0-9]_*.ipynb")):
        if path.name.endswith(".partial.ipynb"):
            continue
        raw = path.read_text()
        nb = json.loads(_relative(raw, roots))  # paths are plain JSON strings: nothing escaped is touched
        for cell in nb.get("cells", []):
            if cell.get("outputs"):
                cell["outputs"] = _merge_streams(cell["outputs"])
        new = json.dumps(nb, indent=1, sort_keys=True, separators=(",", ": "), ensure_ascii=False) + "\n"  # nbformat
        if new != raw:
            write_text(path, new)
            changed.append(path)
    return changed


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
    clean_executed_notebooks(root / "book" / "notebooks", root)
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(root), "--builder", builder]
    if _static_outdated(root / "book" / "_static", root / "_build" / builder / "_static"):
        # Sphinx copies the static files only when some page is rebuilt: rebuild all so that they are copied
        cmd.append("--all")
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    return subprocess.call(cmd, cwd=root)


def _static_outdated(src: Path, built: Path) -> bool:
    """True when a file of ``src`` is missing from, or differs from its copy in, a previous build's ``built``."""
    import filecmp

    if not built.is_dir():
        return False  # a first build copies everything anyway
    for f in src.rglob("*"):
        if f.is_file() and not f.name.startswith("."):
            copy = built / f.relative_to(src)
            if not copy.is_file() or not filecmp.cmp(f, copy, shallow=True):
                return True
    return False


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
