"""Measurement machinery without a device: statistics, the steady-state sampler, pacing, parsing, progress."""
