"""Read-only products of a cube: statistics, plots, the overview and export of patches."""
