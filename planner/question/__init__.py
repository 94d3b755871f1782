"""The sizing question, typed once: built from a scenario, filled by the CLI and the app, answered by kind."""
