"""Batched registration inference: the one path every caller uses to register many image pairs.

It owns the inference policy that the paper's pipeline needs when it registers every consecutive frame pair of a
sequence (Sec. 2.3 of the paper): batching, the gradient mode (``inference_mode`` for a trained network, ``no_grad``
for a registration that optimises per pair), the precision of a network (float32 or bfloat16 autocast, with the
B-spline upsampling always in float32) and memoisation of pairs already registered.

* :func:`register_pairs` -- frame-index pairs of one ``(T, H, W)`` sequence (propagation, pseudo-labels);
* :func:`register` -- ``(N, H, W)`` arrays of fixed and moving images (evaluation tables, figures);
* :class:`MemoizedRegistration` -- a registration that returns the stored field of an image pair seen before;
* :func:`inference_context` -- the gradient mode a registration needs.
"""

from __future__ import annotations

import contextlib
import hashlib
import functools
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from .models import BSplineDIR
from .protocol import Registration, as_registration, unwrap

__all__ = [
    "register_pairs",
    "register",
    "MemoizedRegistration",
    "inference_context",
    "native_bfloat16",
    "default_precision",
    "seconds_per_pair",
    "PRECISIONS",
]

Precision = Literal["auto", "float32", "bfloat16"]
PRECISIONS = ("auto", "float32", "bfloat16")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}

#: largest first-layer activation of one network call (bytes): pairs per call are capped so that it fits, which
#: keeps the full-resolution feature maps few and reused instead of freshly allocated (and page-faulted) per call
_ACTIVATION_BUDGET = 64 << 20


@functools.lru_cache(maxsize=None)
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bfloat16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU that supports it, or a CPU with AVX-512 BF16 or AMX
    instructions (read from the CPU flags at run time). Elsewhere bfloat16 is emulated and slower than float32."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    return bool({"avx512_bf16", "amx_bf16"} & _cpu_flags())


def default_precision(device: str | torch.device = "cpu") -> str:
    """``'bfloat16'`` where :func:`native_bfloat16`, else ``'float32'``: the precision of ``precision='auto'``."""
    return "bfloat16" if native_bfloat16(device) else "float32"


def registration_device(registration) -> torch.device:
    """The device of a module's parameters (or buffers); the CPU for any other callable."""
    if isinstance(registration, MemoizedRegistration):
        registration = registration.registration
    registration = unwrap(registration)
    if isinstance(registration, torch.nn.Module):
        for p in registration.parameters():
            return p.device
        for b in registration.buffers():
            return b.device
    return torch.device("cpu")


def inference_context(registration) -> contextlib.AbstractContextManager:
    """``inference_mode`` for a trained network (a module with parameters); ``no_grad`` otherwise.

    A per-pair optimiser such as ``InstanceBSpline`` declares ``needs_grad = True`` (:mod:`.protocol`): it
    re-enables gradients inside its call, which works under ``no_grad`` but not with the inference tensors that
    ``inference_mode`` would create.
    """
    registration = as_registration(registration)
    if registration.needs_grad:
        return torch.no_grad()
    inner = unwrap(registration)
    if isinstance(inner, torch.nn.Module) and any(True for _ in inner.parameters()):
        return torch.inference_mode()
    return torch.no_grad()


def _resolve_precision(registration, precision: Precision | None) -> torch.dtype:
    registration = as_registration(registration)
    if precision is None:
        if registration.inference_dtype is not None:
            return registration.inference_dtype
        precision = "auto"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        precision = default_precision(registration_device(registration))
    return _DTYPES[precision]


