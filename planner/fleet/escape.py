"""User text (run, scenario, profile and price-book strings) made inert for the markdown it lands in.

Markdown is read by two renderers here (Python-Markdown for the HTML report, Streamlit's CommonMark in the
app); both honour backslash escapes and HTML entities, so one escaping serves both.
"""

from __future__ import annotations

import re

_SPECIAL = re.compile(r"([\\`*_\[\]()!|#~{}+])")


def md_escape(text: object, limit: int = 500) -> str:
    """One line of literal text in markdown: no HTML, links, images, emphasis, code or table cells from it."""
    flat = " ".join(str(text).split())
    if len(flat) > limit:
        flat = flat[: limit - 3] + "..."
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    flat = _SPECIAL.sub(r"\\\1", flat)
    return flat.replace("$", "&#36;")  # Streamlit renders $...$ as LaTeX; an entity is a plain dollar in both
