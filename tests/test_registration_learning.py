"""The learning side of the registration: the bending energy as TorchIR computes it, the bending weight rescaled
with the image size, pair sampling, the learning-rate schedule and the best-validation weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_registration import make_sequence, tiny_config

from echo_utils.registration import bending_energy, frame_pairs, load_registration, load_training_log, train_registration
from echo_utils.registration.losses import RegistrationLoss, scaled_alpha
from echo_utils.registration.train import learning_rate


def test_bending_energy_is_the_mean_over_components():
    """TorchIR's bending_energy_2d: ``mean_{p,c} u_c,yy^2 + 2 u_c,xy^2 + u_c,xx^2`` (finite differences are exact
    on quadratics)."""
    yy, xx = torch.meshgrid(torch.arange(24.0, dtype=torch.float64), torch.arange(20.0, dtype=torch.float64),
                            indexing="ij")
    a, b, c = 0.03, -0.01, 0.02
    one = a * yy**2 + b * xx * yy + c * xx**2  # u_yy = 2a, u_xy = b, u_xx = 2c
    per_component = (2 * a) ** 2 + 2 * b**2 + (2 * c) ** 2
    both = torch.stack([one, one])[None]
    assert bending_energy(both).item() == pytest.approx(per_component, rel=1e-9)  # not 2 x
    only_rows = torch.stack([one, torch.zeros_like(one)])[None]
    assert bending_energy(only_rows).item() == pytest.approx(per_component / 2, rel=1e-9)


def test_scaled_alpha_keeps_the_balance_for_the_same_anatomy():
    """The same physical field sampled at 128 and at 512 px: 16x the bending energy at 128 px, which
    ``scaled_alpha`` cancels."""
    length = 150.0  # mm, the image side

    def field(n: int) -> torch.Tensor:
        sp = length / n
        y = (torch.arange(n, dtype=torch.float64) + 0.5) * sp
        yy, xx = torch.meshgrid(y, y, indexing="ij")
        u_mm = 3.0 * torch.sin(2 * np.pi * yy / 60.0) * torch.cos(2 * np.pi * xx / 90.0)
        return torch.stack([u_mm, 0.5 * u_mm]) [None] / sp  # pixels

    e128, e512 = bending_energy(field(128)).item(), bending_energy(field(512)).item()
    assert e128 / e512 == pytest.approx(16.0, rel=0.02)
    assert scaled_alpha(1.0, 128, 512) * e128 == pytest.approx(1.0 * e512, rel=0.02)
    assert scaled_alpha(1.0, 512, 512) == 1.0 and scaled_alpha(0.7, 128, None) == 0.7
    assert scaled_alpha(2.0, (128, 128), 512) == pytest.approx(2.0 / 16)
    with pytest.raises(ValueError):
        scaled_alpha(1.0, 128, 0)


def test_frame_pairs_max_gap():
    seqs = [make_sequence("patient0001", 1, frames=6), make_sequence("patient0002", 2, frames=4)]
    pairs = frame_pairs(seqs, max_gap=1)
    assert len(pairs) == 2 * 5 + 2 * 3
    assert (np.abs(pairs[:, 1] - pairs[:, 2]) == 1).all()
    assert len(frame_pairs(seqs, max_gap=2)) == (2 * 5 + 2 * 4) + (2 * 3 + 2 * 2)
    assert len(frame_pairs(seqs, max_gap=None)) == 6 * 5 + 4 * 3


def test_learning_rate_schedule():
    assert learning_rate(0, 0.01, 100) == learning_rate(99, 0.01, 100) == 0.01
    lrs = np.array([learning_rate(i, 0.01, 100, "cosine") for i in range(100)])
    assert lrs[0] == pytest.approx(0.01 / 5) and lrs[4] == pytest.approx(0.01)  # 5 % warm-up
    assert np.all(np.diff(lrs[4:]) <= 1e-15) and lrs[-1] == pytest.approx(1e-4)  # cosine to 1 %
    with pytest.raises(ValueError):
        learning_rate(0, 0.01, 100, "step")


def test_best_validation_weights_are_kept(tmp_path):
    """With ``keep='best'`` the returned network scores the lowest validation loss of the log; ``'last'`` the
    final iteration.  A learning rate far too high makes the last iteration worse than an earlier one."""
    train = [make_sequence(f"patient{i:04d}", seed=i) for i in range(2)]
    val = [make_sequence("patient0100", seed=100)]
    kw = dict(iterations=12, lr=0.3, validate_every=3, checkpoint_every=100, ncc="pair")
    best = train_registration(train, tiny_config(**kw), tmp_path, val_sequences=val, device="cpu", progress=False)
    last = train_registration(train, tiny_config(keep="last", **kw), tmp_path, val_sequences=val, device="cpu",
                              progress=False)
    v = load_training_log(best).query("split == 'val'").set_index("iteration")["loss"]
    assert best.kept_iteration == int(v.idxmin()) and last.kept_iteration == 12
    assert v.min() < v.loc[12]  # the example does what it is meant to: the last weights are not the best

    def val_loss(model):
        x = torch.from_numpy(val[0].images[:, None])
        pairs = frame_pairs(val)
        f, m = x[pairs[:, 1]], x[pairs[:, 2]]
        with torch.no_grad():
            return RegistrationLoss(alpha=1.0, ncc="pair").pair_loss(f, m, model(f, m)).loss.item()

    assert val_loss(best) == pytest.approx(v.min(), abs=1e-5)
    assert val_loss(best) < val_loss(last)
    assert load_registration(best.run_dir).kept_iteration == best.kept_iteration


def test_endpoint_error_against_the_phantom_truth(tmp_path):
    """The identity scores the mean true displacement, an oracle that returns the truth scores 0, and a field
    shifted by a constant (0.3, 0.4) px scores 0.5 px."""
    from echo_utils import camus, phantom
    from echo_utils.registration import IdentityRegistration
    from echo_utils.registration.evidence import endpoint_error, phantom_pairs

    root = phantom.make_cohort(tmp_path / "c", 2, size=64, frames=(5, 6), seed=1, progress=False)
    seqs = [camus.load_sequence(root / "database_nifti" / "patient0001", v) for v in ("2CH", "4CH")]
    pairs = phantom_pairs(root, seqs, "step")
    assert len(pairs["info"]) == sum(s.n_frames - 1 for s in seqs)
    truth = {(i["key"], i["fixed"], i["moving"]): pairs["truth"][k] for k, i in enumerate(pairs["info"])}
    lookup = {(pairs["fixed"][k].tobytes(), pairs["moving"][k].tobytes()): pairs["truth"][k]
              for k in range(len(pairs["info"]))}

    def oracle(fixed, moving, offset=(0.0, 0.0)):
        out = [torch.from_numpy(lookup[(f[0].numpy().tobytes(), m[0].numpy().tobytes())]) for f, m in zip(fixed, moving)]
        return torch.stack(out) + torch.tensor(offset).view(1, 2, 1, 1)

    table = endpoint_error({"identity": IdentityRegistration(), "oracle": oracle,
                            "shifted": lambda f, m: oracle(f, m, (0.3, 0.4))}, pairs)
    by = table.groupby("registration")
    ident = table[table.registration == "identity"]
    np.testing.assert_allclose(ident.epe_px, ident.true_px, rtol=1e-5)
    assert ident.true_px.mean() > 0.1  # the phantom moves
    assert by.epe_px.max()["oracle"] < 1e-5
    np.testing.assert_allclose(table[table.registration == "shifted"].epe_px, 0.5, rtol=1e-4)
    assert len(truth) == len(pairs["info"])
    with pytest.raises(ValueError):
        phantom_pairs(root, seqs, "random")


def test_masked_ncc_and_sector_mask():
    from echo_utils.registration.losses import ncc, sector_mask

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(2, 1, 24, 20, generator=g), torch.rand(2, 1, 24, 20, generator=g)
    b = 0.5 * a + b
    mask = torch.zeros_like(a, dtype=torch.bool)
    mask[0, 0, 3:15, 2:12] = True
    mask[1, 0, 10:20, 5:18] = True
    got = ncc(a, b, "pair", mask=mask)
    for i in range(2):
        m = mask[i].numpy()
        expected = np.corrcoef(a[i].numpy()[m], b[i].numpy()[m])[0, 1]
        assert got[i].item() == pytest.approx(expected, abs=1e-5)
    pooled = np.corrcoef(a.numpy()[mask.numpy()], b.numpy()[mask.numpy()])[0, 1]
    # 'global' with a mask: one correlation of the pooled masked pixels (each pair centred separately would differ)
    assert ncc(a, b, "global", mask=mask).item() == pytest.approx(pooled, abs=1e-5)
    assert ncc(a, b, "pair", mask=torch.ones_like(mask)).numpy() == pytest.approx(ncc(a, b, "pair").numpy(), abs=1e-5)
    # the sector of a 64 px fan: inside, but not within the margin of its edge, and not outside
    yy, xx = np.mgrid[:64, :64]
    fan = ((np.hypot(yy, xx - 31.5) < 60) & (np.abs(np.arctan2(xx - 31.5, yy + 1e-9)) < 0.6)).astype(np.float32)
    img = torch.from_numpy(fan * (0.3 + 0.2 * np.random.default_rng(0).random((64, 64), dtype=np.float32)))
    sm = sector_mask(img[None, None], margin=4)[0, 0].numpy()
    assert sm.sum() > 0.4 * fan.sum() and not sm[fan == 0].any()
    from scipy import ndimage

    assert not sm[fan.astype(bool) & ~ndimage.binary_erosion(fan.astype(bool), iterations=1)].any()


def test_displacement_figure_titles_give_the_epe():
    from echo_utils.report.registration import displacement_figure

    truth = np.zeros((2, 8, 8), np.float32)
    truth[0] = 1.0
    mask = np.ones((8, 8), bool)
    fig = displacement_figure({"zero": np.zeros_like(truth), "shifted": truth + np.array([0.3, 0.4])[:, None, None]},
                              truth, mask)
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["true motion: EPE 0.00 px", "zero: EPE 1.00 px", "shifted: EPE 0.50 px"]
    assert len(fig.data) == 6


def test_gain_over_identity_pairs_the_same_videos():
    import pandas as pd

    from echo_utils.registration.evidence import gain_over_identity

    rows = []
    for key, d_id, d_net in (("a", 0.80, 0.90), ("b", 0.70, 0.75), ("c", 0.60, 0.70)):
        rows += [{"method": "identity", "kind": "forward", "structure": "LV", "key": key, "dice": d_id},
                 {"method": "dlir", "kind": "forward", "structure": "LV", "key": key, "dice": d_net}]
    rows.append({"method": "identity", "kind": "forward", "structure": "LV", "key": "d", "dice": 0.0})  # unpaired
    out = gain_over_identity(pd.DataFrame(rows), "dlir", structures=("LV",), kinds=("forward",))
    assert len(out) == 1
    r = out.iloc[0]
    assert r.n_videos == 3 and r.dice_dlir == pytest.approx(0.75) and r.dice_identity == pytest.approx(0.70)
    assert r.gain == pytest.approx(0.05)


def test_epe_and_gain_statements():
    import pandas as pd

    from echo_utils.report.registration_comparison import epe_statements, gain_statements

    summary = pd.DataFrame({"step": [0.5, 0.2, 0.3], "ed_es": [4.0, 3.0, 1.0]},
                           index=["identity", "DLIR", "instance"])
    lines = epe_statements(summary, "DLIR", ["instance"])
    assert lines[0] == ("step pairs: DLIR end-point error 0.200 px = 40% of the identity's 0.500 px (below half of the "
                        "identity's); instance 0.300 px")
    assert "= 75% of" in lines[1] and "(below the identity's)" in lines[1]
    gain = pd.DataFrame([{"kind": "forward", "structure": "LV", "n_videos": 3, "dice_dlir": 0.9, "dice_identity": 0.8,
                          "gain": 0.1}])
    assert gain_statements(gain, "dlir") == ["forward LV: dlir median Dice 0.900 vs identity 0.800 (+0.100; 3 videos)"]


def test_field_variation_is_zero_for_a_constant_field_and_large_for_opposite_motions():
    from echo_utils.registration import field_variation

    g = torch.Generator().manual_seed(0)
    one = torch.randn(1, 2, 4, 4, generator=g)
    const = field_variation(one.repeat(6, 1, 1, 1))
    assert const["cp_spread_px"] == pytest.approx(0.0, abs=1e-12) and const["field_variation"] == pytest.approx(0.0)
    assert const["cp_mean_px"] == pytest.approx(float(one.norm(dim=1).mean()), rel=1e-6)
    assert field_variation(torch.zeros(5, 2, 4, 4))["field_variation"] == 0.0  # the untrained zero field
    # +v and -v: the mean is 0, every pair is |v| away from it: spread = RMS length (>= the mean length)
    both = torch.cat([one, -one])
    rms = float(one.double().norm(dim=1).pow(2).mean().sqrt())
    assert field_variation(both)["cp_spread_px"] == pytest.approx(rms, rel=1e-9)
    uniform = torch.tensor([0.6, -0.8]).view(1, 2, 1, 1).repeat(1, 1, 4, 4)  # one length everywhere: exactly 1
    assert field_variation(torch.cat([uniform, -uniform]))["field_variation"] == pytest.approx(1.0, rel=1e-9)
    # analytic: constant c plus a per-pair offset of length d (pairs +-d along rows) -> spread d, |cp| = |c +- d|
    c = torch.zeros(2, 2, 1, 1)
    c[:, 1] = 3.0
    c[0, 0], c[1, 0] = 0.4, -0.4
    fv = field_variation(c)
    assert fv["cp_spread_px"] == pytest.approx(0.4) and fv["cp_mean_px"] == pytest.approx(np.hypot(3.0, 0.4))
    assert np.isnan(field_variation(one)["field_variation"])
    with pytest.raises(ValueError):
        field_variation(torch.zeros(3, 4, 4))


def _shifted_pairs(n: int = 4, size: int = 32):
    """Textured pairs whose moving image is the fixed one shifted by +-1.5 px along rows or columns."""
    from test_registration import texture

    fixed, moving = [], []
    for i in range(n):
        base = texture(size, seed=i)
        shift = [(1.5, 0), (-1.5, 0), (0, 1.5), (0, -1.5)][i % 4]
        from scipy.ndimage import shift as nd_shift

        fixed.append(base)
        moving.append(nd_shift(base, shift, order=1, mode="nearest"))
    return np.stack(fixed).astype(np.float32), np.stack(moving).astype(np.float32)


def test_dead_network_check_flags_a_constant_output_and_passes_a_live_one():
    """A DIRNet whose output layer ignores its input (zero weights, non-zero bias: the same field for every pair)
    fails; InstanceBSpline, which follows each pair's own shift, passes; an EPE not below the identity's fails."""
    from echo_utils.registration import BSplineDIR, InstanceBSpline
    from echo_utils.registration.evidence import control_point_variation, network_check
    from echo_utils.report.registration import check_table, network_check_html

    fixed, moving = _shifted_pairs()
    dead = BSplineDIR(grid_spacing=8, kernels=8, image_size=(32, 32))
    with torch.no_grad():
        dead.net[-1].bias.copy_(torch.tensor([0.3, -0.2]))  # weights stay zero: a constant 0.36 px field
    dead.optimise_for_inference()
    fv_dead = control_point_variation(dead, fixed, moving)
    assert fv_dead["cp_mean_px"] == pytest.approx(np.hypot(0.3, 0.2), rel=1e-5)
    assert fv_dead["field_variation"] < 1e-6
    check = network_check(fv_dead["field_variation"])
    assert not check and check.problems == ["constant field"] and "did NOT learn" in network_check_html(check)

    live = InstanceBSpline(grid_spacing=8, alpha=0.0, iterations=30, lr=0.1, sigma=1.0)
    fv_live = control_point_variation(live, fixed, moving)
    assert fv_live["field_variation"] > 0.5  # four different directions: of the order of 1
    assert network_check(fv_live["field_variation"], 0.2, 0.5)
    assert "alive" in network_check_html(network_check(fv_live["field_variation"]))
    slow = network_check(fv_live["field_variation"], 0.5, 0.5)
    assert not slow and slow.problems == ["EPE not below identity"]
    assert network_check(None).problems == ["field variation unknown"]

    row = check_table(slow, dead).iloc[0]
    assert not row.ok and row.problems == "EPE not below identity" and "NOT below" in row.statement


def test_training_logs_the_field_variation_and_the_monitor(tmp_path):
    """Every validation row carries the field variation (0 at iteration 0: the zero-initialised network is the
    identity) and the monitor's columns; the model (trained or loaded) carries the variation of its kept weights."""
    train = [make_sequence(f"patient{i:04d}", seed=i) for i in range(2)]
    val = [make_sequence("patient0100", seed=100)]
    calls = []

    def monitor(model):
        calls.append(model.training)
        return {"probe": float(len(calls))}

    cfg = tiny_config(iterations=8, validate_every=4, ncc="pair", lr=3e-2, threads=1)
    model = train_registration(train, cfg, tmp_path, val_sequences=val, device="cpu", progress=False,
                               monitor=monitor)
    va = load_training_log(model).query("split == 'val'").set_index("iteration")
    assert list(va.index) == [0, 4, 8] and list(va["probe"]) == [1.0, 2.0, 3.0] and calls == [False] * 3
    assert va.loc[0, "field_variation"] == 0.0 and va.loc[0, "cp_mean_px"] == 0.0
    assert (va.loc[[4, 8], "cp_mean_px"] > 0).all()
    assert model.field_variation == pytest.approx(va.loc[model.kept_iteration, "field_variation"])
    assert load_registration(model.run_dir).field_variation == pytest.approx(model.field_variation)
    assert torch.get_num_threads() >= 1


