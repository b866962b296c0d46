"""elastix's B-spline registration (PyPI ``itk-elastix``) as a registration: the classical tool de Vos et al. (2019)
compared DLIR with.

Per pair, elastix (Klein et al. 2010) optimises a cubic B-spline transform with normalised correlation
(``AdvancedNormalizedCorrelation``) plus the bending energy of the transform (``TransformBendingEnergyPenalty``,
weight ``bending_weight`` on elastix's own scale, not the network's ``alpha``) by adaptive stochastic gradient
descent on random samples, coarse to fine; then transformix writes the dense field.  The settings start from
elastix's default ``bspline`` parameter map, with the final grid spacing of the network and a fixed random seed;
one thread, so a run is reproducible. The pairs are independent: with ``workers > 1`` they are registered in that
many processes at once (one thread each, the same fields as one after the other).

Conventions (checked on known shifts in the tests)
---------------------------------------------------
* The images go to ITK with spacing 1 and origin 0, so physical units are pixels and physical ``(x, y)`` is
  ``(column, row)``: ``itk.image_from_array`` indexes a NumPy ``(H, W)`` array as ITK index ``(x=col, y=row)``.
* elastix's transform ``T`` maps a point of the *fixed* image to the *moving* image, and the result image is
  ``moving(T(p))``; transformix's deformation field is ``T(p) - p`` at every fixed pixel, ``(H, W, 2)`` in
  ``(x, y)`` order.  Our displacement is therefore that field with its last axis reversed and moved first:
  channel 0 (rows) = field ``y``, channel 1 (columns) = field ``x``, and ``warped(p) = moving(p + u(p))`` holds.
* Parameter-map values are strings (``FinalGridSpacingInPhysicalUnits`` in physical units = pixels here).

``itk-elastix`` is optional (``pip install .[elastix]``); :func:`elastix_available` says whether it is installed
and :data:`MISSING` is the one line the comparisons print when it is not.
"""

from __future__ import annotations

import atexit
import importlib.metadata
import multiprocessing
import tempfile
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import torch
from torch import Tensor

__all__ = ["ElastixBSpline", "elastix_available", "MISSING"]

#: printed by the comparisons when itk-elastix is not installed
MISSING = "elastix: not installed (pip install '.[elastix]'), left out of this comparison"


def elastix_available() -> bool:
    """Whether ``itk-elastix`` is installed (read from the installed distributions: importing ITK takes seconds)."""
    try:
        importlib.metadata.version("itk-elastix")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


#: the worker pools of :meth:`ElastixBSpline.__call__` by size, kept for the process's lifetime: each worker
#: imports ITK once (seconds), not once per call
_POOLS: dict[int, ProcessPoolExecutor] = {}


def _import_itk() -> None:
    """A pool worker's initializer: import ITK's elastix module before the first pair."""
    import itk

    itk.ElastixRegistrationMethod  # noqa: B018 - ITK loads its modules lazily, on first attribute access


def _started(_i: int) -> bool:
    return True


def _pool(workers: int) -> ProcessPoolExecutor:
    """A ``spawn`` pool of ``workers`` processes, started (ITK imported in each) before it is returned."""
    pool = _POOLS.get(workers)
    if pool is None:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_import_itk)
        list(pool.map(_started, range(workers)))  # workers queued at once: every process is started now
        _POOLS[workers] = pool
        atexit.register(pool.shutdown, cancel_futures=True)
    return pool


