"""Deformable image registration: the DLIR B-spline network, its instance-optimised twin and the identity control.

A *registration* is any callable ``reg(fixed, moving) -> displacement`` with ``fixed`` and ``moving`` float tensors
``(N, 1, H, W)`` in [0, 1] and the displacement ``(N, 2, H, W)`` in **pixels** (channel 0 along rows, channel 1
along columns).  The warped image is ``warped(p) = moving(p + u(p))``, computed by :func:`warp`.

One concept per module (as in TorchIR and deepali, which the paper's authors' code builds on):

* :mod:`.bspline` -- the cubic B-spline free-form deformation (control points -> dense field);
* :mod:`.warp` -- resampling images and label maps at ``p + u(p)``;
* :mod:`.losses` -- ``-NCC + alpha * bending energy``;
* :mod:`.models` -- :class:`BSplineDIR` (DIRNet, de Vos et al. 2019), :class:`InstanceBSpline` (per-pair FFD,
  Rueckert et al. 1999), :class:`IdentityRegistration` and :func:`registration_from_config`;
* :mod:`.elastix`, :mod:`.optical_flow` -- the classical references: elastix's B-spline registration
  (:class:`ElastixBSpline`, optional ``itk-elastix``) and TV-L1 optical flow (:class:`OpticalFlowTVL1`);
* :mod:`.train` -- frame pairs, cached resumable training, the loss log;
* :mod:`.protocol` -- :class:`Registration`: the call and what a registration declares (gradients, precision);
* :mod:`.inference` -- the one batched inference path (batching, precision, gradient mode, memoisation);
* :mod:`.quality` -- Jacobian determinant, folding, per-pair quality tables.
"""

from .bspline import (
    bspline_basis_matrix,
    bspline_kernel_1d,
    bspline_upsample,
    control_grid_shape,
    control_point_positions,
    cubic_bspline,
)
from .inference import MemoizedRegistration, inference_context, register, register_pairs, seconds_per_pair
from .elastix import ElastixBSpline, elastix_available
from .optical_flow import OpticalFlowTVL1
from .losses import LossTerms, RegistrationLoss, bending_energy, gaussian_blur, ncc
from .factory import REGISTRATIONS, available_registrations, registration_from_config
from .models import BSplineDIR, IdentityRegistration, InstanceBSpline, RefinedRegistration
from .protocol import Registration, as_registration
from .quality import (
    compare_registrations,
    evaluate_registration,
    folding_fraction,
    jacobian_determinant,
    jacobian_summary,
    sample_pairs,
    sharpness,
    warped_averages,
)
from .train import FIELD_VARIATION_MIN, field_variation, frame_pairs, load_registration, load_training_log, train_registration
from .warp import deformation_grid, sampling_grid, warp

__all__ = [
    "cubic_bspline",
    "bspline_kernel_1d",
    "control_grid_shape",
    "control_point_positions",
    "bspline_basis_matrix",
    "bspline_upsample",
    "warp",
    "sampling_grid",
    "deformation_grid",
    "ncc",
    "bending_energy",
    "gaussian_blur",
    "LossTerms",
    "RegistrationLoss",
    "BSplineDIR",
    "InstanceBSpline",
    "RefinedRegistration",
    "IdentityRegistration",
    "ElastixBSpline",
    "OpticalFlowTVL1",
    "elastix_available",
    "REGISTRATIONS",
    "registration_from_config",
    "jacobian_determinant",
    "folding_fraction",
    "evaluate_registration",
    "sample_pairs",
    "sharpness",
    "warped_averages",
    "jacobian_summary",
    "compare_registrations",
    "frame_pairs",
    "field_variation",
    "FIELD_VARIATION_MIN",
    "train_registration",
    "load_registration",
    "load_training_log",
    "register",
    "register_pairs",
    "seconds_per_pair",
    "MemoizedRegistration",
    "inference_context",
    "Registration",
    "as_registration",
]
