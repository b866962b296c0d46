"""Tests of echo_utils.registration against analytic answers (B-spline values, warps of known fields, Jacobians)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from echo_utils.camus import EchoSequence
from echo_utils.config import RegistrationConfig
from echo_utils.registration import (
    BSplineDIR,
    InstanceBSpline,
    RegistrationLoss,
    bending_energy,
    bspline_basis_matrix,
    bspline_kernel_1d,
    bspline_upsample,
    control_point_positions,
    cubic_bspline,
    evaluate_registration,
    folding_fraction,
    frame_pairs,
    gaussian_blur,
    register,
    registration_from_config,
    compare_registrations,
    jacobian_summary,
    sharpness,
    warped_averages,
    jacobian_determinant,
    load_registration,
    load_training_log,
    ncc,
    train_registration,
    warp,
    deformation_grid,
    sample_pairs,
)


def texture(size: int, seed: int = 0, sigma: float = 1.5) -> np.ndarray:
    """Smooth random texture in [0, 1] (a stand-in for speckle)."""
    t = gaussian_filter(np.random.default_rng(seed).random((size, size)), sigma)
    return ((t - t.min()) / (t.max() - t.min())).astype(np.float32)


def analytic_field(coeffs: np.ndarray, s: int, size: tuple[int, int]) -> np.ndarray:
    """sum_ij c_ij beta3((y - p_i)/s) beta3((x - p_j)/s), evaluated pixel by pixel from the closed-form beta3."""
    gh, gw = coeffs.shape[-2:]
    py, px = control_point_positions(gh, s), control_point_positions(gw, s)
    out = np.zeros(coeffs.shape[:-2] + size)
    for y in range(size[0]):
        for x in range(size[1]):
            wy = [float(cubic_bspline(np.float64((y - p) / s))) for p in py]
            wx = [float(cubic_bspline(np.float64((x - p) / s))) for p in px]
            out[..., y, x] = np.einsum("...ij,i,j->...", coeffs, np.array(wy), np.array(wx))
    return out


# ------------------------------------------------------------------------------------------------ B-spline


def test_cubic_bspline_closed_form():
    t = np.array([0.0, 0.5, 1.0, 1.5, 2.0, -1.0, 3.0])
    expected = [2 / 3, 2 / 3 - 0.25 + 0.125 / 2, 1 / 6, 0.5**3 / 6, 0.0, 1 / 6, 0.0]
    np.testing.assert_allclose(cubic_bspline(t), expected, atol=1e-15)


@pytest.mark.parametrize("s", [8, 5])
def test_kernel_is_partition_of_unity(s):
    k = bspline_kernel_1d(s, torch.float64).numpy()
    assert k.sum() == pytest.approx(s, abs=1e-12)  # each output pixel gets weights summing to 1 after the stride
    np.testing.assert_allclose(k, k[::-1], atol=1e-15)  # symmetric about the control point


@pytest.mark.parametrize("s,grid", [(8, (4, 5)), (5, (4, 4)), (4, (6, 3))])
@pytest.mark.parametrize("method", ["matmul", "conv"])
def test_bspline_upsample_matches_analytic(s, grid, method):
    rng = np.random.default_rng(s)
    coeffs = rng.normal(size=(2, 2) + grid)
    size = (grid[0] * s, grid[1] * s)
    dense = bspline_upsample(torch.from_numpy(coeffs), s, size, method=method).numpy()
    np.testing.assert_allclose(dense, analytic_field(coeffs, s, size), atol=1e-12)


def test_conv_and_matmul_agree_and_cover_odd_sizes():
    c = torch.randn(3, 2, 5, 6, dtype=torch.float64)
    a = bspline_upsample(c, 8, (37, 45), method="conv")
    b = bspline_upsample(c, 8, (37, 45), method="matmul")
    assert a.shape == (3, 2, 37, 45)
    torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="covers"):
        bspline_upsample(c, 8, (41, 45))


def test_constant_coefficients_give_constant_field_inside():
    s, n = 8, 6
    dense = bspline_upsample(torch.full((1, 1, n, n), 2.5, dtype=torch.float64), s, (n * s, n * s))[0, 0]
    p = control_point_positions(n, s)
    lo, hi = int(np.ceil(p[1])), int(np.floor(p[-2]))  # every pixel here has its 4 supporting control points
    torch.testing.assert_close(dense[lo : hi + 1, lo : hi + 1], torch.full_like(dense[lo : hi + 1, lo : hi + 1], 2.5))
    assert bspline_basis_matrix(n * s, n, s)[lo : hi + 1].sum(1) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------ warp


def test_zero_displacement_is_identity():
    for size in (64, 128):  # the profiles' sizes (powers of two: exact); others are within float32 rounding
        x = torch.rand(3, 1, size, size)
        torch.testing.assert_close(warp(x, torch.zeros(3, 2, size, size)), x, atol=1e-6, rtol=0)
    x = torch.rand(3, 1, 48, 40)
    torch.testing.assert_close(warp(x, torch.zeros(3, 2, 48, 40)), x, atol=1e-5, rtol=0)
    # zero control points and an untrained (zero-initialised) network give that zero displacement
    assert bspline_upsample(torch.zeros(1, 2, 8, 8), 8, (64, 64)).abs().max() == 0
    x = torch.rand(2, 1, 64, 64)
    net = BSplineDIR(grid_spacing=8, kernels=8, image_size=(64, 64))
    u = net(x, x.flip(-1))
    assert u.shape == (2, 2, 64, 64) and u.abs().max() == 0
    torch.testing.assert_close(warp(x.flip(-1), u), x.flip(-1), atol=1e-6, rtol=0)


def test_warp_convention_integer_and_subpixel_shift():
    x = torch.rand(1, 1, 32, 40)
    u = torch.zeros(1, 2, 32, 40)
    u[:, 0], u[:, 1] = 2.0, -3.0  # warped(p) = moving(p + u): rows + 2, cols - 3
    w = warp(x, u)
    torch.testing.assert_close(w[0, 0, 0:30, 3:40], x[0, 0, 2:32, 0:37], atol=1e-6, rtol=0)
    # border padding: rows beyond the last one repeat it
    torch.testing.assert_close(w[0, 0, 30:, 3:], x[0, 0, -1:, :37].expand(2, -1), atol=1e-6, rtol=0)
    # bilinear interpolation is exact on an affine image
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(40.0), indexing="ij")
    ramp = (0.01 * yy + 0.02 * xx)[None, None]
    v = torch.zeros(1, 2, 32, 40)
    v[:, 0], v[:, 1] = 0.3, 0.7
    torch.testing.assert_close(warp(ramp, v)[0, 0, :-1, :-1], (ramp + 0.003 + 0.014)[0, 0, :-1, :-1], atol=1e-5, rtol=0)


def test_warp_labels_nearest_and_onehot():
    lab = torch.zeros(1, 1, 32, 32, dtype=torch.uint8)
    lab[0, 0, 8:20, 10:22] = 1
    lab[0, 0, 12:16, 14:18] = 3
    u = torch.zeros(1, 2, 32, 32)
    u[:, 1] = 4.0
    for mode in ("nearest", "onehot"):
        w = warp(lab, u, mode=mode)
        assert w.dtype == torch.uint8
        torch.testing.assert_close(w[0, 0, :, :28], lab[0, 0, :, 4:])
        assert set(torch.unique(w).tolist()) <= {0, 1, 3}
    # half-pixel shift: nearest picks an existing label everywhere
    u[:, 1] = 0.5
    assert set(torch.unique(warp(lab, u, mode="nearest")).tolist()) <= {0, 1, 3}
    with pytest.raises(ValueError, match="unknown warp mode"):
        warp(lab, u, mode="cubic")


# ------------------------------------------------------------------------------------------------ loss, Jacobian


def test_ncc_values_and_modes():
    a = torch.rand(2, 1, 16, 16)
    assert ncc(a, 2 * a + 1).item() == pytest.approx(1.0, abs=1e-5)
    assert ncc(a, -a).item() == pytest.approx(-1.0, abs=1e-5)
    b = a.clone()
    b[1] = torch.rand(1, 16, 16)
    per_pair = ncc(a, b, "pair")
    assert per_pair.shape == (2,) and per_pair[0] == pytest.approx(1.0, abs=1e-5) and abs(per_pair[1]) < 0.3
    # global NCC: one correlation over the pooled pixels, equal to numpy's corrcoef of the flattened batch
    expected = np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1]
    assert ncc(a, b, "global").item() == pytest.approx(expected, abs=1e-5)


def test_bending_energy_analytic():
    yy, xx = torch.meshgrid(torch.arange(20.0, dtype=torch.float64), torch.arange(24.0, dtype=torch.float64), indexing="ij")
    affine = torch.stack([0.1 * yy - 0.2 * xx + 3, 0.05 * xx + 0.3 * yy])[None]
    assert bending_energy(affine).item() == pytest.approx(0.0, abs=1e-20)
    a, b = 0.01, 0.02
    quad = torch.stack([a * yy**2, b * xx * yy])[None]  # u_y'' = 2a, u_x cross-derivative = b
    # TorchIR's bending_energy_2d: the mean over the two components, (2a)^2 for u_y and 2 b^2 for u_x
    assert bending_energy(quad).item() == pytest.approx(((2 * a) ** 2 + 2 * b**2) / 2, rel=1e-9)
    terms = RegistrationLoss(alpha=2.0, ncc="pair")(torch.rand(1, 1, 20, 24), torch.rand(1, 1, 20, 24), quad.float())
    assert terms.loss.item() == pytest.approx(-terms.ncc.item() + 2.0 * terms.bending.item(), rel=1e-6)


def test_jacobian_determinant_affine_and_folding():
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    A = torch.tensor([[0.2, -0.1], [0.3, 0.1]])  # u = A p, det(I + A) = 1.2 * 1.1 + 0.1 * 0.3
    u = torch.stack([A[0, 0] * yy + A[0, 1] * xx, A[1, 0] * yy + A[1, 1] * xx])[None]
    det = jacobian_determinant(u)
    torch.testing.assert_close(det, torch.full((1, 16, 16), 1.2 * 1.1 + 0.1 * 0.3), atol=1e-5, rtol=0)
    assert folding_fraction(u).item() == 0.0
    mirror = torch.stack([torch.zeros_like(xx), -2 * xx])[None]  # x -> -x: det = -1 everywhere
    assert folding_fraction(mirror).item() == 1.0


# ------------------------------------------------------------------------------------------------ instance optimisation


def test_instance_bspline_recovers_known_deformation():
    """A smooth B-spline deformation (spacing 8, up to ~4 px) is recovered to a small fraction of a pixel.

    Bound: the true field lies in the model's own B-spline space, the texture has structure at every scale the
    grid resolves, so the only error sources are the regulariser (alpha = 0.1 pulls towards zero bending) and the
    finite number of Adam steps.  We require a mean endpoint error below 0.25 px (the true mean displacement is
    ~1.8 px, so >85 % of the motion is recovered) and no folding.
    """
    s, size = 8, 64
    moving = torch.from_numpy(texture(size, seed=0))[None, None]
    torch.manual_seed(1)
    cp_true = torch.randn(2, 2, size // s, size // s) * 3.0
    u_true = bspline_upsample(cp_true, s, (size, size))
    fixed = warp(moving.expand(2, -1, -1, -1), u_true)
    reg = InstanceBSpline(grid_spacing=s, alpha=0.1, iterations=150, lr=0.1)
    u = reg(fixed, moving.expand(2, -1, -1, -1))
    epe = (u - u_true).norm(dim=1)
    assert u_true.norm(dim=1).mean() > 1.5
    assert epe.mean().item() < 0.25, epe.mean().item()
    assert folding_fraction(u).max().item() == 0.0
    assert (ncc(fixed, warp(moving, u), "pair") > ncc(fixed, moving.expand(2, -1, -1, -1), "pair") + 0.1).all()


def test_instance_bspline_pairs_are_independent():
    """Optimising two pairs together gives each pair the result it gets alone (per-pair loss, element-wise Adam)."""
    f = torch.from_numpy(np.stack([texture(32, 1), texture(32, 2)]))[:, None]
    m = torch.from_numpy(np.stack([texture(32, 3), np.roll(texture(32, 2), 2, axis=0)]))[:, None]
    reg = InstanceBSpline(grid_spacing=8, alpha=1.0, iterations=10, lr=0.05)
    both = reg.control_points(f, m)
    alone = reg.control_points(f[1:], m[1:])
    torch.testing.assert_close(both[1:], alone, atol=1e-5, rtol=1e-4)


def test_refined_registration_starts_from_the_network():
    """RefinedRegistration = InstanceBSpline started at the network's control points: with an untrained network
    (zero output layer: the identity) it equals InstanceBSpline from zeros step for step; started at the exact
    control points it stays near them, while as many steps from zeros do not get there."""
    from echo_utils.registration import RefinedRegistration

    s, size = 8, 64
    moving = torch.from_numpy(texture(size, seed=0))[None, None].expand(2, -1, -1, -1)
    torch.manual_seed(1)
    cp_true = torch.randn(2, 2, size // s, size // s) * 3.0
    u_true = bspline_upsample(cp_true, s, (size, size))
    fixed = warp(moving, u_true)
    inst = InstanceBSpline(grid_spacing=s, alpha=0.1, iterations=10, lr=0.1)
    untrained = BSplineDIR(grid_spacing=s, kernels=8, image_size=(size, size), num_conv_layers=3).eval()
    torch.testing.assert_close(RefinedRegistration(untrained, inst)(fixed, moving), inst(fixed, moving))

    class Oracle(BSplineDIR):  # a "network" whose one pass is the exact answer
        def control_points(self, fixed, moving, dtype=None, scratch=None):
            return cp_true.clone()

    oracle = Oracle(grid_spacing=s, kernels=8, image_size=(size, size), num_conv_layers=3).eval()
    refined = RefinedRegistration(oracle, inst)(fixed, moving)
    epe_refined = (refined - u_true).norm(dim=1).mean().item()
    epe_zero = (inst(fixed, moving) - u_true).norm(dim=1).mean().item()
    assert epe_refined < 0.25 < epe_zero, (epe_refined, epe_zero)
    with pytest.raises(ValueError, match="grid spacing"):
        RefinedRegistration(oracle, InstanceBSpline(grid_spacing=16))
    with pytest.raises(ValueError, match="init must be"):
        inst.control_points(fixed, moving, init=cp_true[:1])


# ------------------------------------------------------------------------------------------------ training


def make_sequence(patient: str, seed: int, size: int = 32, frames: int = 5) -> EchoSequence:
    """A textured disc that contracts and shifts over the frames: known smooth motion, like a beating LV."""
    base = texture(size, seed=seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    imgs = []
    for t in range(frames):
        scale = 1 + 0.04 * t  # sample further out -> the content contracts
        y = yy * scale + (size - 1) / 2 + 0.5 * t
        x = xx * scale + (size - 1) / 2
        from scipy.ndimage import map_coordinates

        imgs.append(map_coordinates(base, [y, x], order=1, mode="nearest"))
    return EchoSequence(patient=patient, view="4CH", images=np.stack(imgs).astype(np.float32), spacing=(1.0, 1.0), ed=0, es=frames - 1)


@pytest.fixture(scope="module")
def tiny_data():
    train = [make_sequence(f"patient{i:04d}", seed=i) for i in range(3)]
    val = [make_sequence("patient0100", seed=100)]
    return train, val


def tiny_config(**kw) -> RegistrationConfig:
    base = dict(grid_spacing=8, kernels=8, iterations=12, batch_size=8, lr=1e-2, validate_every=4, checkpoint_every=4, seed=3)
    base.update(kw)
    return RegistrationConfig(**base)


def test_frame_pairs_are_all_ordered_intra_sequence_pairs(tiny_data):
    train, _ = tiny_data
    pairs = frame_pairs(train)
    assert len(pairs) == 3 * 5 * 4
    assert (pairs[:, 1] != pairs[:, 2]).all()
    assert len({tuple(p) for p in pairs.tolist()}) == len(pairs)
    assert len(frame_pairs(train, exclude_patients=["patient0001"])) == 2 * 5 * 4


def test_training_reduces_loss_and_is_cached(tiny_data, tmp_path):
    train, val = tiny_data
    cfg = tiny_config(iterations=16)
    model = train_registration(train, cfg, tmp_path, val_sequences=val, device="cpu", progress=False)
    log = load_training_log(model)
    assert {"iteration", "split", "loss", "ncc", "bending", "seconds"} <= set(log.columns)
    v = log[log.split == "val"].set_index("iteration")
    assert list(v.index) == [0, 4, 8, 12, 16]
    assert v.loc[16, "loss"] < v.loc[0, "loss"] - 1e-3  # held-out loss below the identity's
    assert (log[log.split == "train"].iteration.to_numpy() == np.arange(1, 17)).all()
    folder = model.run_dir
    assert (folder / "model.pt").exists() and not (folder / "checkpoint.pt").exists()

    # rerun: loaded from the cache, no training step (the callback never fires), same weights
    calls = []
    again = train_registration(train, cfg, tmp_path, val_sequences=val, device="cpu", progress=False, callback=lambda i, r: calls.append(i))
    assert calls == [] and again.run_dir == folder
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b)

    # different settings -> a new folder; the cached model is untouched
    stamp = (folder / "model.pt").stat().st_mtime_ns
    other = train_registration(train, tiny_config(iterations=16, alpha=0.5), tmp_path, val_sequences=val, device="cpu", progress=False)
    assert other.run_dir != folder and (folder / "model.pt").stat().st_mtime_ns == stamp

    # load_registration rebuilds the architecture from the file
    loaded = load_registration(folder)
    assert loaded.config == {"grid_spacing": 8, "kernels": 8, "image_size": [32, 32], "num_conv_layers": 5, "num_dense_layers": 2}
    x = torch.from_numpy(val[0].images[:2, None])
    torch.testing.assert_close(loaded(x[:1], x[1:]), model.eval()(x[:1], x[1:]))


def test_interrupted_training_resumes_at_checkpoint(tiny_data, tmp_path):
    train, val = tiny_data
    cfg = tiny_config(iterations=10, checkpoint_every=4)

    def interrupt(i, row):
        if i == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_registration(train, cfg, tmp_path / "a", val_sequences=val, device="cpu", progress=False, callback=interrupt)
    (folder,) = (tmp_path / "a").iterdir()
    assert torch.load(folder / "checkpoint.pt", weights_only=True)["iteration"] == 4
    seen = []
    resumed = train_registration(train, cfg, tmp_path / "a", val_sequences=val, device="cpu", progress=False, callback=lambda i, r: seen.append(i))
    assert seen == list(range(5, 11))  # continues at iteration 5, not from scratch
    straight = train_registration(train, cfg, tmp_path / "b", val_sequences=val, device="cpu", progress=False)
    for a, b in zip(resumed.state_dict().values(), straight.state_dict().values()):
        torch.testing.assert_close(a, b)  # same weights as an uninterrupted run (deterministic on CPU)
    log = load_training_log(folder)
    assert (log[log.split == "train"].iteration.to_numpy() == np.arange(1, 11)).all()


def test_validation_pairs_held_out_without_val_sequences(tiny_data, tmp_path):
    train, _ = tiny_data
    model = train_registration(train, tiny_config(iterations=2, validate_every=1), tmp_path, device="cpu", progress=False)
    log = load_training_log(model.run_dir)
    assert (log.split == "val").sum() == 3  # iteration 0, 1, 2


def test_bad_inputs_raise_clear_errors(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="power of two"):
        BSplineDIR(grid_spacing=12, image_size=(48, 48))
    with pytest.raises(ValueError, match="multiple of grid_spacing"):
        BSplineDIR(grid_spacing=8, image_size=(60, 64))
    train, _ = tiny_data
    odd = make_sequence("patient0009", seed=9, size=40)
    with pytest.raises(ValueError, match="differ in image size"):
        train_registration([*train, odd], tiny_config(), tmp_path, device="cpu", progress=False)
    with pytest.raises(FileNotFoundError):
        load_registration(tmp_path / "nothing")


def test_evaluate_registration_table(tiny_data):
    seq = tiny_data[1][0]
    df = evaluate_registration(InstanceBSpline(8, alpha=1.0, iterations=20, lr=0.1), seq.images[[0, 0]], seq.images[[3, 4]])
    assert list(df.columns) == ["ncc_before", "ncc_after", "folding", "jac_min", "max_displacement", "seconds"]
    assert (df.ncc_after > df.ncc_before).all()


def test_instance_bspline_works_under_inference_mode():
    f = torch.from_numpy(texture(32, 1))[None, None]
    m = torch.from_numpy(np.roll(texture(32, 1), 1, axis=1))[None, None]
    reg = InstanceBSpline(grid_spacing=8, alpha=1.0, iterations=5, lr=0.05)
    expected = reg(f, m)
    with torch.inference_mode():
        torch.testing.assert_close(reg(f, m), expected)


def test_deformation_grid_and_sample_pairs(tiny_data):
    u = torch.zeros(2, 16, 24)
    u[1] = 1.5
    lines = deformation_grid(u, step=8)
    assert len(lines) == 2 + 3
    np.testing.assert_allclose(lines[0][1], np.arange(24) + 1.5)
    f, m, info = sample_pairs(tiny_data[0], n_random=1, seed=0)
    assert f.shape == m.shape == (9, 32, 32) and [i["kind"] for i in info[:3]] == ["ED<-ES", "ES<-ED", "random"]
    np.testing.assert_array_equal(f[0], tiny_data[0][0].images[0])


def test_network_inference_then_instance_optimisation_share_caches():
    """Cached B-spline/grid tensors made under inference_mode must not break a later autograd use."""
    x = torch.from_numpy(np.stack([texture(40 * 2, 5), texture(40 * 2, 6)]))[:, None]
    net = BSplineDIR(grid_spacing=8, kernels=4, image_size=(80, 80)).optimise_for_inference()
    net(x[:1], x[1:])  # creates the caches for 80x80 inside inference_mode
    u = InstanceBSpline(grid_spacing=8, iterations=2)(x[:1], x[1:])
    assert u.shape == (1, 2, 80, 80)


@pytest.mark.parametrize("sigma", [1.0, 1.5])
def test_gaussian_blur_matches_scipy(sigma):
    x = np.random.default_rng(0).random((2, 1, 20, 24))
    ours = gaussian_blur(torch.from_numpy(x), sigma).numpy()
    ref = np.stack([gaussian_filter(x[i, 0], sigma, mode="mirror", truncate=3.0) for i in range(2)])[:, None]
    np.testing.assert_allclose(ours, ref, atol=1e-10)
    assert gaussian_blur(torch.from_numpy(x), 0.0) is not None and torch.equal(gaussian_blur(torch.from_numpy(x), 0.0), torch.from_numpy(x))


def test_loss_sigma_smooths_before_ncc_and_keys_the_cache(tiny_data, tmp_path):
    f, m = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    u = torch.zeros(2, 2, 32, 32)
    terms = RegistrationLoss(alpha=1.0, ncc="pair", sigma=1.5).pair_loss(f, m, u)
    assert terms.ncc.item() == pytest.approx(ncc(gaussian_blur(f, 1.5), gaussian_blur(m, 1.5), "pair").mean().item(), abs=1e-6)
    train, val = tiny_data
    a = train_registration(train, tiny_config(iterations=2), tmp_path, val_sequences=val, device="cpu", progress=False)
    b = train_registration(train, tiny_config(iterations=2, loss_sigma=1.0), tmp_path, val_sequences=val, device="cpu", progress=False)
    assert a.run_dir != b.run_dir


def test_bf16_inference_is_close_to_fp32():
    torch.manual_seed(0)
    net = BSplineDIR(grid_spacing=8, kernels=8, image_size=(64, 64))
    with torch.no_grad():
        net.net[-1].weight.normal_(0, 0.5)  # a non-trivial output, as after training
    f, m = texture(64, 1)[None], texture(64, 2)[None]
    ref = register(net.optimise_for_inference(torch.float32), f, m)
    torch.testing.assert_close(torch.from_numpy(ref), net(torch.from_numpy(f)[None], torch.from_numpy(m)[None]))
    fast = register(net.optimise_for_inference(torch.bfloat16), f, m)  # the network's preferred precision
    assert np.abs(ref).max() > 0.1 and fast.dtype == np.float32
    assert np.abs(fast - ref).max() < 0.05 * np.abs(ref).max() and np.abs(fast - ref).max() > 0
    np.testing.assert_array_equal(register(net, f, m, precision="float32"), ref)  # explicit precision wins
    with pytest.raises(ValueError, match="precision"):
        register(net, f, m, precision="half")


def test_load_registration_refuses_a_pickle_that_runs_code(tmp_path):
    """A checkpoint is read with ``weights_only=True``: a pickled object (here one whose unpickling would call
    ``os.system``) is refused with an error naming the file, and its code never runs."""
    import pickle

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            import os

            return (os.system, (f"touch {marker}",))

    bad = tmp_path / "model.pt"
    torch.save({"config": {"grid_spacing": 8}, "state_dict": {}, "payload": Payload()}, bad)
    with pytest.raises(ValueError, match="model.pt"):
        load_registration(bad)
    assert not marker.exists()
    with open(bad, "wb") as fh:  # a bare pickle stream, not a torch zip archive
        pickle.dump(Payload(), fh)
    with pytest.raises(ValueError, match="model.pt"):
        load_registration(bad)
    assert not marker.exists()


def test_identity_and_factory_from_profile(tiny_data, tmp_path):
    cfg = tiny_config(iterations=2, instance_iterations=7, instance_lr=0.2, loss_sigma=1.0)
    ident = registration_from_config("identity", cfg)
    x = torch.rand(3, 1, 16, 24)
    assert torch.equal(ident(x, x), torch.zeros(3, 2, 16, 24))
    inst = registration_from_config("instance", cfg)
    assert (inst.grid_spacing, inst.alpha, inst.iterations, inst.lr, inst.sigma) == (8, cfg.alpha, 7, 0.2, 1.0)
    train, val = tiny_data
    net = registration_from_config("dlir", cfg, train=train, val=val, run_dir=tmp_path)
    direct = train_registration(train, cfg, tmp_path, val_sequences=val, device="cpu", progress=False)
    assert net.run_dir == direct.run_dir and not net.training
    with pytest.raises(ValueError, match="unknown registration"):
        registration_from_config("affine", cfg)
    with pytest.raises(ValueError, match="training sequences"):
        registration_from_config("dlir", cfg)


def test_quality_helpers_of_the_registration_chapter(tiny_data):
    # sharpness: mean gradient magnitude of a linear ramp is its slope
    ramp = np.tile(np.arange(16, dtype=float) * 0.25, (8, 1))
    assert sharpness(ramp) == pytest.approx(0.25)
    seq = tiny_data[1][0]
    f, m, info = sample_pairs([seq], n_random=1, seed=0)
    inst = InstanceBSpline(8, alpha=1.0, iterations=15, lr=0.1)
    table, u = evaluate_registration(inst, f, m, info=info, return_displacements=True)
    assert list(table.columns[:4]) == ["key", "fixed", "moving", "kind"] and u.shape == (3, 2, 32, 32)
    shift = np.zeros((3, 2, 32, 32), np.float32)
    shift[:, 1] = 1.0  # a translation: det J = 1 everywhere, no folding
    jac = jacobian_summary({"shift": shift, "inst": u}, info)
    row = jac[(jac.registration == "shift") & (jac.pairs == "ED<-ES")].iloc[0]
    assert row["det J min"] == pytest.approx(1.0) and row["folded pixels (%)"] == 0
    comp = compare_registrations({"inst": table})
    assert comp.loc[0, "NCC gain"] == pytest.approx((table.ncc_after - table.ncc_before).mean())
    avgs = warped_averages({"identity": registration_from_config("identity", tiny_config())}, seq)
    (plain, s0, c0), (ident, s1, c1) = avgs.values()
    np.testing.assert_allclose(plain, ident, atol=1e-6)  # the identity warps nothing
    assert s0 == pytest.approx(s1) and c0 == pytest.approx(c1)
