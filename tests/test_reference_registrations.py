"""The classical references (elastix B-spline, TV-L1 optical flow) follow the registration protocol: torch
``(N, 1, H, W)`` in, ``(N, 2, H, W)`` in pixels out, channel 0 rows, channel 1 columns, ``warped(p) = moving(p + u(p))``.

Each is checked on a known motion whose two components differ (a transposed or sign-flipped field fails) on a
non-square image (an x/y swap of ITK's physical order fails)."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from echo_utils.config import load_config
from echo_utils.registration import REGISTRATIONS, register, registration_from_config, warp
from echo_utils.registration import elastix as elastix_mod
from echo_utils.registration.elastix import ElastixBSpline, elastix_available
from echo_utils.registration.optical_flow import OpticalFlowTVL1

needs_elastix = pytest.mark.skipif(not elastix_available(), reason="itk-elastix not installed (pip install .[elastix])")


def _texture(shape, seed=0, sigma=2.0) -> np.ndarray:
    t = gaussian_filter(np.random.default_rng(seed).random(shape), sigma)
    return ((t - t.min()) / (t.max() - t.min())).astype(np.float32)


def _shift_pair(shape=(48, 64), d=(1.5, -2.5)):
    """fixed(p) = moving(p + d): the moving texture warped by the constant field d is the fixed image."""
    moving = torch.from_numpy(_texture(shape))[None, None]
    u = torch.tensor(d, dtype=torch.float32).view(1, 2, 1, 1).expand(1, 2, *shape).contiguous()
    return warp(moving, u), moving, u


def _smooth_pair(shape=(48, 64)):
    """A smooth non-uniform field: rows move with the column position, columns with the row position."""
    moving = torch.from_numpy(_texture(shape, seed=1))[None, None]
    y, x = torch.meshgrid(torch.arange(shape[0], dtype=torch.float32), torch.arange(shape[1], dtype=torch.float32),
                          indexing="ij")
    u = torch.stack((1.5 * torch.sin(2 * np.pi * x / shape[1]), -1.0 + 0.8 * torch.cos(2 * np.pi * y / shape[0])))
    return warp(moving, u[None]), moving, u[None]


def _inner(u: torch.Tensor, margin: int = 10) -> torch.Tensor:
    return u[..., margin:-margin, margin:-margin]


@pytest.fixture(scope="module")
def fast_elastix():
    return ElastixBSpline(grid_spacing=8, bending_weight=0.01, iterations=150, resolutions=2)


@pytest.mark.parametrize("reg_name", ["optical_flow", pytest.param("elastix", marks=needs_elastix)])
def test_known_shift_sign_and_units(reg_name, fast_elastix):
    """A shift of (1.5, -2.5) px (rows, columns) comes back as that field, not its negative or its transpose."""
    reg = OpticalFlowTVL1() if reg_name == "optical_flow" else fast_elastix
    fixed, moving, truth = _shift_pair()
    u = reg(fixed, moving)
    assert u.shape == (1, 2, 48, 64) and u.dtype == torch.float32
    mean = _inner(u)[0].reshape(2, -1).mean(1)
    np.testing.assert_allclose(mean.numpy(), [1.5, -2.5], atol=0.1)
    assert (_inner(u) - _inner(truth)).abs().mean() < 0.15


@pytest.mark.parametrize("reg_name", ["optical_flow", pytest.param("elastix", marks=needs_elastix)])
def test_known_smooth_field(reg_name, fast_elastix):
    """A smooth non-uniform field (each component varying along the other axis) is recovered: end-point error well
    below the field's own size, and the warped moving image matches the fixed one better than before."""
    reg = OpticalFlowTVL1() if reg_name == "optical_flow" else fast_elastix
    fixed, moving, truth = _smooth_pair()
    u = reg(fixed, moving)
    epe = torch.linalg.vector_norm(_inner(u - truth), dim=1).mean()
    size = torch.linalg.vector_norm(_inner(truth), dim=1).mean()
    assert epe < 0.25 * size, f"EPE {epe:.3f} px vs field {size:.3f} px"
    transposed = torch.linalg.vector_norm(_inner(u.flip(1) - truth), dim=1).mean()
    assert transposed > 3 * epe  # the test can tell rows from columns
    before = (moving - fixed)[..., 10:-10, 10:-10].abs().mean()
    after = (warp(moving, u) - fixed)[..., 10:-10, 10:-10].abs().mean()
    assert after < 0.5 * before