def _pairs_per_call(net: BSplineDIR, shape: tuple[int, int], dtype: torch.dtype, step: int) -> int:
    """``step``, capped for a network so that its first-layer activation stays within ``_ACTIVATION_BUDGET``."""
    kernels = net.config["kernels"]
    scale = int(net.input_scale)  # the first layer runs on the pooled input
    per_pair = kernels * (shape[0] // scale) * (shape[1] // scale) * torch.finfo(dtype).bits // 8
    return max(1, min(step, _ACTIVATION_BUDGET // max(per_pair, 1)))


def _run(registration: Registration, frames: Tensor, fixed_idx: Tensor, moving_idx: Tensor, step: int,
         dtype) -> Tensor:
    """Register ``frames[fixed_idx[i]]`` with ``frames[moving_idx[i]]`` in batches of ``step``; float32 CPU fields.

    ``registration(fixed, moving, dtype=dtype)``; a network in eval mode also gets the pair cap of
    :func:`_pairs_per_call` and a ``scratch`` dict, the buffers its in-place activations reuse from batch to batch."""
    device = registration_device(registration)
    h, w = frames.shape[-2:]
    net = unwrap(registration)
    network = isinstance(net, BSplineDIR) and not net.training
    extra: dict = {}
    if network:
        step = _pairs_per_call(net, (h, w), dtype, step)
        extra["scratch"] = {}
    out = []
    with inference_context(registration):
        for s in range(0, len(fixed_idx), step):
            fixed = frames[fixed_idx[s : s + step]].to(device)
            moving = frames[moving_idx[s : s + step]].to(device)
            u = registration(fixed, moving, dtype=dtype, **extra)
            if tuple(u.shape) != (fixed.shape[0], 2, h, w):
                raise ValueError(
                    f"registration returned a displacement of shape {tuple(u.shape)}; "
                    f"expected {(fixed.shape[0], 2, h, w)}"
                )
            out.append(u.detach().float().cpu())
    return torch.cat(out).clone()


def register_pairs(
    registration: Registration,
    images: np.ndarray,
    pairs: Sequence[tuple[int, int]],
    *,
    batch_size: int | None = 64,
    precision: Precision | None = None,
) -> Tensor:
    """Register every ``(fixed, moving)`` frame-index pair of ``images`` in batched calls.

    Parameters
    ----------
    registration : ``reg(fixed, moving) -> displacement``, torch ``(N,1,H,W) -> (N,2,H,W)`` in pixels; a
        :class:`MemoizedRegistration` registers only the pairs it has not seen.
    images : float ``(T, H, W)`` in [0, 1].
    pairs : ``[(fixed index, moving index), ...]``.
    batch_size : pairs per call (``None``: all pairs in one call).
    precision : for a B-spline network (``BSplineDIR``): ``'float32'``, ``'bfloat16'`` (its convolutions and
        activations in bfloat16; the control points are upsampled to the dense field in float32) or ``'auto'``
        (:func:`default_precision`: bfloat16 where the device computes it natively). ``None``: the network's
        ``inference_dtype`` if set, else ``'auto'``. Other registrations always run in float32.

    Returns
    -------
    float32 torch tensor ``(len(pairs), 2, H, W)`` on the CPU, displacements in pixels.
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[0] < 1:
        raise ValueError(f"images must be (T, H, W) with T >= 1, got shape {images.shape}")
    images = images.astype(np.float32, copy=False)
    h, w = images.shape[1:]
    pairs = [(int(a), int(b)) for a, b in pairs]
    if not pairs:
        return torch.zeros((0, 2, h, w), dtype=torch.float32)
    if isinstance(registration, MemoizedRegistration):
        return registration.register_pairs(images, pairs, batch_size=batch_size, precision=precision)
    registration = as_registration(registration)
    dtype = _resolve_precision(registration, precision)
    frames = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)  # (T,1,H,W)
    fixed_idx = torch.as_tensor([p[0] for p in pairs])
    moving_idx = torch.as_tensor([p[1] for p in pairs])
    step = len(pairs) if not batch_size else int(batch_size)
    return _run(registration, frames, fixed_idx, moving_idx, step, dtype)


def register(
    registration: Registration,
    fixed: np.ndarray | Tensor,
    moving: np.ndarray | Tensor,
    *,
    batch_size: int = 32,
    precision: Precision | None = None,
) -> np.ndarray:
    """Register ``(N, H, W)`` (or ``(N, 1, H, W)``) arrays of fixed and moving images pair by pair, in batches.

    The same path as :func:`register_pairs` (gradient mode, precision, memoisation). Returns ``(N, 2, H, W)``
    float32 numpy displacements in pixels.
    """
    f = fixed.detach().cpu().float().numpy() if isinstance(fixed, Tensor) else np.asarray(fixed, dtype=np.float32)
    m = moving.detach().cpu().float().numpy() if isinstance(moving, Tensor) else np.asarray(moving, dtype=np.float32)
    if f.ndim == 4:
        f, m = f[:, 0], m[:, 0]
    if f.shape != m.shape or f.ndim != 3:
        raise ValueError(f"fixed and moving must both be (N, H, W); got {f.shape} and {m.shape}")
    n = f.shape[0]
    images = np.concatenate([f, m])
    u = register_pairs(registration, images, [(i, n + i) for i in range(n)], batch_size=batch_size,
                       precision=precision)
    return u.numpy()


class MemoizedRegistration:
    """Wrap a registration so that an image pair seen before returns its stored displacement (CPU tensors).

    Pairs are keyed by a hash of the two images' bytes, so comparing propagation modes (which register the same
    pairs) or assembly rules costs one registration per pair. ``hits`` and ``misses`` count the pairs. Through
    :func:`register_pairs` the missing pairs go to the wrapped registration in batches, on its fast path.
    """

    def __init__(self, registration: Registration):
        self.registration = registration
        self.store: dict[bytes, Tensor] = {}
        self.hits = 0
        self.misses = 0
        self._protocol = as_registration(registration)
        self.needs_grad = self._protocol.needs_grad

    @property
    def inference_dtype(self) -> torch.dtype | None:
        """The wrapped registration's (:mod:`.protocol`)."""
        return self._protocol.inference_dtype

    @staticmethod
    def _digest(x) -> bytes:
        a = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.ascontiguousarray(x, dtype=np.float32)
        return hashlib.blake2b(a.tobytes(), digest_size=16).digest()

    def register_pairs(self, images: np.ndarray, pairs, *, batch_size=64, precision=None) -> Tensor:
        """:func:`register_pairs` for this wrapper: the pairs not in the store go to the wrapped registration."""
        digests = [self._digest(images[k]) for k in range(images.shape[0])]
        keys = [digests[a] + digests[b] for a, b in pairs]
        todo, queued = [], set()
        for i, k in enumerate(keys):
            if k not in self.store and k not in queued:
                todo.append(i)
                queued.add(k)
        if todo:
            u = register_pairs(self.registration, images, [pairs[i] for i in todo], batch_size=batch_size,
                               precision=precision)
            for j, i in enumerate(todo):
                self.store[keys[i]] = u[j]
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        return torch.stack([self.store[k] for k in keys])

    def __call__(self, fixed: Tensor, moving: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        keys = [self._digest(fixed[i]) + self._digest(moving[i]) for i in range(fixed.shape[0])]
        todo = [i for i, k in enumerate(keys) if k not in self.store]
        if todo:
            idx = torch.as_tensor(todo)
            with inference_context(self._protocol):
                u = self._protocol(fixed[idx], moving[idx], dtype=dtype).detach().float().cpu()
            for j, i in enumerate(todo):
                self.store[keys[i]] = u[j]
        self.misses += len(todo)
        self.hits += len(keys) - len(todo)
        return torch.stack([self.store[k] for k in keys]).to(fixed.device)

    def __repr__(self) -> str:
        return f"MemoizedRegistration({self.registration!r})"


def seconds_per_pair(registration: Registration, images: np.ndarray, n_pairs: int, **kwargs) -> float:
    """Wall seconds per pair of :func:`register_pairs` on the first ``n_pairs`` consecutive frame pairs of
    ``images`` (a :class:`MemoizedRegistration` is timed on the registration it wraps, which runs every pair)."""
    import time

    if isinstance(registration, MemoizedRegistration):
        registration = registration.registration
    pairs = [(k + 1, k) for k in range(min(int(n_pairs), len(images) - 1))]
    if not pairs:
        raise ValueError("seconds_per_pair needs at least two frames")
    t0 = time.perf_counter()
    register_pairs(registration, images, pairs, **kwargs)
    return (time.perf_counter() - t0) / len(pairs)


_FREED_MEMORY_KEPT = False


def keep_freed_memory(threshold_bytes: int = 1 << 30) -> bool:
    """Let glibc's allocator reuse freed blocks of up to ``threshold_bytes`` instead of returning them to the system.

    By default glibc serves every allocation above 32 MiB with a fresh ``mmap`` and unmaps it when freed, so each
    training iteration of the DIR network at the demo size (activations of 16 x 32 x 128 x 128 float32 = 33.5 MB)
    pays page faults for every such tensor again; raising the mmap and trim thresholds keeps those pages. This
    changes no value, only where memory comes from (the process keeps up to ~2 x ``threshold_bytes`` of freed memory
    mapped). Process-wide and idempotent; a no-op (returns False) where glibc's ``mallopt`` is not available.
    """
    global _FREED_MEMORY_KEPT
    if _FREED_MEMORY_KEPT:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
        ok = libc.mallopt(m_mmap_threshold, int(threshold_bytes)) == 1
        ok = libc.mallopt(m_trim_threshold, 2 * int(threshold_bytes)) == 1 and ok
    except (OSError, AttributeError):
        return False
    _FREED_MEMORY_KEPT = ok
    return ok
