"""Benchmarks: every claim measured as a ratio against a baseline taken in the same run (``make bench``)."""
