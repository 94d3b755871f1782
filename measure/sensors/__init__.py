"""What the host and device report: NVML, RAPL power, clocks, CPU contention, the stack manifest."""
