"""Log axes read in full: ticks at 1-2-5 per decade labelled with their value, not plotly's lone digits."""

from __future__ import annotations

import pandas as pd
import pytest

from pages.common import line, log_ticks


def test_sub_millisecond_ticks_are_labelled_with_their_value() -> None:
    assert log_ticks(0.3, 9) == pytest.approx([0.1, 0.2, 0.5, 1, 2, 5, 10, 20])
    fig = line(pd.DataFrame({"batch": [1, 8, 64], "ms": [0.3, 0.7, 9.0]}), x="batch", y="ms", log_y=True)
    assert list(fig.layout.yaxis.ticktext) == ["0.1", "0.2", "0.5", "1", "2", "5", "10", "20"]
    assert fig.layout.xaxis.tickvals is None  # a linear axis keeps plotly's ticks


def test_many_decades_keep_only_powers_of_ten_and_bad_ranges_give_none() -> None:
    assert log_ticks(0.001, 1000) == pytest.approx([0.001, 0.01, 0.1, 1, 10, 100, 1000])
    assert log_ticks(0, 1) == [] and log_ticks(float("nan"), 1) == []
