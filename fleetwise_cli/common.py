"""Consoles, exit codes and the one-line error shared by every command."""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from rich.console import Console
from rich.text import Text

# C0 controls but tab and newline, DEL, C1 controls (CSI 0x9b among them) and the bidi overrides that reorder
# what a terminal shows: from a file's model or device name they could clear the screen, forge a line or
# hide a link. rich's markup escaping does not touch them.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """Text with every control character shown as its escape (`\\x1b`), never sent to the terminal."""
    return _CONTROL.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )


class SafeConsole(Console):
    """A rich console whose every string (print arguments, table cells, titles) is made terminal-safe before
    rich parses it; rich's own styling is added after, so colours still work."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(terminal_safe(text), **kwargs)


out = SafeConsole()
if not out.is_terminal:  # pipes and CI default to 80 columns, too narrow for the summary table
    out = SafeConsole(width=200)
err = SafeConsole(stderr=True)


def _finite(node: Any) -> Any:
    if isinstance(node, float):
        return node if math.isfinite(node) else None
    if isinstance(node, dict):
        return {k: _finite(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_finite(v) for v in node]
    return node


def write_json(data: Any, indent: int = 1) -> None:
    """`--json` output that every JSON parser reads: a figure that could not be computed (NaN, infinity) is
    null, never the `NaN` or `Infinity` that Python's json writes by default."""
    sys.stdout.write(json.dumps(_finite(data), indent=indent, allow_nan=False) + "\n")
