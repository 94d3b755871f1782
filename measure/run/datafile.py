"""Strict, bounded reading of every file a user supplies (runs, validations, scenarios, profiles, price books,
traces): regular files only, size checked on the bytes read, UTF-8 without a byte-order mark, JSON and YAML
parsed without duplicate keys, aliases, non-finite numbers, huge integers, lone surrogates or deep nesting.

Nothing here imports or calls anything a file names: the result is plain data (dict, list, str, int, float,
bool, None, and YAML dates) for a pydantic model to validate. Torch-free, so the planner may use it.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any, Final

import yaml

MAX_DEPTH: Final = 32  # nesting of objects/lists; every shipped format needs under 10
MAX_INT: Final = 2**63 - 1  # integers beyond int64 are no physical count
_READ_CHUNK = 1 << 20


class DataFileError(ValueError):
    """A file or text that is not acceptable input; the message is one line naming the problem."""


_KINDS: Final = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def resolve_input(path: str | Path, what: str = "file") -> Path:
    """The real path of an input file, or DataFileError with one line saying why it is none.

    The one place links are followed: a symlink loop (RuntimeError in Python 3.11's resolve), a dangling
    link, a missing file, a folder, a FIFO, a socket or a device each get their own reason, so a folder
    listing names the file and goes on.
    """
    p = Path(path)
    try:
        real = p.resolve(strict=True)
        mode = os.stat(real).st_mode
    except RuntimeError:
        raise DataFileError(f"{what} {p}: a symbolic link loop") from None
    except OSError as exc:
        if p.is_symlink():
            raise DataFileError(f"{what} {p}: a link to nothing (dangling symbolic link)") from None
        raise DataFileError(f"{what} {p}: cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "something else")
        raise DataFileError(f"{what} {p}: not a regular file ({kind})")
    return real


def read_regular_file(path: str | Path, max_bytes: int, what: str = "file") -> bytes:
    """The bytes of a regular file (symlinks resolved by resolve_input), refused when larger than max_bytes.

    Devices, FIFOs and sockets are refused before they are opened for reading; the size is checked on the
    bytes actually read (a /proc file or a growing file reports a size it does not have).
    """
    p = Path(path)
    real = resolve_input(p, what)
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise DataFileError(f"{what} {p}: cannot read: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped between the check and the open
            raise DataFileError(f"{what} {p}: not a regular file")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, _READ_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise DataFileError(f"{what} {p}: larger than the {max_bytes:,} byte limit")
            chunks.append(chunk)
    except OSError as exc:
        raise DataFileError(f"{what} {p}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return b"".join(chunks)


def decode_text(data: bytes | str, what: str = "file") -> str:
    """UTF-8 text without a byte-order mark: one encoding, so one file has one meaning everywhere."""
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise DataFileError(f"{what}: not UTF-8 text") from None
    if text.startswith("\ufeff"):
        raise DataFileError(f"{what}: starts with a byte-order mark; save it as UTF-8 without one")
    return text


def check_tree(data: Any, what: str = "file") -> None:
    """Depth, finite floats, int64 integers and encodable strings, walked without recursion."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_DEPTH:
                raise DataFileError(f"{what}: nested deeper than {MAX_DEPTH} levels")
            items = [*node.keys(), *node.values()] if isinstance(node, dict) else node
            stack.extend((x, depth + 1) for x in items)
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int):
            if abs(node) > MAX_INT:
                raise DataFileError(f"{what}: integer with {len(str(abs(node)))} digits is out of range")
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise DataFileError(f"{what}: contains a non-finite number ({node!r})")
        elif isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                raise DataFileError(
                    f"{what}: contains a lone surrogate (\\ud800-\\udfff) in a string"
                ) from None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise DataFileError(f"duplicate key {k[:80]!r}")
        out[k] = v
    return out


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 19:
        raise DataFileError(f"integer with {len(text.lstrip('-'))} digits is out of range")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise DataFileError(f"number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> float:
    raise DataFileError(f"{name} is not a number")


def parse_json(data: bytes | str, what: str = "file") -> Any:
    """JSON as plain data, strictly: see the module docstring for what is refused."""
    text = decode_text(data, what)
    try:
        tree = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_int=_bounded_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
        )
    except DataFileError as exc:
        raise DataFileError(f"{what}: {exc}") from None
    except RecursionError:
        raise DataFileError(f"{what}: nested deeper than {MAX_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{what}: not valid JSON: {exc}") from None
    check_tree(tree, what)
    return tree


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases (no expansion bombs) and duplicate mapping keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise DataFileError(f"YAML aliases (*name) are not accepted (line {mark.line + 1})")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            for key_node, _ in node.value:
                key = (key_node.tag, str(key_node.value)[:200])
                if isinstance(key_node, yaml.ScalarNode) and key in seen:
                    raise DataFileError(
                        f"duplicate key {key_node.value[:80]!r} (line {key_node.start_mark.line + 1})"
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(data: bytes | str, what: str = "file") -> Any:
    """YAML as plain data, strictly: safe tags only, no aliases, no duplicate keys, bounded values."""
    text = decode_text(data, what)
    try:
        tree = yaml.load(text, Loader=_StrictLoader)
    except DataFileError as exc:
        raise DataFileError(f"{what}: {exc}") from None
    except RecursionError:
        raise DataFileError(f"{what}: nested deeper than {MAX_DEPTH} levels") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataFileError(f"{what}: not valid YAML: {first[:200]}") from None
    except (ValueError, OverflowError) as exc:  # int() of a 5,000-digit scalar, a date out of range
        raise DataFileError(f"{what}: value out of range: {str(exc).splitlines()[0][:120]}") from None
    check_tree(tree, what)
    return tree


def one_line(message: str, limit: int = 600) -> str:
    """A message flattened to one line and bounded in length (errors name a problem, not dump a file)."""
    flat = " ".join(message.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
