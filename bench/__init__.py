"""Benchmarks (`make bench`): each target measured as a ratio against a baseline
run side by side in the same process tree. See bench/run.py and README.md."""