def test_optical_flow_batches_and_smoothing():
    """Pairs are independent (batch of two = each alone) and the batched inference path returns the same field."""
    f1, m1, _ = _shift_pair()
    f2, m2, _ = _smooth_pair()
    reg = OpticalFlowTVL1(attachment=10.0, sigma=0.5)
    both = reg(torch.cat([f1, f2]), torch.cat([m1, m2]))
    torch.testing.assert_close(both[1:], reg(f2, m2))
    via = register(reg, torch.cat([f1, f2])[:, 0].numpy(), torch.cat([m1, m2])[:, 0].numpy(), batch_size=1)
    np.testing.assert_allclose(via, both.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="attachment"):
        OpticalFlowTVL1(attachment=0)


@needs_elastix
def test_elastix_parameter_map_and_determinism(fast_elastix):
    """The parameter map holds the documented choices (strings, physical units = pixels), and the fixed seed with one
    thread makes two runs identical."""
    pm = fast_elastix.parameter_map()
    assert pm["Metric"] == ["AdvancedNormalizedCorrelation", "TransformBendingEnergyPenalty"]
    assert pm["FinalGridSpacingInPhysicalUnits"] == ["8", "8"]
    assert pm["GridSpacingSchedule"] == ["2", "2", "1", "1"]
    assert pm["Metric1Weight"] == ["0.01"] and pm["RandomSeed"] == ["121212"]
    assert all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in pm.values())
    fixed, moving, _ = _smooth_pair()
    torch.testing.assert_close(fast_elastix(fixed, moving), fast_elastix(fixed, moving), rtol=0, atol=0)


@needs_elastix
def test_elastix_workers_give_the_fields_of_one_after_the_other(fast_elastix):
    """Pairs registered in two processes at once are the pairs registered one after the other, bit for bit, in
    order; and the worker count is left out of the fingerprint that keys cached pseudo-labels (speed only)."""
    from echo_utils.pseudolabels import registration_fingerprint

    f1, m1, _ = _shift_pair()
    f2, m2, _ = _smooth_pair()
    fixed, moving = torch.cat([f1, f2, f1]), torch.cat([m1, m2, m2])
    pooled = ElastixBSpline(grid_spacing=8, bending_weight=0.01, iterations=150, resolutions=2, workers=2)
    both = pooled(fixed, moving)
    torch.testing.assert_close(both, fast_elastix(fixed, moving), rtol=0, atol=0)
    assert not torch.equal(both[0], both[2])  # three different pairs: the order is checked
    assert elastix_mod._POOLS[2]._processes and len(elastix_mod._POOLS[2]._processes) == 2
    # a pool whose worker died (an interrupted cell) is replaced, and the fields are still the same
    os.kill(next(iter(elastix_mod._POOLS[2]._processes)), signal.SIGKILL)
    torch.testing.assert_close(pooled(fixed, moving), both, rtol=0, atol=0)
    assert registration_fingerprint(pooled) == registration_fingerprint(fast_elastix)
    assert registration_fingerprint(ElastixBSpline(grid_spacing=8, bending_weight=0.02, iterations=150,
                                                   resolutions=2)) != registration_fingerprint(fast_elastix)
    with pytest.raises(ValueError, match="workers=0"):
        ElastixBSpline(workers=0)


@needs_elastix
def test_elastix_bending_weight_smooths():
    """A large bending weight gives a smoother field (lower bending energy) than a small one on the same pair."""
    from echo_utils.registration import bending_energy

    fixed, moving, _ = _smooth_pair()
    soft = ElastixBSpline(grid_spacing=8, bending_weight=0.0, iterations=100, resolutions=2)(fixed, moving)
    stiff = ElastixBSpline(grid_spacing=8, bending_weight=50.0, iterations=100, resolutions=2)(fixed, moving)
    assert bending_energy(stiff) < bending_energy(soft)


def test_elastix_missing_says_so(monkeypatch):
    """Without itk-elastix the registration refuses with the one line the comparisons print."""
    monkeypatch.setattr(elastix_mod, "elastix_available", lambda: False)
    fixed, moving, _ = _shift_pair()
    with pytest.raises(ImportError, match=r"pip install '\.\[elastix\]'"):
        ElastixBSpline()(fixed, moving)


def test_factory_builds_the_references_from_the_profile():
    """``registration_from_config`` builds both references with the profile's settings; the network's grid spacing
    is elastix's; unknown names are refused."""
    cfg = load_config("notebooks/params/ci.yaml", overrides=["registration.elastix.bending_weight=0.25",
                                                               "registration.optical_flow.attachment=7"])
    assert {"elastix", "optical_flow"} <= set(REGISTRATIONS)
    e = registration_from_config("elastix", cfg.registration)
    assert isinstance(e, ElastixBSpline) and e.grid_spacing == cfg.registration.grid_spacing
    assert e.bending_weight == 0.25 and e.threads == 1
    o = registration_from_config("optical_flow", cfg.registration)
    assert isinstance(o, OpticalFlowTVL1) and o.attachment == 7.0
    with pytest.raises(ValueError, match="unknown registration"):
        registration_from_config("demons", cfg.registration)
