"""registration.samples: the loss prepared once per frame gives pair_loss's values and gradients."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from echo_utils.registration.losses import RegistrationLoss
from echo_utils.registration.samples import PreparedLoss, batch_indices, frame_pairs, gather


def _sequences(n=3, t=6, size=32, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = rng.random((t, size, size)).astype(np.float32)
        img[:, :4] = 0.0  # a dark band: the sector mask has something to exclude
        out.append(SimpleNamespace(images=img, n_frames=t, patient=f"p{i}"))
    return out


@pytest.mark.parametrize("mask", ["none", "sector"])
@pytest.mark.parametrize("sigma", [0.0, 1.0])
@pytest.mark.parametrize("max_bytes", [0, 10**9])  # 0: the per-batch fallback
def test_prepared_loss_equals_pair_loss(mask, sigma, max_bytes):
    seqs = _sequences()
    loss_fn = RegistrationLoss(alpha=50.0, ncc="pair", sigma=sigma, mask=mask)
    prepared = PreparedLoss(loss_fn, seqs, "cpu", max_bytes=max_bytes)
    assert (prepared.frames is None) == (max_bytes == 0)
    pairs = frame_pairs(seqs, max_gap=2)[batch_indices(3, len(frame_pairs(seqs, max_gap=2)), 5, seed=1)]
    fixed, moving = gather(seqs, pairs, "cpu")
    u1 = (0.7 * torch.randn(len(pairs), 2, 32, 32, generator=torch.Generator().manual_seed(0))).requires_grad_()
    u2 = u1.detach().clone().requires_grad_()
    a = loss_fn.pair_loss(fixed, moving, u1)
    b = prepared.loss(pairs, fixed, moving, u2)
    for k in ("loss", "ncc", "bending"):
        assert torch.allclose(getattr(a, k), getattr(b, k), rtol=1e-6, atol=1e-7), k
    a.loss.backward()
    b.loss.backward()
    assert u1.grad.abs().sum() > 0
    torch.testing.assert_close(u1.grad, u2.grad, rtol=1e-5, atol=1e-8)


def test_prepared_frames_are_the_sequences_frames_smoothed():
    seqs = _sequences(n=2)
    loss_fn = RegistrationLoss(alpha=1.0, ncc="pair", sigma=1.0, mask="sector")
    prepared = PreparedLoss(loss_fn, seqs, "cpu")
    from echo_utils.registration.losses import gaussian_blur, sector_mask

    frames = torch.from_numpy(seqs[1].images)[:, None]
    torch.testing.assert_close(prepared.frames[1].smoothed, gaussian_blur(frames, 1.0))
    assert torch.equal(prepared.frames[1].mask, sector_mask(frames))
    assert not prepared.frames[1].mask[:, :, :4].any()  # the dark band is outside the sector
