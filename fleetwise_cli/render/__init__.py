"""Renderers: a planner or measure object in, rich tables and lines out; commands decide what to print."""
