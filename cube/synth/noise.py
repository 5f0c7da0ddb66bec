"""Random fields with a power-law spectrum: the texture of land cover, clouds and haze."""

from __future__ import annotations

import numpy as np


def fractal_noise(
    rng: np.random.Generator, shape: tuple[int, int], beta: float, stretch: float = 1.0, angle: float = 0.0
) -> np.ndarray:
    """A zero-mean, unit-variance field whose power spectrum falls as ``|k| ** -beta``.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : (height, width)
    beta : float
        Spectral slope: ~2 is rough, ~3 gives smooth blobs, ~4 gentle large-scale trends.
    stretch : float
        Anisotropy: > 1 elongates features along ``angle`` (streaky cirrus).
    angle : float
        Direction of elongation in radians.

    Returns
    -------
    numpy.ndarray
        float32 array of ``shape``.
    """
    h, w = shape
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    along = kx * np.cos(angle) + ky * np.sin(angle)
    across = -kx * np.sin(angle) + ky * np.cos(angle)
    k = np.hypot(along * stretch, across)
    k[0, 0] = np.inf
    spectrum = np.fft.rfft2(rng.standard_normal(shape)) * k ** (-beta / 2)
    field = np.fft.irfft2(spectrum, s=shape)
    field -= field.mean()
    field /= field.std() or 1.0
    return field.astype(np.float32)


def threshold_for_fraction(field: np.ndarray, fraction: float) -> float:
    """The value above which ``fraction`` of the field's pixels lie."""
    if fraction <= 0:
        return float(np.inf)
    if fraction >= 1:
        return float(-np.inf)
    return float(np.quantile(field, 1.0 - fraction))
