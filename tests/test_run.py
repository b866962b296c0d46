"""The papermill runner: order, parameters, failure reporting, and keeping finished work."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from echo_utils.config import ConfigError
from echo_utils.run import NotebookFailed, discover_notebooks, main, run_notebooks, setup_notebook

PARAMS_CELL = 'params = "notebooks/params/demo.yaml"\nrun_dir = None\ndevice = None'


def _notebook(path: Path, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell(PARAMS_CELL)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), p, nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def nb_dir(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    _notebook(d / "01_ok.ipynb", "import pathlib\npathlib.Path(run_dir, 'ok.json').write_text(params)")
    _notebook(d / "02_fail.ipynb", "x = 1\nraise ValueError('boom from cell')")
    _notebook(d / "03_never.ipynb", "pathlib.Path(run_dir, 'never').write_text('ran')")
    (d / "README.ipynb").write_text("{}")  # not an NN_ notebook: ignored
    return d


def test_discover_orders_and_filters(nb_dir):
    assert [p.name for p in discover_notebooks(None, nb_dir)] == ["01_ok.ipynb", "02_fail.ipynb", "03_never.ipynb"]
    assert [p.name for p in discover_notebooks(["03", "01_ok"], nb_dir)] == ["01_ok.ipynb", "03_never.ipynb"]
    with pytest.raises(ConfigError, match="07"):
        discover_notebooks(["07"], nb_dir)


def test_parameters_are_injected(nb_dir, tmp_path, ci_params):
    out = tmp_path / "out"
    run = tmp_path / "run"
    executed = run_notebooks(ci_params, only=["01"], run_dir=run, output_dir=out, notebook_dir=nb_dir, log=lambda *a, **k: None)
    assert executed == [out / "01_ok.ipynb"]
    assert (run / "ok.json").read_text() == str(ci_params.resolve())
    nb = nbformat.read(out / "01_ok.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)


def test_failure_names_notebook_and_cell_and_keeps_previous_copy(nb_dir, tmp_path, ci_params):
    out = tmp_path / "out"
    out.mkdir()
    previous = out / "02_fail.ipynb"
    previous.write_text("previous successful run")
    with pytest.raises(NotebookFailed) as e:
        run_notebooks(ci_params, run_dir=tmp_path / "run", output_dir=out, notebook_dir=nb_dir, log=lambda *a, **k: None)
    msg = str(e.value)
    assert "02_fail.ipynb" in msg and "cell 3" in msg and "boom from cell" in msg
    partial = out / "02_fail.partial.ipynb"
    assert partial.exists() and str(partial) in msg
    # the partial copy holds the traceback, the previous copy is untouched, and the run stopped there
    assert "boom from cell" in json.dumps(nbformat.read(partial, as_version=4).cells[-1].outputs)
    assert previous.read_text() == "previous successful run"
    assert not (tmp_path / "run" / "never").exists()
    assert (out / "01_ok.ipynb").exists()


def test_cli_exit_codes(nb_dir, tmp_path, ci_params, capsys):
    args = ["--params", str(ci_params), "--run-dir", str(tmp_path / "r"), "--output-dir", str(tmp_path / "o"),
            "--notebook-dir", str(nb_dir)]
    assert main(args + ["--only", "01"]) == 0
    assert main(args) == 1
    assert "02_fail.ipynb failed in cell 3" in capsys.readouterr().err


def test_bad_profile_stops_before_any_work(nb_dir, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nnnunet:\n  epochz: 3\n")
    assert main(["--params", str(bad), "--run-dir", str(tmp_path / "r"), "--output-dir", str(tmp_path / "o"),
                 "--notebook-dir", str(nb_dir)]) == 1
    assert "nnunet.epochz" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_setup_notebook(tmp_path, ci_params):
    ctx = setup_notebook(ci_params, tmp_path / "run", "cpu")
    assert ctx.cfg.name == "ci" and ctx.device == "cpu" and ctx.run_dir == (tmp_path / "run").resolve()
    with pytest.raises(ConfigError, match="does not exist"):
        setup_notebook(ci_params, tmp_path / "missing", create=False)
