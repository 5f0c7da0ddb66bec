"""Cloud-free surfaces: land cover of an ROI and its Sentinel-2 and Sentinel-1 appearance on a date.

Reflectances are top-of-atmosphere values in [0, 1] (the S2 files hold them x 10000),
backscatter is in dB. Spectra are typical L1C values of each cover type; vegetation
moves between a dry and a green spectrum with a seasonal greenness curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .noise import fractal_noise

WATER, FOREST, CROP, GRASS, BARE, URBAN = range(6)
CLASSES: tuple[str, ...] = ("water", "forest", "cropland", "grassland", "bare soil", "urban")

#                  B1     B2     B3     B4     B5     B6     B7     B8     B8A    B9     B10     B11    B12
_WATER = np.array([0.125, 0.100, 0.075, 0.050, 0.040, 0.030, 0.027, 0.022, 0.020, 0.008, 0.0010, 0.010, 0.006])
_TURBID = np.array([0.130, 0.110, 0.095, 0.075, 0.060, 0.040, 0.035, 0.030, 0.028, 0.010, 0.0010, 0.012, 0.008])
_SOIL = np.array([0.130, 0.115, 0.120, 0.145, 0.170, 0.190, 0.205, 0.220, 0.230, 0.080, 0.0020, 0.300, 0.250])
_GREEN = np.array([0.120, 0.090, 0.085, 0.050, 0.110, 0.260, 0.320, 0.350, 0.360, 0.110, 0.0015, 0.180, 0.085])
_FOREST = np.array([0.115, 0.085, 0.075, 0.045, 0.090, 0.200, 0.240, 0.260, 0.270, 0.085, 0.0012, 0.140, 0.065])
_DRY = np.array([0.130, 0.110, 0.115, 0.130, 0.160, 0.190, 0.210, 0.230, 0.240, 0.080, 0.0020, 0.270, 0.200])
_URBAN = np.array([0.140, 0.125, 0.125, 0.135, 0.150, 0.165, 0.175, 0.185, 0.190, 0.065, 0.0020, 0.210, 0.190])
_LEAFOFF = 0.6 * _FOREST + 0.4 * _DRY

# Per class: spectrum at greenness 0 and at greenness 1.
_LOW = np.stack([_WATER, _LEAFOFF, _SOIL, _DRY, _SOIL, _URBAN]).astype(np.float32)
_HIGH = np.stack([_TURBID, _FOREST, _GREEN, _GREEN, _SOIL, _URBAN]).astype(np.float32)

# Aerosol path reflectance per unit optical depth: strongest in the blue.
_PATH = np.array(
    [0.06, 0.045, 0.03, 0.02, 0.015, 0.012, 0.01, 0.008, 0.008, 0.004, 0.0, 0.002, 0.001], dtype=np.float32
)

# Backscatter (dB) per class: VV, VH at greenness 0 and the change at greenness 1.
_S1_BASE = np.array(
    [[-21.0, -28.0], [-8.0, -14.0], [-13.0, -21.0], [-11.5, -19.0], [-14.0, -22.0], [-4.0, -11.0]], dtype=np.float32
)
_S1_GREEN = np.array([[0.0, 0.0], [0.5, 1.0], [3.0, 5.0], [1.5, 2.5], [0.0, 0.0], [0.0, 0.0]], dtype=np.float32)
S1_ENL = 4.4
"""Equivalent number of looks of Sentinel-1 IW GRD, for the speckle."""

REGION_COVER: dict[str, tuple[float, ...]] = {
    #            water forest crop  grass bare  urban
    "europa": (0.05, 0.30, 0.38, 0.15, 0.04, 0.08),
    "africa": (0.03, 0.15, 0.20, 0.35, 0.22, 0.05),
    "america": (0.06, 0.30, 0.30, 0.20, 0.08, 0.06),
    "asiaEast": (0.08, 0.30, 0.35, 0.12, 0.05, 0.10),
    "asiaWest": (0.03, 0.05, 0.20, 0.20, 0.45, 0.07),
    "unassigned": (0.03, 0.05, 0.20, 0.20, 0.45, 0.07),
}


@dataclass(frozen=True)
class Landscape:
    """The static part of an ROI: land cover and per-pixel surface parameters on a mosaic grid."""

    cover: np.ndarray  # (H, W) uint8 class index
    brightness: np.ndarray  # (H, W) float32 multiplicative albedo factor
    peak_doy: np.ndarray  # (H, W) float32 day of year of maximum greenness
    season_width: np.ndarray  # (H, W) float32 width (days) of the growing season of crops
    texture: np.ndarray  # (H, W) float32 fine-scale relative texture
    green_peak_doy: float  # regional peak of the natural vegetation cycle
    latitude: float


def make_landscape(rng: np.random.Generator, shape: tuple[int, int], region: str, latitude: float) -> Landscape:
    """Draw land cover fields, crop parcels and surface texture for an ROI mosaic."""
    h, w = shape
    fractions = rng.dirichlet(np.asarray(REGION_COVER[region]) * 40)
    cover = np.full(shape, GRASS, dtype=np.uint8)
    terrain = fractal_noise(rng, shape, 3.4)
    water = terrain < np.quantile(terrain, fractions[WATER])
    urban_field = fractal_noise(rng, shape, 2.6)
    urban = ~water & (urban_field > np.quantile(urban_field, 1 - fractions[URBAN]))
    land = ~water & ~urban
    order = fractal_noise(rng, shape, 3.0)[land]
    edges = np.cumsum(fractions[[FOREST, CROP, GRASS, BARE]])
    edges = np.quantile(order, np.clip(edges[:-1] / edges[-1], 0, 1))
    cover[land] = np.array([FOREST, CROP, GRASS, BARE], dtype=np.uint8)[np.searchsorted(edges, order)]
    cover[water] = WATER
    cover[urban] = URBAN

    # Crop parcels: a jittered grid of rectangular fields, each with its own crop calendar.
    rows = np.cumsum(rng.integers(12, 48, size=h // 12 + 2))
    cols = np.cumsum(rng.integers(12, 64, size=w // 12 + 2))
    parcel = np.searchsorted(rows, np.arange(h))[:, None] * len(cols) + np.searchsorted(cols, np.arange(w))
    n_parcels = int(parcel.max()) + 1
    south = latitude < 0
    natural_peak = (200.0 if not south else 20.0) if abs(latitude) > 20 else 250.0
    crop_peak = (natural_peak - 30 + rng.normal(0, 35, n_parcels)) % 365
    crop_width = rng.uniform(25, 55, n_parcels)
    parcel_bright = rng.uniform(0.8, 1.2, n_parcels)

    brightness = np.where(cover == CROP, parcel_bright[parcel], 1.0 + 0.08 * fractal_noise(rng, shape, 3.0))
    brightness = np.where(cover == BARE, brightness * rng.uniform(0.9, 1.4), brightness)
    texture_scale = np.where(cover == URBAN, 0.12, np.where(cover == WATER, 0.01, 0.04))
    texture = texture_scale * fractal_noise(rng, shape, 1.6)
    return Landscape(
        cover=cover,
        brightness=brightness.astype(np.float32),
        peak_doy=np.where(cover == CROP, crop_peak[parcel], natural_peak).astype(np.float32),
        season_width=crop_width[parcel].astype(np.float32),
        texture=texture.astype(np.float32),
        green_peak_doy=natural_peak,
        latitude=latitude,
    )


def greenness(land: Landscape, doy: float) -> np.ndarray:
    """Vegetation greenness in [0, 1] per pixel on a day of year."""
    phase = np.cos(2 * np.pi * (doy - land.peak_doy) / 365.0)
    distance = (doy - land.peak_doy + 182.5) % 365.0 - 182.5
    crop = np.exp(-0.5 * (distance / land.season_width) ** 2)
    natural = np.where(land.cover == FOREST, 0.75 + 0.2 * phase, 0.45 + 0.35 * phase)
    turbidity = 0.5 + 0.5 * phase
    g = np.where(land.cover == CROP, crop, natural)
    return np.where(land.cover == WATER, turbidity, g).astype(np.float32)


def render_s2(land: Landscape, doy: float, aerosol: float, rng: np.random.Generator) -> np.ndarray:
    """Cloud-free top-of-atmosphere reflectance, shape (13, H, W), float32."""
    g = greenness(land, doy)[None]
    low, high = _LOW[land.cover].transpose(2, 0, 1), _HIGH[land.cover].transpose(2, 0, 1)
    refl = (low + g * (high - low)) * (land.brightness * (1 + land.texture))[None]
    refl *= 1 + 0.01 * rng.standard_normal(refl.shape, dtype=np.float32)
    refl += aerosol * _PATH[:, None, None]
    return np.clip(refl, 0.0005, None)


def render_s1(land: Landscape, doy: float, moisture: float, rng: np.random.Generator) -> np.ndarray:
    """Backscatter in dB with speckle, shape (2, H, W), float32: VV, VH.

    ``moisture`` in [0, 1] brightens soils and vegetation after rain.
    """
    g = greenness(land, doy)
    db = _S1_BASE[land.cover] + g[..., None] * _S1_GREEN[land.cover]
    wet = (land.cover != WATER) & (land.cover != URBAN)
    db = db + (3.0 * moisture * wet)[..., None] + (20 * land.texture)[..., None]
    incidence = np.linspace(0.0, -1.5, db.shape[1], dtype=np.float32)[None, :, None]
    linear = 10 ** ((db + incidence) / 10) * rng.gamma(S1_ENL, 1 / S1_ENL, db.shape)
    return (10 * np.log10(linear)).astype(np.float32).transpose(2, 0, 1)
