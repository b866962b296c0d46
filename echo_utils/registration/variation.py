"""How much a registration's output depends on the pair: the dead-network check of the DLIR training (issue 21).

A network that outputs one field for every pair (the demo network that learned nothing) has a near-zero
:func:`field_variation`; :mod:`echo_utils.registration.train` logs it at every validation.
"""

from __future__ import annotations

import torch

__all__ = ["field_variation", "FIELD_VARIATION_MIN"]

#: below this :func:`field_variation` the network outputs (nearly) one field for every pair: it has not learned to
#: read the pair.  The demo network that learned nothing scored 0.025 (0.0068 px of spread against a mean of
#: 0.27 px); a network that follows the motion of validation pairs in both directions scores about 1 or more.
FIELD_VARIATION_MIN = 0.1


def field_variation(control_points) -> dict:
    """How much a registration's output depends on the pair: control points ``(N, 2, gh, gw)`` (px) of ``N`` pairs.

    Returns ``cp_mean_px`` (mean length of a control-point displacement), ``cp_spread_px`` (root-mean-square
    distance of a pair's control points from their mean over the pairs: 0 for a constant field) and
    ``field_variation`` = spread / mean length (0 for a constant field, including the zero field; ``nan`` for
    fewer than 2 pairs).  A network whose ``field_variation`` is below :data:`FIELD_VARIATION_MIN` outputs one
    field for every pair, whatever it is shown.
    """
    cp = torch.as_tensor(control_points).detach().double()
    if cp.ndim != 4 or cp.shape[1] != 2:
        raise ValueError(f"control points must be (N, 2, gh, gw), got {tuple(cp.shape)}")
    if cp.shape[0] < 2:
        return {"cp_mean_px": float(cp.norm(dim=1).mean()) if cp.numel() else float("nan"),
                "cp_spread_px": float("nan"), "field_variation": float("nan")}
    mean_len = float(cp.norm(dim=1).mean())
    spread = float((cp - cp.mean(0, keepdim=True)).norm(dim=1).pow(2).mean().sqrt())
    return {"cp_mean_px": mean_len, "cp_spread_px": spread,
            "field_variation": spread / mean_len if mean_len > 0 else 0.0}
