"""Tests of the batched registration inference path: precision, chunking, memoisation, the fast ELU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from echo_utils.registration import BSplineDIR, InstanceBSpline, MemoizedRegistration, register_pairs
from echo_utils.registration import inference
from echo_utils.registration.models import ELU, elu_


def random_network(size: int = 64, spacing: int = 8, kernels: int = 8, scale: float = 0.5) -> BSplineDIR:
    """An untrained network with a non-zero output layer: displacements of about a pixel, as after training."""
    torch.manual_seed(0)
    net = BSplineDIR(grid_spacing=spacing, kernels=kernels, image_size=(size, size))
    with torch.no_grad():
        net.net[-1].weight.normal_(0, scale)
    return net.optimise_for_inference()


@pytest.fixture(scope="module")
def phantom_sequence(tmp_path_factory):
    from echo_utils.camus import iter_sequences
    from echo_utils.phantom import make_cohort

    root = make_cohort(tmp_path_factory.mktemp("cohort"), 1, size=64, frames=(9, 9), seed=3, workers=1,
                       progress=False)
    return next(iter(iter_sequences(root)))


def test_elu_matches_torch_values_and_gradients():
    x = (torch.randn(3, 4, 5, 6, dtype=torch.float64) * 3).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: ELU()(t), (x,))
    torch.testing.assert_close(ELU()(x), torch.nn.functional.elu(x), rtol=0, atol=1e-15)
    y = x.detach().float().contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(elu_(y.clone(), {}), torch.nn.functional.elu(y), rtol=0, atol=1e-6)


def test_fast_float32_path_equals_the_module_and_chunking_changes_nothing():
    net = random_network()
    images = np.random.default_rng(0).random((5, 64, 64)).astype(np.float32)
    pairs = [(1, 0), (2, 1), (3, 2), (4, 3), (0, 4)]
    u = register_pairs(net, images, pairs, precision="float32")
    x = torch.from_numpy(images)[:, None]
    with torch.inference_mode():
        direct = net(x[[p[0] for p in pairs]], x[[p[1] for p in pairs]])
    assert float(direct.abs().max()) > 0.1
    torch.testing.assert_close(u, direct, rtol=0, atol=1e-5)
    torch.testing.assert_close(register_pairs(net, images, pairs, precision="float32", batch_size=1), u,
                               rtol=0, atol=1e-6)


def test_bfloat16_and_float32_pseudo_labels_agree_on_a_phantom_sequence(phantom_sequence):
    from echo_utils.fusion import pseudo_labels

    seq = phantom_sequence
    net = random_network(size=seq.images.shape[1])
    pl32 = pseudo_labels(seq, net, precision="float32", mode="composed")
    pl16 = pseudo_labels(seq, net, precision="bfloat16", mode="composed")
    pairs = [(k + 1, k) for k in range(seq.n_frames - 1)]
    u32 = register_pairs(net, seq.images, pairs, precision="float32")
    u16 = register_pairs(net, seq.images, pairs, precision="bfloat16")
    err = float((u16 - u32).abs().max())
    assert 0 < err < 0.02 * float(u32.abs().max())  # bf16 really ran, and stayed close
    assert not np.array_equal(pl32.forward[-1], pl32.forward[0])  # the labels moved
    for kind in ("forward", "backward", "bidirectional"):
        changed = float((pl16[kind] != pl32[kind]).mean())
        assert changed <= 1e-3, f"{kind}: {changed:.2%} of the label pixels differ between bf16 and fp32"


def test_auto_precision_follows_the_cpu(monkeypatch):
    net = random_network()
    monkeypatch.setattr(inference, "_cpu_flags", lambda: frozenset({"avx2"}))
    assert not inference.native_bfloat16("cpu") and inference.default_precision("cpu") == "float32"
    assert inference._resolve_precision(net, None) == torch.float32
    monkeypatch.setattr(inference, "_cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert inference.default_precision("cpu") == "bfloat16"
    assert inference._resolve_precision(net, "auto") == torch.bfloat16
    assert inference._resolve_precision(net, "float32") == torch.float32  # an explicit choice wins
    net.optimise_for_inference(torch.float32)
    assert inference._resolve_precision(net, None) == torch.float32  # so does the network's own setting
    assert inference._resolve_precision(InstanceBSpline(8), None) == torch.bfloat16  # unused: it runs in fp32


def test_pairs_per_call_stay_within_the_activation_budget():
    net = random_network(size=512, spacing=32, kernels=32)
    per_pair = 32 * 512 * 512 * 2  # bf16 bytes of the first layer's output
    k = inference._pairs_per_call(net, (512, 512), torch.bfloat16, 64)
    assert k * per_pair <= inference._ACTIVATION_BUDGET < (k + 1) * per_pair
    assert inference._pairs_per_call(net, (64, 64), torch.float32, 7) == 7


def test_network_then_instance_optimisation_share_caches_through_register_pairs():
    """The network's batched path (inference mode) must not leave cached grids that break a later autograd use."""
    net = random_network(size=48, spacing=8)
    images = np.random.default_rng(1).random((3, 48, 48)).astype(np.float32)
    register_pairs(net, images, [(1, 0), (2, 1)])
    u = register_pairs(InstanceBSpline(grid_spacing=8, iterations=2), images, [(1, 0)])
    assert u.shape == (1, 2, 48, 48)


