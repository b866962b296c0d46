"""Reporting: the paper's published numbers, this run's tables and statements, and every figure of the book.

* :mod:`~echo_utils.report.paper`: Tables 1-2 and the Fig. 2-3 medians as published, and the paper's claims;
* :mod:`~echo_utils.report.cohort`: what notebooks 01 and 03 show of the cohort (overview, TED pairing, frame
  matching, the sin² law in one sentence);
* :mod:`~echo_utils.report.registration` and :mod:`~echo_utils.report.registration_comparison`: the registration
  chapter's figures and sentences (displacement fields, the dead-network check in words, the five-way comparison);
* :mod:`~echo_utils.report.confidence` and :mod:`~echo_utils.report.masking`: the pseudo-label confidence, and the
  confidence-masked 3D model in one sentence and beside plain 3D dense;
* :mod:`~echo_utils.report.segmentation`: notebook 04 (training sets, the 3D plan beside the paper's, training
  curves and verdicts, the predictions of one sequence, times, the command line);
* :mod:`~echo_utils.report.tables`: Table 1 (Dice, HD, MAD at ED/ES, paired tests) and Table 2 (EDV, ESV, EF);
* :mod:`~echo_utils.report.smoothness`: Fig. 3 (Eq. 2 smoothness, inconsistency, the ordering claim);
* :mod:`~echo_utils.report.fig2`: Fig. 2 scoring of the pseudo-labels (per frame, per video, paired tests);
* :mod:`~echo_utils.report.pseudo_labels`: what notebook 03 shows of them (the store's summary, the score, mode and
  assembly tables with their captions, the yardstick, the time per pair);
* :mod:`~echo_utils.report.fig2_summary`: Fig. 2 beside the paper, with the 2D sparse nnU-Net and the controls;
* :mod:`~echo_utils.report.figures` and :mod:`~echo_utils.report.widgets`: plotly figures, images and sliders.

The ``*_statements`` functions return the sentences notebooks print, computed from the run. The algorithm packages
(data, registration, pseudo-labels, segmentation, metrics) never import this package.
"""
