"""Benchmarks (not tests): figures printed against the sandbox. `make bench` runs them all (bench/__main__.py)."""
