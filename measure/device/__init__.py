"""The target device: timers and memory, precisions, and the accuracy cost of a precision."""
