"""Report formatting a finance reader sees."""

from __future__ import annotations

import pytest

from planner.fleet.report import money


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (9.33e-5, "$0.0000933"),
        (0.0277, "$0.0277"),
        (1.5, "$1.50"),
        (73.584, "$73.58"),
        (1752.4, "$1,752"),
        (None, "-"),
    ],
)
def test_money_is_plain_decimals_with_three_significant_digits_below_a_dollar(
    value: float | None, text: str
) -> None:
    assert money(value) == text
