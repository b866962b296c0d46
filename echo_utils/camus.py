"""CAMUS and TED readers: the stable import path ``echo_utils.camus`` of DESIGN.md's public API.

Only the contract names live here (``EchoSequence``, ``load_sequence``, ``load_ted_sequence``, ``iter_sequences``,
``resize_sequence``). The readers are :mod:`echo_utils.data.camus` (every other name: layouts, split files, the
TED -> CAMUS map, ``EchoDataError``); the study's cohort, split and selections are :mod:`echo_utils.data.cohort`.
Nothing inside ``echo_utils`` imports this module.
"""

from .data.camus import EchoSequence, iter_sequences, load_sequence, load_ted_sequence, resize_sequence

__all__ = ["EchoSequence", "load_sequence", "load_ted_sequence", "iter_sequences", "resize_sequence"]
