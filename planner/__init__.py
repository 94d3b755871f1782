"""Planning from measured evidence: reads run files (via `measure.run` only) and never imports torch."""
