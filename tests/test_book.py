"""End-to-end smoke test: every notebook runs on the `ci` profile, and the book builds offline without warnings.

The book is built in a temporary copy of the project's book sources, so the test never touches `book/notebooks`
or `_build` of a real `make book` run.
"""

from __future__ import annotations

import re
import shlex
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

# any script or stylesheet (or preloaded asset) fetched from a host other than the book's own
OUTSIDE_ASSET = re.compile(
    r"""<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*["']((?:https?:)?//(?!localhost\b|127\.0\.0\.1\b)[^"']*)["']""",
    re.I,
)



def toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]


_BUILT: dict = {}


def build_ci_book(tmp_path_factory):
    """Run the notebooks on ``ci`` and build the book strictly, in a temporary project; once per test session.

    The run directory lies inside the temporary project, as ``runs/ci`` lies inside a clone, so the published
    pages can show it relative to the project. ``test_browser.py`` opens the same build.
    """
    if "book" not in _BUILT:
        root = tmp_path_factory.mktemp("project")
        for name in ("_config.yml", "_toc.yml"):
            shutil.copy(ROOT / name, root / name)
        shutil.copytree(
            ROOT / "book",
            root / "book",
            ignore=shutil.ignore_patterns("notebooks", "plotly.min.js", "mathjax", "_build"),
        )
        executed = run_notebooks(
            ROOT / "notebooks" / "params" / "ci.yaml",
            run_dir=root / "runs" / "ci",
            output_dir=root / "book" / "notebooks",
        )
        rc = build_book(strict=True, root=root)
        _BUILT["book"] = (root, executed, rc)
    return _BUILT["book"]


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    return build_ci_book(tmp_path_factory)


