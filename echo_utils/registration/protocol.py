"""The registration protocol: what the batched inference path may ask of a registration, declared, not probed.

A *registration* (DESIGN.md) is a callable ``reg(fixed, moving) -> displacement``: ``fixed`` and ``moving`` float
tensors ``(N, 1, H, W)`` in [0, 1], the displacement ``(N, 2, H, W)`` in pixels.  :class:`Registration` adds the two
things the one inference path (:mod:`.inference`) needs to know, as attributes every registration of the package
declares:

* ``needs_grad`` -- ``True`` for a registration that optimises each pair with autograd inside its call
  (:class:`~echo_utils.registration.models.InstanceBSpline`): it is called under ``no_grad``, never under
  ``inference_mode``, whose tensors cannot enter autograd.  ``False`` for every other one.
* ``inference_dtype`` -- the precision its call computes in when the caller does not choose one
  (``torch.float32``, ``torch.bfloat16``), or ``None``: the device's choice
  (:func:`~echo_utils.registration.inference.default_precision`).

and its call takes the precision as a keyword, ``reg(fixed, moving, dtype=None)``: the DLIR network runs its one
forward pass with its activations in ``dtype`` (its fast inference path; ``None`` is the training path); a
registration that computes in float32 only (the identity, the per-pair optimisers, elastix, optical flow) accepts
and ignores it.  The displacement is float32 either way.

Any other callable (a function, a lambda, a test double) is a registration too: :func:`as_registration` gives it
the defaults (no gradients needed, no precision of its own, ``dtype`` ignored), once, at the entry of the batched
path, instead of a ``hasattr`` probe at every place that needs to know.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

__all__ = ["Registration", "CallableRegistration", "as_registration", "unwrap"]


@runtime_checkable
class Registration(Protocol):
    """``reg(fixed, moving, dtype=None) -> displacement`` that declares ``needs_grad`` and ``inference_dtype``
    (module docstring).  ``isinstance(obj, Registration)`` is True for an object that declares both attributes."""

    needs_grad: bool
    inference_dtype: torch.dtype | None

    def __call__(self, fixed: Tensor, moving: Tensor, dtype: torch.dtype | None = None) -> Tensor: ...


class CallableRegistration:
    """A callable that does not declare the protocol, as a :class:`Registration`: ``needs_grad`` as given
    (default ``False``), ``inference_dtype = None``, and ``dtype`` ignored (it is called as ``fn(fixed, moving)``).
    The callable is :attr:`registration`."""

    inference_dtype = None

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor], *, needs_grad: bool = False):
        if not callable(fn):
            raise TypeError(f"a registration must be callable as reg(fixed, moving), got {type(fn).__name__}")
        self.registration = fn
        self.needs_grad = bool(needs_grad)

    def __call__(self, fixed: Tensor, moving: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        return self.registration(fixed, moving)

    def __repr__(self) -> str:
        return f"CallableRegistration({self.registration!r})"


def as_registration(registration) -> Registration:
    """``registration`` itself when it declares the protocol, else a :class:`CallableRegistration` around it.

    Every registration of the package declares the protocol; anything else gets the defaults (a callable that
    optimises with autograd inside must declare ``needs_grad = True``).  Not callable: a ``TypeError``."""
    if isinstance(registration, Registration):
        return registration
    return CallableRegistration(registration)


def unwrap(registration):
    """The object an adapter (:class:`CallableRegistration` or a subclass) stands for: where its parameters and device
    are read.  Anything else is returned as is."""
    while isinstance(registration, CallableRegistration):
        registration = registration.registration
    return registration
