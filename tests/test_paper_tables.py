"""The paper's published comparison tables say which statistic each row reports, and the shipped TED -> CAMUS
mapping has the structure of vital's camus2ted.py (TED ids enumerate the sorted CAMUS folders)."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd

from echo_utils.data import camus
from echo_utils.report import paper as P
from echo_utils.report import tables as TB


def test_every_table2_row_states_its_statistic():
    stat = P.PAPER_TABLE2_STATISTIC
    assert list(stat.index) == list(P.PAPER_TABLE2.index)
    for model in ("intra-observer", "2d_sparse", "2d_dense", "3d_dense"):
        assert stat[model] == "MAE"
    # CLAS: the paper prints 7.7 / 4.4 / 4.0 as MAE; CLAS's README reports 15.1 / 8.4 / 6.7 as standard deviations
    assert [P.PAPER_TABLE2.loc["CLAS", (q, "mae")] for q in ("EDV", "ESV", "EF")] == [7.7, 4.4, 4.0]
    assert "MAE as printed in the paper" in stat["CLAS"] and "sd 15.1 / 8.4 / 6.7" in stat["CLAS"]
    readme = P.CLAS_README_TABLE2
    assert readme.loc["sd"].tolist() == [15.1, 8.4, 6.7]
    assert (readme.loc["corr", "EF"], readme.loc["bias", "EF"]) == (0.926, -0.1)
    # the README's EF correlation and bias are the paper's: only the third statistic differs
    assert P.PAPER_TABLE2.loc["CLAS", ("EF", "corr")] == readme.loc["corr", "EF"]
    assert P.PAPER_TABLE2.loc["CLAS", ("EF", "bias")] == readme.loc["bias", "EF"]


def test_table2_side_by_side_shows_the_statistic_column():
    ref = pd.DataFrame({"EDV": [100.0, 120.0, 90.0], "ESV": [40.0, 55.0, 35.0]},
                       index=pd.Index(["p1", "p2", "p3"], name="patient"))
    ref["EF"] = 100 * (ref["EDV"] - ref["ESV"]) / ref["EDV"]
    auto = ref + 2.0
    styler = TB.table2_side_by_side(TB.table2({"2d_sparse": auto}, ref), caption="Table 2")
    data = styler.data
    col = TB.TABLE2_STATISTIC_COLUMN
    assert col in data.columns and data.columns[-1] == col
    assert data.loc[("this run", "2D sparse"), col] == "MAE"
    assert data.loc[("paper (CAMUS)", "CLAS"), col] == P.PAPER_TABLE2_STATISTIC["CLAS"]
    assert data.loc[("paper (CAMUS)", "3D dense"), col] == "MAE"
    assert data.loc[("paper (CAMUS)", "CLAS"), ("EF (%)", "MAE")] == "4.0"  # the value itself is unchanged


def _rows(path):
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    reader = csv.reader(lines)
    assert next(reader) == ["ted_id", "camus_id"]
    return np.array([[int(c) for c in row] for row in reader])


def test_shipped_ted2camus_is_strictly_increasing():
    """vital's camus2ted.py numbers TED patients 1, 2, ... by enumerating the sorted CAMUS patient folders, so the
    mapping is strictly increasing in both columns, in file order."""
    rows = _rows(camus.TED_MAP_FILE)
    assert rows.shape == (94, 2)
    assert (np.diff(rows[:, 0]) > 0).all() and (np.diff(rows[:, 1]) > 0).all()
    assert (rows[:, 1] >= rows[:, 0]).all()  # enumerating a subset of sorted folders never runs ahead of them
    m = camus.read_ted_map()
    assert [int(k[len("patient"):]) for k in m] == rows[:, 0].tolist()
    assert [int(v[len("patient"):]) for v in m.values()] == rows[:, 1].tolist()


def test_the_monotonicity_check_catches_a_swap(tmp_path):
    """The control: two swapped CAMUS ids (each still unique) break the check."""
    rows = _rows(camus.TED_MAP_FILE)
    rows[[3, 4], 1] = rows[[4, 3], 1]
    bad = tmp_path / "swapped.csv"
    bad.write_text("ted_id,camus_id\n" + "\n".join(f"{a},{b}" for a, b in rows) + "\n")
    got = _rows(bad)
    assert len(camus.read_ted_map(bad)) == 94  # the reader accepts it: unique ids
    assert not (np.diff(got[:, 1]) > 0).all()
