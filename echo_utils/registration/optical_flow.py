"""Dense TV-L1 optical flow (scikit-image) as a registration: the motion estimate earlier echo work warped labels with.

Chen et al. (TAN) adjusted annotations with optical flow and Wei et al. (CLAS) warp ED/ES labels through learned
flows; the classical dense estimator here is the TV-L1 flow of Zach, Pock and Bischof (2007) as implemented by
:func:`skimage.registration.optical_flow_tvl1` (Wedel et al.'s improvements, a coarse-to-fine pyramid).  It returns
the ``(row, col)`` flow ``v`` such that ``reference(p) ~ moving(p + v(p))``: exactly this package's protocol with
``reference = fixed``, so the field is returned as it comes (checked on a known shift in the tests).

Unlike the B-spline registrations it has no control grid: the smoothness of the field is set by the TV weight
(``attachment``, the data term's weight: smaller is smoother) and by the optional Gaussian smoothing of both images
(``sigma``, px) that removes frame-to-frame speckle before the flow is estimated.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["OpticalFlowTVL1"]


class OpticalFlowTVL1:
    """``reg(fixed, moving) -> displacement`` by TV-L1 optical flow, one pair at a time (NumPy, one thread).

    Parameters
    ----------
    attachment : weight of the data term (skimage's ``attachment``, default 15); smaller gives smoother fields.
    tightness : coupling of the two sub-problems (skimage's ``tightness``).
    num_warp : image warps per pyramid level.
    num_iter : fixed-point iterations per warp.
    tol : convergence tolerance.
    sigma : Gaussian smoothing (px) of both images before the flow (0: raw images).
    prefilter : median-filter the flow between warps (skimage's ``prefilter``).
    """

    needs_grad = False  # the registration protocol (.protocol): numpy inside, float32 out
    inference_dtype = None

    def __init__(self, attachment: float = 15.0, tightness: float = 0.3, num_warp: int = 5, num_iter: int = 10,
                 tol: float = 1e-4, sigma: float = 0.0, prefilter: bool = False):
        if attachment <= 0 or tightness <= 0 or num_warp < 1 or num_iter < 1 or tol <= 0 or sigma < 0:
            raise ValueError(
                f"OpticalFlowTVL1: bad settings attachment={attachment} tightness={tightness} num_warp={num_warp} "
                f"num_iter={num_iter} tol={tol} sigma={sigma}"
            )
        self.attachment = float(attachment)
        self.tightness = float(tightness)
        self.num_warp = int(num_warp)
        self.num_iter = int(num_iter)
        self.tol = float(tol)
        self.sigma = float(sigma)
        self.prefilter = bool(prefilter)

    def __repr__(self) -> str:
        return (f"OpticalFlowTVL1(attachment={self.attachment:g}, tightness={self.tightness:g}, "
                f"num_warp={self.num_warp}, num_iter={self.num_iter}, sigma={self.sigma:g})")

    def flow(self, fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
        """``(2, H, W)`` float32 flow (px, rows then columns) of one ``(H, W)`` pair: ``fixed(p) ~ moving(p + v(p))``."""
        from scipy.ndimage import gaussian_filter
        from skimage.registration import optical_flow_tvl1

        f = np.asarray(fixed, dtype=np.float32)
        m = np.asarray(moving, dtype=np.float32)
        if self.sigma > 0:
            f = gaussian_filter(f, self.sigma, mode="reflect")
            m = gaussian_filter(m, self.sigma, mode="reflect")
        v = optical_flow_tvl1(f, m, attachment=self.attachment, tightness=self.tightness, num_warp=self.num_warp,
                              num_iter=self.num_iter, tol=self.tol, prefilter=self.prefilter, dtype=np.float32)
        return np.asarray(v, dtype=np.float32)

    def __call__(self, fixed: Tensor, moving: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        """``(N, 2, H, W)`` float32 displacement in pixels such that ``warp(moving, u) ~ fixed`` (``dtype``, the
        protocol's precision, is ignored: the computation is float32)."""
        if fixed.shape != moving.shape or fixed.ndim != 4 or fixed.shape[1] != 1:
            raise ValueError(f"fixed and moving must both be (N,1,H,W); got {tuple(fixed.shape)}, {tuple(moving.shape)}")
        f = fixed.detach().float().cpu().numpy()[:, 0]
        m = moving.detach().float().cpu().numpy()[:, 0]
        u = np.stack([self.flow(a, b) for a, b in zip(f, m)])
        return torch.from_numpy(u).to(fixed.device)
