"""The registration protocol (echo_utils.registration.protocol): declared attributes, the defaults of a bare callable."""

from __future__ import annotations

import pytest
import torch

from echo_utils.registration import IdentityRegistration, InstanceBSpline, OpticalFlowTVL1, inference_context
from echo_utils.registration.protocol import CallableRegistration, Registration, as_registration, unwrap


def test_declared_registrations_pass_through_and_a_bare_callable_gets_the_defaults():
    flow = OpticalFlowTVL1()
    assert isinstance(flow, Registration) and as_registration(flow) is flow  # declares both: used as is

    def shift(fixed, moving):
        return torch.ones(fixed.shape[0], 2, *fixed.shape[-2:])

    reg = as_registration(shift)
    assert isinstance(reg, CallableRegistration) and unwrap(reg) is shift
    assert reg.needs_grad is False and reg.inference_dtype is None
    x = torch.zeros(3, 1, 8, 8)
    assert torch.equal(reg(x, x, dtype=torch.bfloat16), torch.ones(3, 2, 8, 8))  # the precision is ignored
    assert isinstance(as_registration(InstanceBSpline(8)), Registration)
    assert as_registration(InstanceBSpline(8)).needs_grad is True  # declared: never called under inference_mode
    assert isinstance(inference_context(InstanceBSpline(8)), torch.no_grad)
    assert as_registration(IdentityRegistration()).needs_grad is False
    with pytest.raises(TypeError, match="must be callable"):
        as_registration(42)
