"""Compatibility shim: nnU-Net glue moved to :mod:`echo_utils.segmentation` (one module per concept).

Kept so that ``from echo_utils import nnunet`` and ``nnunet.<name>`` keep working; ``prediction_slider`` (a plotly
widget) is re-exported from its home, :mod:`echo_utils.report.widgets`.
"""

from __future__ import annotations

from .report.widgets import prediction_slider
from .segmentation import *  # noqa: F401,F403 - the public names, re-exported
from .segmentation import __all__ as _segmentation_all

__all__ = [*_segmentation_all, "prediction_slider"]
