"""The preview of a synthetic patch: as written, its truth and S1, at evenly spaced steps."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from cube.analysis.plots import true_colour
from cube.store.outputs import OutputRefused
from cube.synth import open_truth
from cube.synth.preview import plot_patch


def test_three_rows_at_evenly_spaced_steps_showing_the_truth(tiny_root: Path) -> None:
    fig = plot_patch(tiny_root, patch=1, n_times=3)  # tiny_root has 4 steps: 0, 1, 3
    axes = np.array(fig.axes).reshape(3, 3)
    assert [ax.get_title().split()[0] for ax in axes[0]] == ["t=0", "t=1", "t=3"]
    truth = open_truth(tiny_root).isel(patch=1, time=3)
    np.testing.assert_allclose(axes[1, 2].images[0].get_array(), true_colour(truth.s2_clear.values))
    assert f"cloud {truth.cloud.values.mean():.0%}" in axes[0, 2].get_title()
    assert [ax.get_ylabel().split("\n")[0] for ax in axes[:, 0]] == ["S2 as written", "S2 cloud-free", "S1 VV [dB]"]
    plt.close(fig)


def test_a_preview_is_written_as_png_but_never_inside_a_cube(tiny_root: Path, tiny_cube: Path, tmp_path: Path) -> None:
    out = plot_patch(tiny_root, n_times=2, out=tmp_path / "preview.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(OutputRefused, match="lies inside the cube"):
        plot_patch(tiny_root, n_times=2, out=tiny_cube / "preview.png")
    assert not (tiny_cube / "preview.png").exists()
