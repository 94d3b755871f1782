"""Measurement campaigns on a Ray cluster: the same measure command on every node with the device."""