def test_output_init_and_warmup_settings():
    from echo_utils.registration import BSplineDIR

    torch.manual_seed(0)
    m = BSplineDIR(grid_spacing=8, kernels=8, image_size=(32, 32)).init_output(1e-5)
    w = m.net[-1].weight.detach()
    assert 0 < float(w.abs().max()) < 1e-4 and float(m.net[-1].bias.abs().max()) == 0.0
    assert float(w.std()) == pytest.approx(1e-5, rel=0.3)
    lrs = [learning_rate(i, 0.01, 100, "cosine", warmup=0.01) for i in range(3)]
    assert lrs[0] == pytest.approx(0.01) and lrs[2] < lrs[1] <= 0.01  # a one-iteration warm-up, then the decay
    with pytest.raises(ValueError):
        learning_rate(0, 0.01, 100, "cosine", warmup=1.0)


def test_learning_curve_figure_with_and_without_the_phantom_monitor():
    import pandas as pd

    from echo_utils.report.registration import learning_curve_figure

    rows = [{"iteration": i, "split": "val", "loss": -0.5, "field_variation": fv, "val_step_epe_px": e,
             "val_step_identity_epe_px": 0.5} for i, fv, e in ((0, 0.0, 0.5), (100, 0.05, 0.45), (200, 0.8, 0.2))]
    log = pd.DataFrame(rows + [{"iteration": 1, "split": "train", "loss": -0.4}])
    fig = learning_curve_figure(log)
    assert [t.name for t in fig.data] == ["network", "identity (no motion)", "half the identity's", "field variation"]
    assert list(fig.data[0].y) == [0.5, 0.45, 0.2] and list(fig.data[3].x) == [0, 100, 200]
    real = learning_curve_figure(log.drop(columns=["val_step_epe_px", "val_step_identity_epe_px"]))
    assert [t.name for t in real.data] == ["field variation"]


