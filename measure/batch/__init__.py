"""Batch measurement: the sweep over precision, sequence length and batch size, resume, soak, live replay."""
