"""The point discipline shared by batch and LLM sweeps: a validated plan, and one point measured."""
