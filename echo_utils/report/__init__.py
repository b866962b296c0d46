"""Reporting: the paper's published numbers, this run's tables and statements, and every figure of the book.

* :mod:`~echo_utils.report.paper`: Tables 1-2 and the Fig. 2-3 medians as published;
* :mod:`~echo_utils.report.tables`: Table 1 (Dice, HD, MAD at ED/ES), Table 2 (EDV, ESV, EF), Fig. 3 smoothness
  tables, paired tests, orderings, and the sentences notebooks print, computed from the run;
* :mod:`~echo_utils.report.figures`: plotly figures and widgets.

The algorithm packages (registration, pseudo-labels, segmentation, data, metrics) never import this package.
"""
