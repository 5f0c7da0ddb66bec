"""The data set's facts: its ROIs and splits, bands, file layout, and the problems found in its files."""