@pytest.mark.slow
def test_every_toc_notebook_is_executed_without_errors(built_book):
    root, executed, _ = built_book
    notebooks = [p for p in toc_pages() if p.startswith("book/notebooks/")]
    assert sorted(p.name for p in executed) == sorted(Path(p).name + ".ipynb" for p in notebooks)
    for page in notebooks:
        nb = nbformat.read(root / f"{page}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(c.get("execution_count") for c in code), f"{page}: not every cell was executed"
        errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{page}: {errors[0]['ename']}"
        assert sum(1 for c in nb.cells if "parameters" in c.metadata.get("tags", [])) == 1


@pytest.mark.slow
def test_book_builds_strict_without_warnings(built_book):
    _, _, rc = built_book
    assert rc == 0, "jupyter-book build -W failed: see the captured output for the warning"


@pytest.mark.slow
def test_built_html_has_every_page_and_no_cdn(built_book):
    root, _, _ = built_book
    html = root / "_build" / "html"
    assert (html / "index.html").exists()
    assert (html / "_static" / "plotly.min.js").exists()
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists(), "MathJax 3 is served from _static"
    assert list((html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff")), "fonts"
    for page in toc_pages():
        f = html / f"{page}.html"
        assert f.exists(), f"missing page {f}"
        text = f.read_text()
        assert not CDN.findall(text), f"{page}: loads from a CDN: {CDN.findall(text)[:3]}"
        outside = OUTSIDE_ASSET.findall(text)
        assert not outside, f"{page}: a script or stylesheet from another host: {outside[:3]}"
        assert "unpkg.com" not in text and "THEBE_JS_URL" not in text, f"{page}: names the Thebe CDN"
        if page.startswith("book/notebooks/"):
            assert "plotly.min.js" in text, f"{page}: the page does not load the local plotly.js"
            plots = text.count("Plotly.newPlot(")
            assert plots >= 1, f"{page}: no interactive figure"
            # every plotly figure carries a title (its caption) -- the layout object follows the data, so a figure with
            # many traces (Fig. 4's outlines: ~0.5 MB on ci) has its title far from the call
            for call in text.split("Plotly.newPlot(")[1:]:
                assert '"title":{"text":' in call, f"{page}: figure without title"


@pytest.mark.slow
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


@pytest.mark.slow
def test_deleted_model_retrains_to_identical_predictions(built_book, tmp_path):
    """Delete one trained model (3D sparse) from the finished ci run and rerun notebook 04: the predictions of every
    model come back byte for byte (the other models from the cache, the deleted one retrained from its own seed)."""
    from echo_utils import segmentation
    from echo_utils.config import load_config
    from echo_utils.rundir import RunPaths
    from echo_utils.study import Study, stages

    root, executed, _ = built_book
    nb = nbformat.read(next(p for p in executed if p.name.startswith("04_")), as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    values: dict = {}
    exec(injected.source, values)  # the parameters papermill injected: params, run_dir, device
    paths = RunPaths(root / values["run_dir"])  # the published copy shows it relative to the built project
    cfg = load_config(values["params"])
    before = {p.relative_to(paths.predictions): p.read_bytes() for p in sorted(paths.predictions.rglob("*.nii.gz"))}
    assert any(p.parts[0] == "3d_sparse" for p in before)
    shutil.rmtree(segmentation.train.results_folder(stages.nnunet_run(Study(cfg, paths)), "3d_sparse"))
    shutil.rmtree(paths.predictions / "3d_sparse")
    run_notebooks(values["params"], only=["04"], run_dir=paths.root, output_dir=tmp_path)
    after = {p.relative_to(paths.predictions): p.read_bytes() for p in sorted(paths.predictions.rglob("*.nii.gz"))}
    assert after.keys() == before.keys()
    assert [k for k in before if after[k] != before[k]] == []


def _exercise_commands() -> list[list[str]]:
    """The shell commands of the exercises chapter's bash blocks, continuation lines joined, split like a shell."""
    text = (ROOT / "book" / "exercises.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.S)
    commands, pending = [], ""
    for line in "\n".join(blocks).replace("\\\n", " ").splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line + "\n"
        try:
            commands.append(shlex.split(pending))
            pending = ""
        except ValueError:  # an open quote: the command goes on on the next line
            continue
    assert not pending, f"exercises: unbalanced quotes in {pending!r}"
    return commands


def test_exercise_commands_are_one_liners_with_valid_overrides(tmp_path, capsys):
    """Every exercise command is a plain command (no heredoc, no helper script), and each runner command's
    profile and --set overrides pass validation (``--check``: nothing runs, nothing is written)."""
    from echo_utils.run import main

    text = (ROOT / "book" / "exercises.md").read_text()
    assert "<<" not in text and "/tmp/" not in text, "exercises: heredoc helpers or /tmp scripts are back"
    commands = _exercise_commands()
    runs = [c for c in commands if c[:3] == [".venv/bin/python", "-m", "echo_utils.run"]]
    assert len(runs) >= 9 and any("--set" in c for c in runs)
    assert any(c[0] == ".venv/bin/papermill" and "overrides" in c for c in commands), "the papermill form is shown"
    for k, cmd in enumerate(runs):
        argv = cmd[3:]
        if "--run-dir" in argv:  # validate against a fresh run directory, not one left by an earlier exercise
            argv[argv.index("--run-dir") + 1] = str(tmp_path / f"run{k}")
        assert main(argv + ["--check"]) == 0, f"exercise command rejected: {' '.join(cmd)}\n{capsys.readouterr().err}"
    assert main(["--params", "notebooks/params/ci.yaml", "--set", "registration.alpah=0", "--check"]) == 1, (
        "the control: a misspelt key is rejected"
    )


def test_clean_executed_notebooks_relative_paths_and_terminal_output(tmp_path):
    """Publication clean-up of an executed notebook: machine paths become project-relative, a progress bar's
    carriage-return updates collapse to its last state in one output, and a clean notebook is left alone."""
    from echo_utils.book import clean_executed_notebooks

    root = tmp_path / "project"
    nbdir = root / "book" / "notebooks"
    nbdir.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(f'params = "{root}/notebooks/params/ci.yaml"\nrun_dir = "{root}/runs/ci"\n')
    params.metadata["tags"] = ["injected-parameters"]
    work = nbformat.v4.new_code_cell("train()")
    work.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=f"run directory {root}/runs/ci\n"),
        nbformat.v4.new_output("stream", name="stderr", text="\rfit:   0%|          | 0/2"),
        nbformat.v4.new_output("stream", name="stderr", text="\rfit:  50%|#####     | 1/2"),
        nbformat.v4.new_output("stream", name="stderr", text="\rfit: 100%|##########| 2/2"),
        nbformat.v4.new_output("stream", name="stderr", text="\n"),
        nbformat.v4.new_output("display_data", data={"text/html": f"<td>{root}/runs/ci/nnunet</td>"}),
    ]
    nb.cells = [params, work]
    nbformat.write(nb, nbdir / "01_x.ipynb")
    clean = nbformat.v4.new_notebook()
    clean.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(clean, nbdir / "02_clean.ipynb")

    assert clean_executed_notebooks(nbdir, root) == [nbdir / "01_x.ipynb"]
    text = (nbdir / "01_x.ipynb").read_text()
    assert str(root) not in text
    out = nbformat.read(nbdir / "01_x.ipynb", as_version=4)
    assert out.cells[0].source == 'params = "notebooks/params/ci.yaml"\nrun_dir = "runs/ci"\n'
    outputs = out.cells[1].outputs
    assert [o.get("name", o.output_type) for o in outputs] == ["stdout", "stderr", "display_data"]
    assert outputs[0].text == "run directory runs/ci\n"
    assert outputs[1].text == "fit: 100%|##########| 2/2\n"
    assert outputs[2].data["text/html"] == "<td>runs/ci/nnunet</td>"
    assert clean_executed_notebooks(nbdir, root) == [], "a second pass changes nothing"
