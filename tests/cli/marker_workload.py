"""A user factory with a visible side effect: it writes a marker file, so a test sees whether it was called."""

from __future__ import annotations

from pathlib import Path


def touch(path: str = "") -> None:
    """Write the marker, then fail: being called at all is what the tests look for."""
    Path(path).write_text("called\n")
    raise RuntimeError("marker factory: called")
