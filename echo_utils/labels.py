"""The project's vocabulary: label values, structures, model, direction and registration names, and their colours.

This is the single source of every name and colour the notebooks and the book show, so that one thing looks the
same in every chapter (the 2D sparse nnU-Net is always pink, forward propagation always orange, the LV cavity
always red).

Label values follow CAMUS (Leclerc et al., IEEE TMI 2019): 0 background, 1 LV cavity (endocardium), 2 LV myocardium,
3 left atrium. *Structures* are sets of labels scored together: ``MYO`` is the myocardium ring (label 2) and ``EPI``
the CAMUS "epicardium" (cavity and myocardium, labels 1 and 2), the convention of the paper's "LV myocardium"
columns in Table 1.

Keys used across the package:

* models (the four nnU-Nets of notebook 04, Table 1): ``2d_sparse``, ``2d_dense``, ``3d_dense``, ``3d_sparse``,
  plus ``reference`` for the manual or dense truth; :data:`OPTIONAL_MODELS` are trained only when a profile's
  ``nnunet.models`` names them (``3d_dense_masked``: 3D dense with its low-confidence pseudo-labelled pixels
  ignored); :data:`ALL_MODELS` is both, in the book's order;
* directions of label propagation (notebook 03, Fig. 2): ``forward`` (from ED), ``backward`` (from ES),
  ``bidirectional`` (Eq. 1);
* registrations that drive the propagation (notebooks 02-03): ``dlir`` (the trained B-spline network),
  ``instance`` (per-pair optimised B-spline, no training) and ``identity`` (no motion: the control).

Colours are hex strings ``"#rrggbb"`` (plotly accepts them directly); :func:`rgba` adds an opacity.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

__all__ = [
    "BACKGROUND",
    "LV_CAVITY",
    "LV_MYOCARDIUM",
    "LEFT_ATRIUM",
    "LABEL_NAMES",
    "LABEL_VALUES",
    "FOREGROUND",
    "LABEL_COLORS",
    "STRUCTURES",
    "STRUCTURE_NAMES",
    "STRUCTURE_SHORT_NAMES",
    "STRUCTURE_COLORS",
    "MODELS",
    "OPTIONAL_MODELS",
    "ALL_MODELS",
    "MODEL_NAMES",
    "MODEL_COLORS",
    "REFERENCE",
    "DIRECTIONS",
    "DIRECTION_NAMES",
    "DIRECTION_COLORS",
    "REGISTRATIONS",
    "REGISTRATION_NAMES",
    "REGISTRATION_COLORS",
    "COLORS",
    "NAMES",
    "color",
    "name",
    "rgba",
    "ordered",
    "structure_mask",
]

# ----------------------------------------------------------------------------------------------------------------
# label values (CAMUS)

BACKGROUND, LV_CAVITY, LV_MYOCARDIUM, LEFT_ATRIUM = 0, 1, 2, 3

#: Label value -> name, as in the CAMUS data set.
LABEL_NAMES: dict[int, str] = {
    BACKGROUND: "background",
    LV_CAVITY: "LV cavity",
    LV_MYOCARDIUM: "LV myocardium",
    LEFT_ATRIUM: "left atrium",
}
#: Name -> label value (the ``labels`` entry of an nnU-Net ``dataset.json``).
LABEL_VALUES: dict[str, int] = {v: k for k, v in LABEL_NAMES.items()}
#: The foreground label values, in order.
FOREGROUND: tuple[int, ...] = (LV_CAVITY, LV_MYOCARDIUM, LEFT_ATRIUM)

# ----------------------------------------------------------------------------------------------------------------
# structures: sets of labels scored together

#: Structure -> the label values that form it.
STRUCTURES: dict[str, tuple[int, ...]] = {
    "LV": (LV_CAVITY,),
    "MYO": (LV_MYOCARDIUM,),
    "EPI": (LV_CAVITY, LV_MYOCARDIUM),
    "LA": (LEFT_ATRIUM,),
}
STRUCTURE_NAMES: dict[str, str] = {
    "LV": "LV cavity",
    "MYO": "LV myocardium (ring)",
    "EPI": "LV epicardium (cavity + myocardium)",
    "LA": "left atrium",
}
#: Compact names for table headers.
STRUCTURE_SHORT_NAMES: dict[str, str] = {"LV": "LV", "MYO": "MYO (ring)", "EPI": "MYO (epicardium)", "LA": "LA"}

# ----------------------------------------------------------------------------------------------------------------
# models, directions, registrations

REFERENCE = "reference"
#: The default models (Table 1's four nnU-Nets, the default of ``nnunet.models``).
MODELS: tuple[str, ...] = ("2d_sparse", "2d_dense", "3d_dense", "3d_sparse")
#: Models trained only when ``nnunet.models`` names them.
OPTIONAL_MODELS: tuple[str, ...] = ("3d_dense_masked",)
ALL_MODELS: tuple[str, ...] = (*MODELS, *OPTIONAL_MODELS)
MODEL_NAMES: dict[str, str] = {
    "2d_sparse": "2D sparse",
    "2d_dense": "2D dense",
    "3d_dense": "3D dense",
    "3d_sparse": "3D sparse",
    "3d_dense_masked": "3D dense, confidence-masked",
    REFERENCE: "reference",
}
DIRECTIONS: tuple[str, ...] = ("forward", "backward", "bidirectional")
DIRECTION_NAMES: dict[str, str] = {"forward": "forward", "backward": "backward", "bidirectional": "bidirectional"}
REGISTRATIONS: tuple[str, ...] = ("dlir", "instance", "elastix", "optical_flow", "identity")
REGISTRATION_NAMES: dict[str, str] = {
    "dlir": "DLIR network",
    "instance": "InstanceBSpline",
    "elastix": "elastix B-spline",
    "optical_flow": "TV-L1 optical flow",
    "identity": "identity (no motion)",
}

# ----------------------------------------------------------------------------------------------------------------
# colours: one per thing, all different, so figures can mix kinds (Fig. 2 shows the 2D sparse model next to the
# three directions). Structures keep the classic red/green/blue of echo label overlays.

LABEL_COLORS: dict[int, str] = {LV_CAVITY: "#d62728", LV_MYOCARDIUM: "#2ca02c", LEFT_ATRIUM: "#1f77b4"}
STRUCTURE_COLORS: dict[str, str] = {
    "LV": LABEL_COLORS[LV_CAVITY],
    "MYO": LABEL_COLORS[LV_MYOCARDIUM],
    "EPI": "#98df8a",
    "LA": LABEL_COLORS[LEFT_ATRIUM],
}
MODEL_COLORS: dict[str, str] = {
    "2d_sparse": "#e377c2",
    "2d_dense": "#8c564b",
    "3d_dense": "#9467bd",
    "3d_sparse": "#c49c94",
    "3d_dense_masked": "#393b79",
    REFERENCE: "#bcbd22",
}
DIRECTION_COLORS: dict[str, str] = {"forward": "#ff7f0e", "backward": "#c5b0d5", "bidirectional": "#17becf"}
REGISTRATION_COLORS: dict[str, str] = {"dlir": "#3b4cc0", "instance": "#f4a261", "elastix": "#2a9d8f",
                                        "optical_flow": "#e76f51", "identity": "#7f7f7f"}

#: Every key above -> its colour / display name (structures, models, directions and registrations share one
#: namespace: no key is used twice).
COLORS: dict[str, str] = {**STRUCTURE_COLORS, **MODEL_COLORS, **DIRECTION_COLORS, **REGISTRATION_COLORS}
NAMES: dict[str, str] = {**STRUCTURE_NAMES, **MODEL_NAMES, **DIRECTION_NAMES, **REGISTRATION_NAMES}

_ORDER = (
    "intra-observer", "CLAS", *ALL_MODELS, REFERENCE, *DIRECTIONS, *REGISTRATIONS, *STRUCTURES,
)  # fmt: skip


def color(key: str | int, default: str | None = None) -> str:
    """The colour ``"#rrggbb"`` of a structure, model, direction or registration key, or of a label value (int).

    Raises ``KeyError`` naming the known keys when ``key`` is unknown and no ``default`` is given.
    """
    table = LABEL_COLORS if isinstance(key, int) else COLORS
    if key in table:
        return table[key]
    if default is not None:
        return default
    raise KeyError(f"no colour for {key!r}; known: {sorted(map(str, table))}")


def name(key: str | int) -> str:
    """The display name of a key (structure, model, direction, registration) or label value; unknown keys as is."""
    if isinstance(key, int):
        return LABEL_NAMES.get(key, str(key))
    return NAMES.get(key, key)


def rgba(key_or_hex: str | int, alpha: float) -> str:
    """A plotly ``"rgba(r,g,b,alpha)"`` string from a key (see :func:`color`) or a ``"#rrggbb"`` colour."""
    hexa = key_or_hex if isinstance(key_or_hex, str) and key_or_hex.startswith("#") else color(key_or_hex)
    r, g, b = (int(hexa[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha:g})"


def ordered(keys: Iterable[str]) -> list[str]:
    """``keys`` in the book's order: observers, CLAS, the models, the reference, directions, registrations,
    structures; unknown keys last, in their given order."""
    rank = {k: i for i, k in enumerate(_ORDER)}
    return sorted(keys, key=lambda k: rank.get(k, len(rank)))


def structure_mask(labels: np.ndarray, structure: str) -> np.ndarray:
    """Boolean mask of a structure (``LV``, ``MYO``, ``EPI`` or ``LA``) in a label map of any shape."""
    try:
        values = STRUCTURES[structure]
    except KeyError:
        raise ValueError(f"unknown structure {structure!r}; expected one of {sorted(STRUCTURES)}") from None
    return np.isin(labels, values)
