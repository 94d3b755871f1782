"""Benchmark scripts: each prints measured figures; run them as files (python benchmarks/NAME.py)."""
