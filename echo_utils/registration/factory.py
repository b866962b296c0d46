"""The one way to build each registration from a profile's ``registration`` section.

:func:`registration_from_config` sits above the network (:mod:`.models`), its training (:mod:`.train`) and the
classical references (:mod:`.elastix`, :mod:`.optical_flow`), so none of them imports another to be built.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .elastix import MISSING as ELASTIX_MISSING
from .elastix import ElastixBSpline, elastix_available
from .models import IdentityRegistration, InstanceBSpline
from .optical_flow import OpticalFlowTVL1
from .train import train_registration

__all__ = ["REGISTRATIONS", "available_registrations", "registration_from_config"]

#: the registrations :func:`registration_from_config` builds
REGISTRATIONS = ("dlir", "instance", "identity", "elastix", "optical_flow")


def registration_from_config(
    name: str,
    config,
    *,
    train: Sequence | None = None,
    val: Sequence | None = None,
    run_dir: str | Path | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    exclude_patients: Sequence[str] = (),
    monitor=None,
):
    """Build the registration ``name`` from a profile's ``registration`` section: the one way to make each of them.

    Parameters
    ----------
    name : ``'dlir'`` (the trained network; trained now or read from the cache, see
        :func:`~echo_utils.registration.train.train_registration`), ``'instance'`` (:class:`InstanceBSpline` with
        the network's grid spacing, bending weight and loss smoothing, and the ``instance_*`` optimiser settings) or
        ``'identity'`` (:class:`IdentityRegistration`), ``'elastix'``
        (:class:`~echo_utils.registration.elastix.ElastixBSpline` at the network's grid spacing with the
        ``elastix`` settings; needs ``itk-elastix``) or ``'optical_flow'``
        (:class:`~echo_utils.registration.optical_flow.OpticalFlowTVL1` with the ``optical_flow`` settings).
    config : a :class:`~echo_utils.config.RegistrationConfig` (``cfg.registration``).
    train, val, run_dir, device, progress : for ``'dlir'`` only: the training and validation sequences, the
        registration cache folder (``paths.registration``), the device and the progress bar.
    exclude_patients : for ``'dlir'`` only: patients never trained or validated on
        (``study.cohort.exclusions``, from :func:`echo_utils.data.cohort.ted_exclusions`: the TED patients on
        the paper profile).
    monitor : for ``'dlir'`` only: extra columns logged at every validation
        (:func:`echo_utils.study.stages.training_monitor`: the end-point error on the phantom).

    Returns
    -------
    A registration callable; the network is in eval mode, ready for inference.
    """
    if name == "identity":
        return IdentityRegistration()
    if name == "instance":
        return InstanceBSpline(
            grid_spacing=int(config.grid_spacing),
            alpha=float(config.alpha),
            iterations=int(config.instance_iterations),
            lr=float(config.instance_lr),
            sigma=float(getattr(config, "loss_sigma", 0.0) or 0.0),
            alpha_reference_size=getattr(config, "alpha_reference_size", None),
            mask=getattr(config, "loss_mask", "none"),
        )
    if name == "elastix":
        e = config.elastix
        return ElastixBSpline(grid_spacing=int(config.grid_spacing), bending_weight=float(e.bending_weight),
                              iterations=int(e.iterations), resolutions=int(e.resolutions), samples=int(e.samples),
                              mask=e.mask, seed=int(e.seed), threads=int(e.threads), workers=int(e.workers))
    if name == "optical_flow":
        o = config.optical_flow
        return OpticalFlowTVL1(attachment=float(o.attachment), tightness=float(o.tightness),
                               num_warp=int(o.num_warp), num_iter=int(o.num_iter), sigma=float(o.sigma))
    if name == "dlir":
        if train is None or run_dir is None:
            raise ValueError("registration_from_config('dlir', ...) needs the training sequences and run_dir")
        model = train_registration(train, config, run_dir, val_sequences=val, device=device, progress=progress,
                                   exclude_patients=exclude_patients, monitor=monitor)
        return model.optimise_for_inference()
    raise ValueError(f"unknown registration {name!r}; expected one of {REGISTRATIONS}")


def available_registrations(names: Sequence[str] = REGISTRATIONS, *, log=print) -> list[str]:
    """``names`` in their order, without ``'elastix'`` when the optional extra ``itk-elastix`` is not installed; then
    one line (:data:`echo_utils.registration.elastix.MISSING`) goes to ``log`` so a comparison says what it left out."""
    names = list(names)
    if "elastix" in names and not elastix_available():
        log(ELASTIX_MISSING)
        names.remove("elastix")
    return names
