"""Benchmarks: each prints a ratio against a reference measured in the same run (see bench/__main__.py)."""
