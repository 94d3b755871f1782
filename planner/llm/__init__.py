"""LLM serving: step times from measured LLM runs and a continuous-batching engine model."""