def test_memoized_registration_through_register_pairs_registers_each_pair_once():
    calls = []

    def reg(fixed, moving):
        calls.append(fixed.shape[0])
        return torch.zeros(fixed.shape[0], 2, *fixed.shape[-2:])

    memo = MemoizedRegistration(reg)
    images = np.random.default_rng(2).random((4, 16, 16)).astype(np.float32)
    pairs = [(1, 0), (2, 1), (1, 0), (3, 2)]
    assert register_pairs(memo, images, pairs).shape == (4, 2, 16, 16)
    register_pairs(memo, images, [(2, 1), (3, 2), (0, 3)])
    assert sum(calls) == 4 and memo.misses == 4 and memo.hits == 3


def test_network_flops_by_hand():
    net = BSplineDIR(grid_spacing=32, kernels=32, image_size=(512, 512))
    conv3 = [2 * 2 * 32 * 9 * 512**2] + [2 * 32 * 32 * 9 * (512 >> k) ** 2 for k in range(1, 5)]
    dense = [2 * 32 * 32 * 16**2] * 2 + [2 * 32 * 2 * 16**2]
    assert net.flops() == sum(conv3) + sum(dense)
    assert 1.8e9 < net.flops() < 2.0e9
    assert BSplineDIR(grid_spacing=8, kernels=32, image_size=(128, 128)).flops((256, 256)) == \
        BSplineDIR(grid_spacing=8, kernels=32, image_size=(256, 256)).flops()


def test_keep_freed_memory_is_idempotent_and_changes_no_value():
    net = random_network()
    images = np.random.default_rng(4).random((3, 64, 64)).astype(np.float32)
    before = register_pairs(net, images, [(1, 0), (2, 1)], precision="float32")
    first = inference.keep_freed_memory()
    assert inference.keep_freed_memory() == first  # a second call changes nothing
    torch.testing.assert_close(register_pairs(net, images, [(1, 0), (2, 1)], precision="float32"), before,
                               rtol=0, atol=0)


def test_fast_paths_normalise_groups_as_the_module():
    """A ``group_norm`` network: the float32 fast path equals the module (GroupNorm's affine parameters used as the
    module uses them), and bfloat16 stays within the precision test's tolerance of it."""
    torch.manual_seed(0)
    net = BSplineDIR(grid_spacing=8, kernels=8, image_size=(64, 64), group_norm=4)
    with torch.no_grad():
        net.net[-1].weight.normal_(0, 0.5)
        for m in net.net:
            if isinstance(m, torch.nn.GroupNorm):  # not the identity initialisation, so the parameters matter
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    net.optimise_for_inference()
    g = torch.Generator().manual_seed(1)
    f, m = torch.rand(4, 1, 64, 64, generator=g), torch.rand(4, 1, 64, 64, generator=g)
    with torch.inference_mode():
        module = net(f, m)
        fast32 = net(f, m, dtype=torch.float32)
        fast16 = net(f, m, dtype=torch.bfloat16)
    assert float(module.abs().max()) > 0.1
    torch.testing.assert_close(fast32, module, rtol=0, atol=1e-5)
    assert float((fast16 - module).abs().max()) < 0.05 * float(module.abs().max())
