"""The `fleetwise` command line: a thin layer turning library errors into one-line messages and exit codes."""
