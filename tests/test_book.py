"""End-to-end smoke test: every notebook runs on the `ci` profile, and the book builds offline without warnings.

The book is built in a temporary copy of the project's book sources, so the test never touches `book/notebooks`
or `_build` of a real `make book` run.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from echo_utils.book import build_book
from echo_utils.run import run_notebooks

ROOT = Path(__file__).resolve().parent.parent
CDN = re.compile(
    r"""(?:src|href)\s*=\s*["'](?:https?:)?//[^"']*(?:cdn|unpkg|jsdelivr|cdnjs|plot\.ly|mathjax|googleapis|"""
    r"""require\.js|thebe|binder)[^"']*["']""",
    re.I,
)

pytestmark = pytest.mark.slow


def _toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(
        ROOT / "book",
        root / "book",
        ignore=shutil.ignore_patterns("notebooks", "plotly.min.js", "mathjax", "_build"),
    )
    run_dir = tmp_path_factory.mktemp("run")
    executed = run_notebooks(
        ROOT / "notebooks" / "params" / "ci.yaml",
        run_dir=run_dir,
        output_dir=root / "book" / "notebooks",
    )
    rc = build_book(strict=True, root=root)
    return root, executed, rc


def test_every_toc_notebook_is_executed_without_errors(built_book):
    root, executed, _ = built_book
    notebooks = [p for p in _toc_pages() if p.startswith("book/notebooks/")]
    assert sorted(p.name for p in executed) == sorted(Path(p).name + ".ipynb" for p in notebooks)
    for page in notebooks:
        nb = nbformat.read(root / f"{page}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(c.get("execution_count") for c in code), f"{page}: not every cell was executed"
        errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{page}: {errors[0]['ename']}"
        assert sum(1 for c in nb.cells if "parameters" in c.metadata.get("tags", [])) == 1


def test_book_builds_strict_without_warnings(built_book):
    _, _, rc = built_book
    assert rc == 0, "jupyter-book build -W failed: see the captured output for the warning"


def test_built_html_has_every_page_and_no_cdn(built_book):
    root, _, _ = built_book
    html = root / "_build" / "html"
    assert (html / "index.html").exists()
    assert (html / "_static" / "plotly.min.js").exists()
    assert (html / "_static" / "mathjax" / "MathJax.js").exists()
    for page in _toc_pages():
        f = html / f"{page}.html"
        assert f.exists(), f"missing page {f}"
        text = f.read_text()
        assert not CDN.findall(text), f"{page}: loads from a CDN: {CDN.findall(text)[:3]}"
        if page.startswith("book/notebooks/"):
            assert "plotly.min.js" in text, f"{page}: the page does not load the local plotly.js"
            plots = text.count("Plotly.newPlot(")
            assert plots >= 1, f"{page}: no interactive figure"
            # every plotly figure carries a title (its caption) -- the layout object follows the data
            for call in text.split("Plotly.newPlot(")[1:]:
                assert '"title":{"text":' in call.split("Plotly.newPlot(")[0][:400_000], f"{page}: figure without title"


def test_book_content_landmarks(built_book):
    """The pages a reader and a teacher rely on carry their key content."""
    root, _, _ = built_book
    html = root / "_build" / "html" / "book"
    intro = (html / "intro.html").read_text()
    assert "pipeline.svg" in intro and "<figcaption" in intro, "intro: the pipeline figure with a caption"
    exercises = (html / "exercises.html").read_text()
    assert exercises.count("dropdown") >= 5, "exercises: solutions hidden behind toggles"
    n_bib = (root / "book" / "references.bib").read_text().count("\n@")
    references = (html / "references.html").read_text()
    assert references.count('class="citation"') == n_bib, "references: every bib entry is cited and listed"
    evaluation = (html / "notebooks" / "05_evaluation.html").read_text()
    assert "Table 1" in evaluation and "Table 2" in evaluation
    assert evaluation.count("Plotly.newPlot(") >= 4
    method = (html / "method.html").read_text()
    assert "MathJax" in method and "\\cos" in method, "method: Eq. 1 rendered by MathJax"


def test_deleted_model_retrains_to_identical_predictions(built_book, tmp_path):
    """Delete one trained model (3D sparse) from the finished ci run and rerun notebook 04: the predictions of every
    model come back byte for byte (the other models from the cache, the deleted one retrained from its own seed)."""
    from echo_utils import segmentation
    from echo_utils.config import RunPaths, load_config

    _, executed, _ = built_book
    nb = nbformat.read(next(p for p in executed if p.name.startswith("04_")), as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    values: dict = {}
    exec(injected.source, values)  # the parameters papermill injected: params, run_dir, device
    paths = RunPaths(values["run_dir"])
    cfg = load_config(values["params"])
    before = {p.relative_to(paths.predictions): p.read_bytes() for p in sorted(paths.predictions.rglob("*.nii.gz"))}
    assert any(p.parts[0] == "3d_sparse" for p in before)
    shutil.rmtree(segmentation.train.results_folder(cfg, paths, "3d_sparse"))
    shutil.rmtree(paths.predictions / "3d_sparse")
    run_notebooks(values["params"], only=["04"], run_dir=paths.root, output_dir=tmp_path)
    after = {p.relative_to(paths.predictions): p.read_bytes() for p in sorted(paths.predictions.rglob("*.nii.gz"))}
    assert after.keys() == before.keys()
    assert [k for k in before if after[k] != before[k]] == []