def _displacement(registration: "ElastixBSpline", fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    return registration.displacement(fixed, moving)


class ElastixBSpline:
    """``reg(fixed, moving) -> displacement`` by elastix's B-spline registration, one pair at a time.

    Parameters
    ----------
    grid_spacing : final control-point spacing in pixels (the network's ``registration.grid_spacing``).
    bending_weight : weight of ``TransformBendingEnergyPenalty`` against the NCC metric (weight 1).
    iterations : ASGD iterations per resolution (elastix's default 256).
    resolutions : pyramid levels; the grid spacing doubles per coarser level (``GridSpacingSchedule`` 2^r).
    samples : random samples per iteration (``NumberOfSpatialSamples``; elastix's default 2048).
    mask : ``'sector'``: the NCC counts only the fixed image's sector without its edge
        (:func:`echo_utils.registration.losses.sector_mask`, the network's ``loss_mask``); ``'none'``: every pixel.
    seed : elastix's ``RandomSeed`` (the sample positions).
    threads : elastix's threads (1: reproducible and fair on a shared machine).
    workers : pairs registered at once, each in its own process (``spawn``, started on first use and kept): the
        fields are those of one after the other; the time per pair divides by up to ``workers``. Speed only: not
        part of :attr:`runtime_attributes`' fingerprint.
    """

    needs_grad = False  # the registration protocol (.protocol): numpy inside, float32 out
    inference_dtype = None
    #: attributes that change how fast the fields come, not the fields (left out of the pseudo-label fingerprint)
    runtime_attributes = ("workers",)

    def __init__(self, grid_spacing: int = 8, bending_weight: float = 1.0, iterations: int = 256, resolutions: int = 3,
                 samples: int = 2048, mask: str = "none", seed: int = 121212, threads: int = 1, workers: int = 1):
        if (grid_spacing < 1 or bending_weight < 0 or iterations < 1 or resolutions < 1 or samples < 16 or threads < 1
                or workers < 1):
            raise ValueError(
                f"ElastixBSpline: bad settings grid_spacing={grid_spacing} bending_weight={bending_weight} "
                f"iterations={iterations} resolutions={resolutions} samples={samples} threads={threads} "
                f"workers={workers}"
            )
        if mask not in ("none", "sector"):
            raise ValueError(f"ElastixBSpline: unknown mask {mask!r}; use 'none' or 'sector'")
        self.grid_spacing = int(grid_spacing)
        self.bending_weight = float(bending_weight)
        self.iterations = int(iterations)
        self.resolutions = int(resolutions)
        self.samples = int(samples)
        self.mask = mask
        self.seed = int(seed)
        self.threads = int(threads)
        self.workers = int(workers)

    def __repr__(self) -> str:
        return (f"ElastixBSpline(grid_spacing={self.grid_spacing}, bending_weight={self.bending_weight:g}, "
                f"iterations={self.iterations}, resolutions={self.resolutions}, samples={self.samples}"
                + (f", mask={self.mask!r}" if self.mask != "none" else "")
                + (f", workers={self.workers})" if self.workers > 1 else ")"))

    def parameter_map(self) -> dict[str, list[str]]:
        """The elastix parameter map used for every pair (string values, as elastix reads them)."""
        r = self.resolutions
        return {
            "Registration": ["MultiMetricMultiResolutionRegistration"],
            "Metric": ["AdvancedNormalizedCorrelation", "TransformBendingEnergyPenalty"],
            "Metric0Weight": ["1.0"],
            "Metric1Weight": [repr(self.bending_weight)],
            "Transform": ["BSplineTransform"],
            "BSplineTransformSplineOrder": ["3"],
            "FinalGridSpacingInPhysicalUnits": [str(self.grid_spacing)] * 2,
            "GridSpacingSchedule": [str(2**k) for k in reversed(range(r)) for _ in range(2)],
            "NumberOfResolutions": [str(r)],
            "FixedImagePyramid": ["FixedSmoothingImagePyramid"],
            "MovingImagePyramid": ["MovingSmoothingImagePyramid"],
            "Optimizer": ["AdaptiveStochasticGradientDescent"],
            "AutomaticParameterEstimation": ["true"],
            "MaximumNumberOfIterations": [str(self.iterations)],
            "ImageSampler": ["RandomCoordinate"],
            "NumberOfSpatialSamples": [str(self.samples)],
            "NewSamplesEveryIteration": ["true"],
            "CheckNumberOfSamples": ["true"],
            "MaximumNumberOfSamplingAttempts": ["8"],
            "RandomSeed": [str(self.seed)],
            "Interpolator": ["LinearInterpolator"],
            "ResampleInterpolator": ["FinalBSplineInterpolator"],
            "FinalBSplineInterpolationOrder": ["3"],
            "Resampler": ["DefaultResampler"],
            "DefaultPixelValue": ["0"],
            "HowToCombineTransforms": ["Compose"],
            "WriteResultImage": ["false"],
            "WriteIterationInfo": ["false"],
        }

    def displacement(self, fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
        """``(2, H, W)`` float32 displacement (px, rows then columns) of one ``(H, W)`` pair."""
        import itk

        f = itk.image_from_array(np.ascontiguousarray(fixed, dtype=np.float32))
        m = itk.image_from_array(np.ascontiguousarray(moving, dtype=np.float32))
        params = itk.ParameterObject.New()
        params.AddParameterMap(self.parameter_map())
        method = itk.ElastixRegistrationMethod.New(f, m)
        method.SetParameterObject(params)
        method.SetLogToConsole(False)
        method.SetNumberOfThreads(self.threads)
        if self.mask == "sector":
            from .losses import sector_mask

            inside = sector_mask(torch.from_numpy(np.asarray(fixed, dtype=np.float32))[None, None])[0, 0].numpy()
            method.SetFixedMask(itk.image_from_array(inside.astype(np.uint8)))
        method.UpdateLargestPossibleRegion()
        with tempfile.TemporaryDirectory(prefix="echo-transformix-") as out:
            # transformix writes deformationField.{mhd,raw} into its output directory (default: the working folder)
            transformix = itk.TransformixFilter.New(m)
            transformix.SetTransformParameterObject(method.GetTransformParameterObject())
            transformix.SetComputeDeformationField(True)
            transformix.SetOutputDirectory(out)
            transformix.SetLogToConsole(False)
            transformix.UpdateLargestPossibleRegion()
            field = itk.array_from_image(transformix.GetOutputDeformationField())  # (H, W, 2): x, y
        return np.ascontiguousarray(np.moveaxis(field[..., ::-1], -1, 0), dtype=np.float32)

    def __call__(self, fixed: Tensor, moving: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """``(N, 2, H, W)`` float32 displacement in pixels such that ``warp(moving, u) ~ fixed`` (``dtype``, the
        protocol's precision, is ignored: the computation is float32)."""
        if fixed.shape != moving.shape or fixed.ndim != 4 or fixed.shape[1] != 1:
            raise ValueError(f"fixed and moving must both be (N,1,H,W); got {tuple(fixed.shape)}, {tuple(moving.shape)}")
        if not elastix_available():
            raise ImportError(MISSING)
        f = fixed.detach().float().cpu().numpy()[:, 0]
        m = moving.detach().float().cpu().numpy()[:, 0]
        if self.workers > 1:  # one pair too: this process then never imports ITK (seconds) for a timing warm-up
            try:
                u = np.stack(list(_pool(self.workers).map(_displacement, [self] * len(f), f, m)))
            except BrokenProcessPool:  # a worker died (e.g. an interrupted cell's SIGINT): a new pool, once
                _POOLS.pop(self.workers).shutdown(wait=False, cancel_futures=True)
                u = np.stack(list(_pool(self.workers).map(_displacement, [self] * len(f), f, m)))
        else:
            u = np.stack([self.displacement(a, b) for a, b in zip(f, m)])
        return torch.from_numpy(u).to(fixed.device)
