"""The one seeded split of a cohort's patients into training, validation and testing (synthetic and real data)."""

from __future__ import annotations

import numpy as np

__all__ = ["split_patients"]


def split_patients(patients: list[str], seed: int, test_fraction: float, val_fraction: float) -> dict:
    """Seeded split by patient: test = round(n * test_fraction), val = round(rest * val_fraction), >= 1 each.

    Returns ``{'training', 'validation', 'testing'}`` -> sorted patient ids (the CAMUS split-file names).
    """
    rng = np.random.default_rng([seed, 1234])
    order = [patients[i] for i in rng.permutation(len(patients))]
    n = len(order)
    n_test = min(n - 1, max(1, int(round(n * test_fraction))))
    n_val = int(round((n - n_test) * val_fraction))
    if val_fraction > 0:
        n_val = max(1, n_val)
    n_val = min(n_val, n - n_test - 1)
    return {
        "testing": sorted(order[:n_test]),
        "validation": sorted(order[n_test : n_test + n_val]),
        "training": sorted(order[n_test + n_val :]),
    }
