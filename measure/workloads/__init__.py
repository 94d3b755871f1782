"""Representative workloads: the built-in models and the Llama-style decoder (random weights)."""
