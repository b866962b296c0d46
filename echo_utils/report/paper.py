"""The paper's published numbers: Tables 1-2 and the medians of Figs. 2-3, with the claims they support.

Source: Tafuro et al., "Temporally consistent segmentation of echocardiograms with pseudo-labels" (the paper the
book reproduces): Tables 1 and 2 as printed, and medians read off the box plots of its Figs. 2 and 3 (two
significant figures at best). Everything here is data; nothing is computed from a run. Notebooks show these
tables next to this run's numbers instead of typing them in.

Row keys are the model names of :mod:`echo_utils.labels` (``2d_sparse``, ``2d_dense``, ``3d_dense``) and the
paper's other rows (``intra-observer``, ``CLAS``); Fig. 2 rows are the pseudo-label directions and ``2d_sparse``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = [
    "METRICS",
    "PAPER_TABLE1",
    "PAPER_TABLE2",
    "PAPER_TABLE2_STATISTIC",
    "CLAS_README_TABLE2",
    "PAPER_FIG2_MEDIANS",
    "PAPER_FIG3_MEDIANS",
    "FIG2_KINDS",
    "FIG3_ORDER",
    "verdict",
    "compare_with_paper",
]

METRICS = ("dice", "hd", "mad")


def _paper_table1() -> pd.DataFrame:
    nan = math.nan
    rows = {
        # model: ED (LV, EPI, LA) x (dice, hd, mad), then ES (same)
        "intra-observer": [0.945, 4.6, 1.4, 0.957, 5.0, 1.7, nan, nan, nan,
                           0.930, 4.5, 1.3, 0.951, 5.0, 1.7, nan, nan, nan],
        "CLAS": [0.947, 4.6, 1.4, 0.961, 4.8, 1.5, 0.902, 5.2, 1.9,
                 0.929, 4.6, 1.4, 0.955, 4.9, 1.6, 0.927, 4.8, 1.8],
        "2d_sparse": [0.955, 4.1, 1.2, 0.965, 4.4, 1.4, 0.906, 4.9, 1.9] + [nan] * 9,
        "2d_dense": [0.950, 4.2, 1.3, 0.963, 4.3, 1.4, 0.902, 5.0, 2.0] + [nan] * 9,
        "3d_dense": [0.952, 4.2, 1.3, 0.961, 4.6, 1.5, 0.899, 5.2, 2.0,
                     0.939, 4.0, 1.2] + [nan] * 6,
    }  # fmt: skip
    cols = pd.MultiIndex.from_product([("ED", "ES"), ("LV", "EPI", "LA"), METRICS], names=["phase", "structure", "metric"])
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols).rename_axis("model")


def _paper_table2() -> pd.DataFrame:
    rows = {
        "intra-observer": [0.978, -2.8, 6.5, 0.981, -0.1, 4.5, 0.896, -2.3, 4.7],
        "CLAS": [0.958, -0.7, 7.7, 0.979, -0.0, 4.4, 0.926, -0.1, 4.0],
        "2d_sparse": [0.972, 0.0, 6.0, 0.98, -0.6, 4.8, 0.827, 1.3, 5.0],
        "2d_dense": [0.972, 0.4, 5.7, 0.986, -0.3, 4.2, 0.841, 1.3, 4.6],
        "3d_dense": [0.978, -1.4, 4.8, 0.986, -0.1, 4.0, 0.859, -0.1, 4.6],
    }
    cols = pd.MultiIndex.from_product([("EDV", "ESV", "EF"), ("corr", "bias", "mae")], names=["index", "stat"])
    return pd.DataFrame.from_dict(rows, orient="index", columns=cols).rename_axis("model")


PAPER_TABLE1 = _paper_table1()
"""The paper's Table 1: mean Dice, HD (mm) and MAD (mm) on the 50 CAMUS test patients, columns
``(phase, structure, metric)``. Its "LV myocardium" columns follow the CAMUS epicardium convention, hence the
structure ``EPI``. The ES cells of the three nnU-Nets are not given in the text of the paper, except the 3D model's
LV cavity: they are NaN."""

PAPER_TABLE2 = _paper_table2()
"""The paper's Table 2: agreement (Pearson correlation, bias, mean absolute error) of EDV (mL), ESV (mL) and EF (%)
with the reference on the CAMUS test set, columns ``(index, stat)``. The third statistic is printed under "MAE"
for every row, but not every source reports an MAE: :data:`PAPER_TABLE2_STATISTIC` says, per row, what the
``mae`` columns hold."""

CLAS_README_TABLE2 = pd.DataFrame(
    {"EDV": [None, None, 15.1], "ESV": [None, None, 8.4], "EF": [0.926, -0.1, 6.7]},
    index=pd.Index(["corr", "bias", "sd"], name="stat"),
    dtype=float,
)
"""CLAS's own README (Wei et al., MICCAI 2020; ``tumuzhuantoujun/CLAS-Pytorch``), CAMUS test set: EF correlation
0.926, bias -0.1 and standard deviation 6.7 points; EDV and ESV standard deviations 15.1 and 8.4 mL (their
correlation and bias are not taken from the README here: NaN). The paper's Table 2 lists 7.7 / 4.4 / 4.0 for CLAS
under "MAE" instead."""

PAPER_TABLE2_STATISTIC = pd.Series(
    {
        "intra-observer": "MAE",
        "CLAS": "MAE as printed in the paper; CLAS's README reports sd 15.1 / 8.4 / 6.7 (EDV / ESV / EF) instead",
        "2d_sparse": "MAE",
        "2d_dense": "MAE",
        "3d_dense": "MAE",
    },
    name="statistic",
).rename_axis("model")
"""What the ``mae`` columns of :data:`PAPER_TABLE2` report, per row: the paper's mean absolute error for its own
models and the intra-observer variability; for CLAS, the values the paper prints as MAE, while CLAS's own README
reports standard deviations (:data:`CLAS_README_TABLE2`), so a reader does not compare a spread with an error
without knowing it."""

FIG2_KINDS = ("2d_sparse", "bidirectional", "forward", "backward")
"""The four competitors of Fig. 2: the 2D sparse nnU-Net and the three pseudo-label directions."""

PAPER_FIG2_MEDIANS = pd.DataFrame(
    [[0.958, 2.7, 8.5, 0.913, 2.8, 10.0],
     [0.962, 2.5, 8.3, 0.922, 2.4, 9.5],
     [0.943, 4.0, 13.5, 0.880, 3.8, 14.5],
     [0.942, 4.0, 13.0, 0.870, 4.0, 15.0]],
    index=pd.Index(FIG2_KINDS, name="kind"),
    columns=pd.MultiIndex.from_product([("LV", "MYO"), ("dice", "mad_px", "hd_px")], names=["structure", "metric"]),
)  # fmt: skip
"""Medians read off the paper's Fig. 2: per-video mean Dice, MAD and HD (pixels at 512x512) of 94 TED sequences
from ED to ES, for the LV cavity and the myocardium ring. The columns match the per-video score tables of
notebook 03 (``dice``, ``mad_px``, ``hd_px``)."""

PAPER_FIG3_MEDIANS = pd.DataFrame(
    {"LV": [7e6, 4e6, 2.5e5], "MYO": [1.1e7, 4e6, 8e4], "LA": [6.5e6, 2.5e6, 8e4]},
    index=pd.Index(["2d_sparse", "2d_dense", "3d_dense"], name="model"),
)
"""Medians read off the paper's Fig. 3: smoothness (Eq. 2) of the CAMUS test predictions, area in pixels at
512x512 and unit frame spacing (px^2/frame^3)."""

FIG3_ORDER = ("3d_dense", "2d_dense", "2d_sparse")
"""The paper's Fig. 3 claim, smoothest first: 3D dense < 2D dense < 2D sparse (median Eq. 2), for every
structure."""


def verdict(better: bool, worse: bool) -> str:
    """One word for a two-criteria comparison: ``"beats"`` when better on both criteria, ``"does not beat"`` when
    better on neither, ``"is mixed against"`` otherwise. ``better`` / ``worse`` are the two criteria's outcomes
    (e.g. higher median Dice, lower median HD): both True is a win."""
    if better and worse:
        return "beats"
    if not (better or worse):
        return "does not beat"
    return "is mixed against"


def compare_with_paper(ours: float, paper: float, *, higher_is_better: bool) -> str:
    """One short sentence comparing a value of this run with the paper's, e.g. "ours 0.93 is worse than the
    paper's 0.955"; "not comparable" when either is missing."""
    ours, paper = float(ours), float(paper)
    if not (np.isfinite(ours) and np.isfinite(paper)):
        return "not comparable (a value is missing)"
    better = ours > paper if higher_is_better else ours < paper
    rel = "better than" if better else ("equal to" if ours == paper else "worse than")
    return f"ours {ours:.3g} is {rel} the paper's {paper:.3g}"
