"""Clouds, haze, cirrus and cloud shadows over a cloud-free scene, with exact masks.

A sky is drawn on a grid padded by ``PAD`` pixels around the ROI mosaic, so that
clouds just outside a patch still cast their shadows into it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .noise import fractal_noise, threshold_for_fraction

PAD = 64
"""Pixels of sky drawn around the mosaic; also the largest shadow displacement."""

CLOUD_OPACITY_MIN = 0.2
"""Opacity from which a pixel counts as cloud in the ground truth."""
CIRRUS_OPACITY_MIN = 0.12
"""Cirrus opacity from which a pixel counts as cloud in the ground truth."""
SHADOW_MIN = 0.3
"""Shadow strength from which a cloud-free pixel counts as shadow in the ground truth."""

#                       B1    B2    B3    B4    B5    B6    B7    B8    B8A   B9    B10   B11   B12
_CLOUD = np.array([0.50, 0.48, 0.46, 0.45, 0.46, 0.47, 0.48, 0.48, 0.48, 0.28, 0.00, 0.33, 0.21], dtype=np.float32)
_CIRRUS = np.array([0.08, 0.08, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07, 0.07, 0.05, 0.09, 0.05, 0.03], dtype=np.float32)
# Thin clouds are more transparent at longer wavelengths: opacity ** (1 + _SPECTRAL).
_SPECTRAL = np.array([0, 0, 0, 0, 0.1, 0.1, 0.2, 0.2, 0.2, 0.2, 0, 0.6, 0.8], dtype=np.float32)
# Share of the signal lost in shadow per band: diffuse skylight keeps blue shadows brighter.
_SHADOW_LOSS = np.array([0.35, 0.40, 0.50, 0.60, 0.65, 0.70, 0.72, 0.75, 0.75, 0.75, 0.0, 0.78, 0.78], dtype=np.float32)

# Chance of a clear and of an overcast acquisition, before the seasonal modulation.
_P_CLEAR, _P_OVERCAST = 0.32, 0.18
# Day of year of the cloudiest season per region (monsoon, rainy or winter season).
_CLOUDY_DOY = {"europa": 15, "africa": 220, "america": 170, "asiaEast": 200, "asiaWest": 30, "unassigned": 30}


@dataclass(frozen=True)
class Sky:
    """What the atmosphere did to one acquisition: cloud and shadow fields on the padded grid."""

    opacity: np.ndarray  # (H+2P, W+2P) thick/thin cloud opacity in [0, 1]
    cirrus: np.ndarray  # (H+2P, W+2P) cirrus opacity in [0, 1]
    brightness: np.ndarray  # (H+2P, W+2P) cloud-top brightness factor
    cirrus_b10: float  # B10 reflectance of thick cloud tops (higher clouds reflect more)
    shift: tuple[int, int]  # (rows, cols) displacement of shadows relative to their clouds
    shadow_strength: float  # how dark a shadow under a fully opaque cloud is


def draw_coverage(rng: np.random.Generator, region: str, doy: float) -> float:
    """Target cloud fraction of an acquisition: clear, overcast or partly cloudy, by season."""
    season = np.cos(2 * np.pi * (doy - _CLOUDY_DOY[region]) / 365.0)
    p_clear = _P_CLEAR * (1 - 0.5 * season)
    p_overcast = _P_OVERCAST * (1 + 0.6 * season)
    u = rng.random()
    if u < p_clear:
        return 0.0
    if u < p_clear + p_overcast:
        return float(rng.uniform(0.96, 1.0))
    return float(rng.beta(0.9, 1.3))


def draw_sky(rng: np.random.Generator, shape: tuple[int, int], coverage: float, latitude: float) -> Sky:
    """Cloud fields over a mosaic of ``shape`` (unpadded) covering about ``coverage`` of it."""
    padded = (shape[0] + 2 * PAD, shape[1] + 2 * PAD)
    inner = (slice(PAD, PAD + shape[0]), slice(PAD, PAD + shape[1]))
    opacity: np.ndarray = np.zeros(padded, np.float32)
    cirrus: np.ndarray = np.zeros(padded, np.float32)
    if coverage > 0:
        field = fractal_noise(rng, padded, rng.uniform(2.4, 3.3))
        thin_only = rng.random() < 0.25
        cirrus_share = rng.uniform(0.3, 0.7) if rng.random() < 0.2 else 0.0
        threshold = threshold_for_fraction(field[inner], coverage * (1 - cirrus_share))
        softness = rng.uniform(0.15, 0.5)
        opacity = np.clip((field - threshold) / softness, 0, 1) ** 0.7
        if thin_only:
            opacity *= rng.uniform(0.35, 0.7)
        if cirrus_share:
            streaks = fractal_noise(rng, padded, 3.0, stretch=rng.uniform(3, 8), angle=rng.uniform(0, np.pi))
            level = threshold_for_fraction(streaks[inner], coverage * cirrus_share)
            cirrus = np.clip((streaks - level) / 0.6, 0, 1) * rng.uniform(0.3, 0.8)
    sun_azimuth = np.deg2rad(rng.normal(150 if latitude >= 0 else 30, 15))
    length = rng.uniform(15, PAD)
    shift = (round(length * np.cos(sun_azimuth)), round(-length * np.sin(sun_azimuth)))
    return Sky(
        opacity=opacity.astype(np.float32),
        cirrus=cirrus.astype(np.float32),
        brightness=(1 + 0.25 * fractal_noise(rng, padded, 2.2)).astype(np.float32),
        cirrus_b10=float(0.02 + 0.03 * rng.uniform(1, 8)),
        shift=shift,
        shadow_strength=float(rng.uniform(0.7, 0.95)),
    )


def _inner(field: np.ndarray, shape: tuple[int, int], shift: tuple[int, int] = (0, 0)) -> np.ndarray:
    """The mosaic part of a padded field, read ``shift`` pixels away (for shadows)."""
    r, c = PAD - shift[0], PAD - shift[1]
    return field[r : r + shape[0], c : c + shape[1]]


def apply_sky(clear: np.ndarray, sky: Sky) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render a sky over cloud-free reflectance (13, H, W).

    Returns
    -------
    cloudy, cloud_mask, shadow_mask
        Reflectance with clouds (float32) and the exact boolean masks.
    """
    shape = clear.shape[1:]
    opacity = _inner(sky.opacity, shape)
    cirrus = _inner(sky.cirrus, shape)
    shadow = _inner(sky.opacity, shape, sky.shift) * sky.shadow_strength
    ground = clear * (1 - shadow[None] * _SHADOW_LOSS[:, None, None])

    tops = _CLOUD.copy()
    tops[10] = sky.cirrus_b10
    cloud_refl = tops[:, None, None] * (0.8 + 0.5 * opacity[None]) * _inner(sky.brightness, shape)[None]
    alpha = opacity[None] ** (1 + _SPECTRAL[:, None, None])
    cloudy = ground * (1 - alpha) + cloud_refl * alpha + cirrus[None] * _CIRRUS[:, None, None]

    cloud_mask = (opacity >= CLOUD_OPACITY_MIN) | (cirrus >= CIRRUS_OPACITY_MIN)
    shadow_mask = (shadow >= SHADOW_MIN) & ~cloud_mask
    return cloudy.astype(np.float32), cloud_mask, shadow_mask
