"""LLM measurement in-process: the plan, prefill/decode/mixed steps, the sweep, and the model's facts."""
