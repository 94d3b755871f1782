"""Measurement: executes workloads on a device and writes run files (`measure.run` is the contract).

torch is imported only by the modules that execute work, never by `measure.run`, `measure.core.stats` or
`measure.core.steady_state`, so readers of runs work without torch installed.
"""
