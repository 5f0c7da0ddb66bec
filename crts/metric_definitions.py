"""What the metrics of an evaluation run are, without computing them: their units and the calibration's bins.

Torch-free, so that ``crts report``, which only reads the runs stored in a cube, runs without torch;
:mod:`crts.metrics` computes the metrics (with torch) and :mod:`crts.evaluate` describes the stored ones
from these.
"""

from __future__ import annotations

REFLECTANCE = "[0, 1] reflectance"
"""The scale of the reflectances the metrics compare (the S2 values / 10000)."""
METRIC_UNITS = {
    "rmse": ("1", f", {REFLECTANCE}"),
    "mae": ("1", f", {REFLECTANCE}"),
    "psnr": ("dB", " (peak 1 of [0, 1] reflectance)"),
    "sam": ("degree", ""),
    "ssim": ("1", ""),
}
"""Units of each per-image metric (``rmse_cloudy`` etc. as ``rmse``) and what the long name adds."""
CALIBRATION_BINS = 20
"""Images are binned by mean predicted variance into this many bins for UCE and AUCE (UnCRtainTS: 5 % steps)."""
