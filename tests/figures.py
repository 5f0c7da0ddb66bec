"""Checks shared by the tests of figures."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.text import Text


def smallest_font(fig: plt.Figure) -> float:
    """The smallest font size (points) of any visible, non-empty text of the figure, ticks and legends included."""
    fig.canvas.draw()  # tick labels exist once drawn
    return min(t.get_fontsize() for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible())
