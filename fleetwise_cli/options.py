"""Parsers of option text shared by several commands (lists, on/off switches, engine parameters)."""

from __future__ import annotations

from planner.serving.service import ServiceError


def _ints(text: str | None, what: str, default: list[int]) -> list[int]:
    from measure.core.parsing import parse_int_list

    return parse_int_list(text, what) if text else list(default)


def parse_engine_params(items: tuple[str, ...]) -> dict[str, str | int | float | bool]:
    """`--engine-param key=value` (engine, version, max_num_seqs, ...), values read as numbers where they are."""
    from measure.core.parsing import parse_param

    params = dict(parse_param(p) for p in items)
    if len(params) > 64:
        raise ValueError("at most 64 --engine-param")
    return params


def parse_switches(
    text: str | None, flag: str = "--chunked-prefill", default: bool = True
) -> tuple[bool, ...]:
    """`on`, `off` or `on,off` for a switch sized both ways (chunked prefill, prefix caching)."""
    if text is None:
        return (default,)
    vals = [v.strip().lower() for v in text.split(",") if v.strip()]
    if not vals or any(v not in ("on", "off") for v in vals):
        raise ValueError(f"{flag} takes on, off or on,off, got {text!r}")
    return tuple(dict.fromkeys(v == "on" for v in vals))


def _list(text: str | None, kind: type, name: str) -> tuple | None:
    if text is None:
        return None
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ServiceError(f"{name} must be a comma-separated list of numbers, got {text!r}") from None
    if not values:
        raise ServiceError(f"{name} is empty")
    return values