def test_learning_benchmark_fails_a_dead_network():
    """bench_registration_learning.checks: a network that failed the dead-network check fails the benchmark even
    when every Dice and EPE target is met."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_registration_learning.py"
    spec = importlib.util.spec_from_file_location("bench_registration_learning", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)

    def med(f, b):
        return {"forward_LV": f, "forward_MYO": f, "bidirectional_LV": b, "bidirectional_MYO": b}

    videos = [{"key": "a", **med(0.95, 0.97)}, {"key": "b", **med(0.93, 0.96)}]
    r = {"mode": "composed", "train_seconds": 200.0, "network_check": {"ok": True},
         "epe": {"step": {"dlir": 0.2, "identity": 0.5, "instance": 0.18}},
         "dice": {"identity/sequential": {"median": med(0.85, 0.93), "videos": []},
                  "dlir/composed": {"median": med(0.94, 0.965), "videos": videos},
                  "instance/composed": {"median": med(0.95, 0.97), "videos": videos[:1]}}}
    good = bench.checks(r)
    assert good["pass"] and good["bidirectional_LV_minus_instance"] == pytest.approx(0.0)
    dead = bench.checks({**r, "network_check": {"ok": False}})
    assert not dead["pass"] and not dead["targets"]["network_alive"]
    slow = bench.checks({**r, "train_seconds": 301.0})
    assert not slow["pass"] and slow["targets"] == {**good["targets"], "training_le_300_s": False}


def test_training_check_reads_the_kept_row(tmp_path):
    from echo_utils.registration.evidence import training_check

    train = [make_sequence(f"patient{i:04d}", seed=i) for i in range(2)]
    val = [make_sequence("patient0100", seed=100)]
    fake = {"n": 0}

    def monitor(model):  # a stand-in for the phantom's EPE: worse than the identity at every validation
        fake["n"] += 1
        return {"val_step_epe_px": 0.6, "val_step_identity_epe_px": 0.5}

    model = train_registration(train, tiny_config(iterations=4, validate_every=2, ncc="pair", lr=3e-2), tmp_path,
                               val_sequences=val, device="cpu", progress=False, monitor=monitor)
    check = training_check(model)
    assert "EPE not below identity" in check.problems and not check
    model.field_variation = None
    assert "field variation unknown" in training_check(model).problems


# ------------------------------------------------------------------------------------ registration.input_size


def _exact_sequence(patient: str, k: int, size: int = 32, frames: int = 3):
    """Frames of exact float32 values (integer arithmetic / 10): the same bytes, hence the same data fingerprint,
    on every platform."""
    from echo_utils.camus import EchoSequence

    yy, xx = np.mgrid[:size, :size]
    imgs = [(((yy * (3 + k) + xx * (5 + t) + 7 * k) % 11) / 10.0).astype(np.float32) for t in range(frames)]
    return EchoSequence(patient=patient, view="4CH", images=np.stack(imgs), spacing=(1.0, 1.0), ed=0, es=frames - 1)


def test_input_size_none_keeps_the_cache_key_and_the_network(tmp_path):
    """A profile without ``input_size`` (or with None, or with the image height) trains in the folder it trained in
    before the key existed: the digest below was computed by the code before ``input_size`` was added (commit
    0d28187), so runs already cached stay valid; its architecture record has no ``input_scale``."""
    from echo_utils.config import RegistrationConfig

    train = [_exact_sequence(f"patient{i:04d}", i) for i in range(2)]
    val = [_exact_sequence("patient0100", 9)]
    base = dict(grid_spacing=8, kernels=4, iterations=1, batch_size=2, lr=1e-2, validate_every=1, checkpoint_every=1,
                seed=3, alpha=65536.0, alpha_reference_size=512, ncc="pair", pair_max_gap=2, lr_schedule="cosine",
                loss_sigma=1.0, loss_mask="sector")
    digests = {}
    for name, extra in {"absent": {}, "none": {"input_size": None}, "height": {"input_size": 32},
                        "half": {"input_size": 16}}.items():
        model = train_registration(train, RegistrationConfig(**base, **extra), tmp_path, val_sequences=val,
                                   device="cpu", progress=False)
        digests[name] = model.run_dir.name
        key = (model.run_dir / "key.json").read_text()
        assert ("input_size" in key) == (name == "half") and ("input_scale" in key) == (name == "half")
    assert digests["absent"] == digests["none"] == digests["height"] == "3e963534259b"
    assert digests["half"] != digests["absent"]
    assert load_registration(tmp_path / digests["half"]).input_scale == 2


def test_full_resolution_network_is_todays_formula():
    """``input_scale`` 1: the module and the batched inference path give, bit for bit, today's field: the encoder
    on the stacked channels_last pair, upsampled by the B-spline (written out here, independently of
    ``network_input``)."""
    from echo_utils.registration import BSplineDIR, bspline_upsample, register

    torch.manual_seed(0)
    net = BSplineDIR(grid_spacing=8, kernels=8, image_size=(32, 32)).init_output(0.1).eval()
    assert "input_scale" not in net.config and net.input_scale == 1
    g = torch.Generator().manual_seed(1)
    f, m = torch.rand(3, 1, 32, 32, generator=g), torch.rand(3, 1, 32, 32, generator=g)
    with torch.no_grad():
        today = bspline_upsample(net.net(torch.cat((f, m), 1).contiguous(memory_format=torch.channels_last)), 8,
                                 (32, 32))
        assert torch.equal(net(f, m), today)
    assert np.array_equal(register(net, f, m, precision="float32"), today.numpy())


def test_pooled_input_network_shapes_pooling_and_errors():
    """``input_scale`` 2 at spacing 8: two poolings instead of three, the same 4x4 control grid, a full-size field;
    its control points are the encoder applied to the 2x2-averaged pair; the inference path agrees with the
    module; bad scales and input sizes are refused naming the key."""
    from echo_utils.registration import BSplineDIR, register
    from echo_utils.registration.models import input_scale_for

    torch.manual_seed(0)
    full = BSplineDIR(grid_spacing=8, kernels=8, image_size=(32, 32))
    net = BSplineDIR(grid_spacing=8, kernels=8, image_size=(32, 32), input_scale=2).init_output(0.1).eval()
    pools = [sum(isinstance(l, torch.nn.AvgPool2d) for l in n.net) for n in (full, net)]
    assert pools == [3, 2] and net.config["input_scale"] == 2
    g = torch.Generator().manual_seed(1)
    f, m = torch.rand(3, 1, 32, 32, generator=g), torch.rand(3, 1, 32, 32, generator=g)
    with torch.no_grad():
        cp = net.control_points(f, m)
        pooled = torch.cat((f, m), 1).reshape(3, 2, 16, 2, 16, 2).mean((3, 5))  # 2x2 block means, by hand
        torch.testing.assert_close(cp, net.net(pooled.contiguous(memory_format=torch.channels_last)))
        u = net(f, m)
    assert cp.shape == (3, 2, 4, 4) == full.control_points(f, m).shape and u.shape == (3, 2, 32, 32)
    assert float(cp.abs().max()) > 0
    np.testing.assert_allclose(register(net, f, m, precision="float32"), u.numpy(), atol=1e-6)
    assert net.flops((32, 32)) < full.flops((32, 32)) / 3  # the first layers run on a quarter of the pixels
    for bad in (3, 16):
        with pytest.raises(ValueError, match="input_scale"):
            BSplineDIR(grid_spacing=8, kernels=8, image_size=(32, 32), input_scale=bad)
    assert input_scale_for((128, 128), None, 8) == 1 and input_scale_for((128, 128), 128, 8) == 1
    assert input_scale_for((128, 128), 64, 8) == 2 and input_scale_for((128, 96), 32, 8) == 4
    for size, spacing in ((48, 8), (8, 8), (0, 8), (32, 2), (200, 8)):
        with pytest.raises(ValueError, match="registration.input_size"):
            input_scale_for((128, 128), size, spacing)


def test_pooled_input_network_learns_a_known_shift_in_full_resolution_pixels():
    """A short fit of the input-scale-2 network on pairs related by a known shift (2 px down, 1 px left, in
    64-px frames) and on the same pairs swapped (the opposite shift): the field it outputs reads
    the pair (opposite signs for the two groups) and is in full-resolution pixels (not the pooled input's), within
    0.3 px, though the network saw the frames at 32 px.  ``warp(moving, u)(p) = moving(p + u)``, so ``fixed(p) =
    moving(p + d)`` has ``u = d``."""
    from echo_utils.registration import BSplineDIR, RegistrationLoss
    from test_registration import texture

    dy, dx = 2, -1
    bases = [texture(80, seed=k, sigma=2.0) for k in range(2)]
    a = torch.from_numpy(np.stack([b[8:72, 8:72] for b in bases]))[:, None]
    b = torch.from_numpy(np.stack([b[8 + dy:72 + dy, 8 + dx:72 + dx] for b in bases]))[:, None]  # b(p) = a(p + d)
    fixed, moving = torch.cat([b, a]), torch.cat([a, b])  # pairs 0, 1: u = +d; pairs 2, 3: u = -d
    torch.manual_seed(0)
    net = BSplineDIR(grid_spacing=8, kernels=8, image_size=(64, 64), input_scale=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_fn = RegistrationLoss(alpha=0.01, ncc="pair", sigma=1.0)
    for _ in range(160):  # converged by ~120 (seeded)
        terms = loss_fn.pair_loss(fixed, moving, net(fixed, moving))
        opt.zero_grad()
        terms.loss.backward()
        opt.step()
    with torch.no_grad():
        u = net.eval()(fixed, moving)[:, :, 16:48, 16:48].mean((2, 3))  # interior mean per pair (px)
    np.testing.assert_allclose(u[:2].mean(0).numpy(), [dy, dx], atol=0.3)
    np.testing.assert_allclose(u[2:].mean(0).numpy(), [-dy, -dx], atol=0.3)


def test_a_run_folder_whose_key_disagrees_is_refused(tmp_path):
    """``key.json`` is the run's keyed record: a folder named by this key but holding another key (hand-edited,
    or a collision) is refused with an error naming the differing key, and nothing in it is overwritten."""
    import json as _json

    from echo_utils.config import RegistrationConfig

    train = [_exact_sequence(f"patient{i:04d}", i) for i in range(2)]
    cfg = RegistrationConfig(grid_spacing=8, kernels=4, iterations=2, batch_size=2, lr=1e-2, validate_every=1,
                             checkpoint_every=1, seed=3, alpha=1.0, ncc="pair")
    model = train_registration(train, cfg, tmp_path, device="cpu", progress=False)
    folder = model.run_dir
    key = _json.loads((folder / "key.json").read_text())
    key["max_val_pairs"] = 7
    (folder / "key.json").write_text(_json.dumps(key, indent=1))
    (folder / "model.pt").unlink()
    before = (folder / "key.json").read_bytes()
    with pytest.raises(ValueError, match="max_val_pairs"):
        train_registration(train, cfg, tmp_path, device="cpu", progress=False)
    assert (folder / "key.json").read_bytes() == before


def test_group_norm_network_layers_identity_start_and_cache_key(tmp_path):
    """``group_norm`` G: a GroupNorm of G groups after every hidden convolution (not the output layer), the untrained
    network is still the zero field, the architecture record (and so the cache key) names it only when G > 0 (the
    digest of a profile without the key is the one computed before the key existed), the trained network loads
    back with its norms, and a G that does not divide the kernels is refused by the network and the profile."""
    from pydantic import ValidationError

    from echo_utils.config import RegistrationConfig
    from echo_utils.registration import BSplineDIR

    net = BSplineDIR(grid_spacing=8, kernels=8, image_size=(32, 32), group_norm=4)
    convs = [m for m in net.net if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in net.net if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == len(convs) - 1 and all(n.num_groups == 4 and n.num_channels == 8 for n in norms)
    layers = list(net.net)
    assert all(isinstance(layers[layers.index(c) + 1], torch.nn.GroupNorm) for c in convs[:-1])
    assert not isinstance(layers[-1], torch.nn.GroupNorm) and net.config["group_norm"] == 4
    f, m = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    assert torch.count_nonzero(net.eval()(f, m)) == 0
    assert "group_norm" not in BSplineDIR(grid_spacing=8, kernels=8, image_size=(32, 32)).config
    with pytest.raises(ValueError, match="group_norm must be 0 or a number of groups dividing kernels 8"):
        BSplineDIR(grid_spacing=8, kernels=8, image_size=(32, 32), group_norm=3)
    with pytest.raises(ValidationError, match="group_norm 3 must divide kernels 32"):
        RegistrationConfig(group_norm=3)

    train = [_exact_sequence(f"patient{i:04d}", i) for i in range(2)]
    val = [_exact_sequence("patient0100", 9)]
    base = dict(grid_spacing=8, kernels=4, iterations=2, batch_size=2, lr=1e-2, validate_every=1, checkpoint_every=1,
                seed=3, alpha=65536.0, alpha_reference_size=512, ncc="pair", pair_max_gap=2, lr_schedule="cosine",
                loss_sigma=1.0, loss_mask="sector", keep="last")
    plain = train_registration(train, RegistrationConfig(**{**base, "iterations": 1, "keep": "best"}, group_norm=0), tmp_path / "a",
                               val_sequences=val, device="cpu", progress=False)
    assert plain.run_dir.name == "3e963534259b"  # test_input_size_none_keeps_the_cache_key_and_the_network's digest
    model = train_registration(train, RegistrationConfig(**base, group_norm=2), tmp_path / "b", val_sequences=val,
                               device="cpu", progress=False)
    assert '"group_norm": 2' in (model.run_dir / "key.json").read_text()
    back = load_registration(model.run_dir)
    assert sum(isinstance(x, torch.nn.GroupNorm) for x in back.net) == 7  # 5 conv + 2 dense layers
    with torch.no_grad():
        u = model(f, m)
        assert float(u.abs().max()) > 0  # two updates moved the output layer
        torch.testing.assert_close(back(f, m), u, rtol=0, atol=0)
