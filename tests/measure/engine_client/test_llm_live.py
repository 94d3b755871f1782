"""Open-loop streaming traffic against the scripted engine of test_endpoint: sent on schedule (lateness
recorded), every stream timed, a refusing engine counted, and the saturation probe's rate consistent with the
server's known service time."""

from __future__ import annotations

import numpy as np
import pytest

from measure.engine_client.http import Endpoint
from measure.engine_client.open_loop import LlmLiveError, Schedule, open_loop, saturation_rate
from tests.measure.engine_client.test_endpoint import STEP_MS, Script, server  # noqa: F401 (the fixture)


def test_requests_leave_on_schedule_and_every_stream_is_timed(server: str) -> None:  # noqa: F811
    n = 30
    send = np.arange(n) * 0.02
    sched = Schedule(send, np.full(n, 4), np.full(n, 5), seed=1)
    sent, start = open_loop(Endpoint.parse(server), "fake-model", sched, timeout_s=10)
    assert len(sent) == n
    left = np.array([s.result.sent - start for s in sent])
    assert np.all(left >= send - 1e-6)  # never early
    assert np.median([s.late_ms for s in sent]) < 5.0  # and on time (a loaded machine may add a little)
    assert all(s.result.error is None and len(s.result.token_times) == 5 for s in sent)
    # TTFT from the schedule includes any lateness: it is never shorter than from the actual send
    for s in sent:
        assert s.result.token_times[0] - s.scheduled >= s.result.token_times[0] - s.result.sent - 1e-9


def test_a_refusing_engine_is_counted_not_hidden(server: str) -> None:  # noqa: F811
    Script.mode = "refuse"
    sched = Schedule(np.array([0.0, 0.01]), np.array([3, 3]), np.array([4, 4]), seed=1)
    sent, _ = open_loop(Endpoint.parse(server), "fake-model", sched, timeout_s=10)
    assert [s.result.error is not None and "422" in s.result.error for s in sent] == [True, True]
    with pytest.raises(LlmLiveError, match="failed requests"):
        saturation_rate(Endpoint.parse(server), "fake-model", np.array([3]), np.array([4]), 2, 1.0, 10, 0)


def test_the_saturation_rate_matches_the_servers_service_time(server: str) -> None:  # noqa: F811
    # c streams at once, each token costs STEP_MS * (1 + 0.5 (c - 1)): a request of k tokens takes about
    # k * that, so c streams complete about c / (k * step) requests per second
    c, k = 4, 10
    rate, counted, _ = saturation_rate(
        Endpoint.parse(server), "fake-model", np.array([3]), np.array([k]), c, 3.0, 10, 0
    )
    expect = c / (k * STEP_MS * (1 + 0.5 * (c - 1)) / 1000)
    assert counted > 20 and rate == pytest.approx(expect, rel=0.35)


@pytest.mark.parametrize(
    ("send", "words", "tokens", "expect"),
    [
        ([0.1, 0.0], [1, 1], [1, 1], "never decrease"),
        ([0.0], [0], [1], "at least one prompt word"),
        ([0.0, 1.0], [1], [1, 1], "differ in length"),
    ],
)
def test_a_bad_schedule_is_refused(
    send: list[float], words: list[int], tokens: list[int], expect: str
) -> None:
    with pytest.raises(LlmLiveError, match=expect):
        Schedule(np.array(send), np.array(words), np.array(tokens), seed=0)
