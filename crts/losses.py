"""Training losses: L1, L2, and the Gaussian negative log-likelihood with a diagonal covariance (UnCRtainTS).

``MGNLL`` is the loss UnCRtainTS trains with (``--loss MGNLL --covmode diag``):
per pixel, the negative log-density of the target's 13 bands under a Gaussian
with the predicted means and a diagonal covariance of the predicted variances,

    0.5 * (k log(2 pi) + sum_c log var_c + max(sum_c (target_c - mean_c)^2 / var_c, 1e-9)),

k = 13, averaged over pixels and images. As in the original (``full=True``) the
constant ``0.5 k log(2 pi)`` is included. Variances are floored at 1e-8 for the
value while gradients pass as if unclamped (the original clamps in place under
``no_grad``).

One deliberate difference: the original evaluates this with two nested
``vmap``s over the pixel grid, inside which ``var.log().sum()`` sums the
log-determinant over the whole batch, so every image's loss carries the
log-determinants of all B images of its batch; its optimum is then var = err^2 / B
rather than err^2. ``batch_logdet=True`` reproduces that; the default is the
per-image likelihood above (both are equal for B = 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .settings import LOSSES

VARIANCE_FLOOR = 1e-8
"""Smallest variance the likelihood uses (the original's ``eps``)."""
MAHALANOBIS_FLOOR = 1e-9
"""Smallest squared Mahalanobis distance (the original clamps it there)."""


def gaussian_nll(
    mean: torch.Tensor, target: torch.Tensor, variance: torch.Tensor, batch_logdet: bool = False
) -> torch.Tensor:
    """Gaussian negative log-likelihood with diagonal covariance, averaged over images and pixels.

    Parameters
    ----------
    mean, target, variance : torch.Tensor
        (N, C, H, W); the channel axis holds the bands of one multivariate pixel.
    batch_logdet : bool
        Sum the log-determinant over the batch as the original implementation does
        (see the module docstring).

    Returns
    -------
    torch.Tensor
        The scalar loss.
    """
    floored = variance + (variance.clamp(min=VARIANCE_FLOOR) - variance).detach()
    logdet = torch.log(floored).sum(dim=1)  # (N, H, W)
    if batch_logdet:
        logdet = logdet.sum(dim=0, keepdim=True).expand_as(logdet)
    mahalanobis = ((target - mean) ** 2 / floored).sum(dim=1).clamp(min=MAHALANOBIS_FLOOR)
    k = mean.shape[1]
    return (0.5 * (k * math.log(2 * math.pi) + logdet + mahalanobis)).mean()


def reconstruction_loss(
    name: str, mean: torch.Tensor, target: torch.Tensor, variance: torch.Tensor | None = None
) -> torch.Tensor:
    """The loss ``name`` (one of :data:`LOSSES`); ``MGNLL`` needs ``variance``."""
    if name == "l1":
        return F.l1_loss(mean, target)
    if name == "l2":
        return F.mse_loss(mean, target)
    if name == "MGNLL":
        if variance is None:
            raise ValueError("MGNLL needs predicted variances: a model such as UnCRtainTS")
        return gaussian_nll(mean, target, variance)
    raise ValueError(f"invalid loss {name!r}: choose from {', '.join(LOSSES)}")
