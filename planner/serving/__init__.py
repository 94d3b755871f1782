"""Serving: service-time models from runs and profiles, the batch-serving simulator and its results."""
