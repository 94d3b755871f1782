"""Strict, bounded reading: what every loader (run, validation, scenario, profile, price book, trace) refuses."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from measure.run.datafile import (
    MAX_DEPTH,
    DataFileError,
    check_tree,
    parse_json,
    parse_yaml,
    read_regular_file,
)


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    p = tmp_path / "a.json"
    p.write_bytes(b'{"a": 1}')
    assert read_regular_file(p, 100) == b'{"a": 1}'


@pytest.mark.timeout(10)
def test_devices_fifos_and_links_to_them_are_refused_without_reading(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)  # opening it for reading would block forever with no writer
    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")  # reading it would never end
    for p in (fifo, link, Path("/dev/zero"), tmp_path):
        with pytest.raises(DataFileError, match="not a regular file"):
            read_regular_file(p, 1 << 20)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_the_size_cap_is_checked_on_the_bytes_read_not_the_reported_size(tmp_path: Path) -> None:
    p = tmp_path / "big.json"
    p.write_bytes(b"x" * 1001)
    with pytest.raises(DataFileError, match="larger than the 1,000 byte limit"):
        read_regular_file(p, 1000)
    # /proc files report size 0 and may hold more than a cap allows
    with pytest.raises(DataFileError, match="byte limit"):
        read_regular_file("/proc/self/maps", 10)


def test_a_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="cannot read"):
        read_regular_file(tmp_path / "nope.json", 10)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ("[" * 2000 + "]" * 2000, "nested deeper"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested deeper"),
        ('{"a": 1e999}', "out of range"),
        ('{"a": -1e999}', "out of range"),
        ('{"a": NaN}', "NaN is not a number"),
        ('{"a": Infinity}', "Infinity is not a number"),
        ('{"a": ' + "9" * 5000 + "}", "5000 digits"),
        ('{"a": ' + "9" * 20 + "}", "20 digits"),
        ('{"a": "\\ud800"}', "lone surrogate"),
        ('{"\\udfff": 1}', "lone surrogate"),
        ("\ufeff{}", "byte-order mark"),
        ("{", "not valid JSON"),
    ],
)
def test_ambiguous_or_unbounded_json_is_refused(text: str, message: str) -> None:
    with pytest.raises(DataFileError, match=message):
        parse_json(text, "f")


def test_json_that_is_not_utf8_is_refused_as_bytes() -> None:
    with pytest.raises(DataFileError, match="not UTF-8"):
        parse_json('{"a": "é"}'.encode("utf-16"), "f")
    with pytest.raises(DataFileError, match="byte-order mark"):
        parse_json(b"\xef\xbb\xbf{}", "f")


def test_plain_json_parses_to_plain_data() -> None:
    assert parse_json(b'{"a": [1, 2.5, "x", true, null], "b": {"c": -3}}') == {
        "a": [1, 2.5, "x", True, None],
        "b": {"c": -3},
    }


@pytest.mark.timeout(10)
def test_a_yaml_alias_bomb_is_refused_before_it_expands() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 12):
        bomb += f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]\n"
    with pytest.raises(DataFileError, match="aliases"):
        parse_yaml(bomb, "s")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: 1\na: 2\n", "duplicate key 'a'"),
        ("a: !!python/object/apply:os.system [echo hi]\n", "not valid YAML"),
        ("a: " + "9" * 5000 + "\n", "out of range"),
        ("a: .inf\n", "non-finite"),
        ("a: .nan\n", "non-finite"),
        ("a: [" + "[" * 40 + "]" * 40 + "]\n", "nested deeper"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_ambiguous_or_unbounded_yaml_is_refused(text: str, message: str) -> None:
    with pytest.raises(DataFileError, match=message):
        parse_yaml(text, "s")


def test_errors_are_one_line() -> None:
    with pytest.raises(DataFileError) as info:
        parse_yaml("a:\n  - [1,\n  b: 2\n", "s")
    assert "\n" not in str(info.value)


def test_check_tree_walks_without_recursion() -> None:
    deep: list = []
    node = deep
    for _ in range(100_000):  # far beyond Python's recursion limit: the walk is iterative
        node.append([])
        node = node[0]
    with pytest.raises(DataFileError, match="nested deeper"):
        check_tree(deep)
