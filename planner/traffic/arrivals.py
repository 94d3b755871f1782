"""Open-loop request streams from a scenario: arrival times, items and sequence lengths, fixed by the seed.

Everything is generated before the simulation starts (vectorised numpy), so the simulator only replays it
and the same seed always gives the same stream.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from measure.run.datafile import DataFileError, read_regular_file
from planner.traffic.scenario import (
    MAX_DURATION_S,
    MAX_SIZE,
    Diurnal,
    Empirical,
    Fixed,
    FromTrace,
    Gamma,
    LogNormal,
    Mmpp,
    Poisson,
    Scenario,
    ScenarioError,
    Trace,
    Uniform,
)

_BLOCK = 65_536
MAX_REQUESTS = 10_000_000  # per simulation: memory grows with it (times, ids, queues)
MAX_TRACE_BYTES = 256 * 1024 * 1024
MAX_STATE_VISITS = 1_000_000  # MMPP sojourns generated for one window: a loop in Python, so bounded
BIG_SOJOURN = 1_000_000  # an MMPP sojourn with more arrivals than this draws only those the window uses


@dataclass(frozen=True)
class Requests:
    """A generated request stream."""

    arrival_s: np.ndarray  # sorted, float64
    items: np.ndarray  # int64, >= 1
    seq_len: np.ndarray | None  # int64 tokens per item, token workloads only
    window_s: float  # length of the simulated arrival window
    clipped: int = 0  # sizes above a lognormal cap, clipped (reported, never silent)
    notes: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.arrival_s.size)


GapDraw = Callable[[int], np.ndarray]


def _renewal(rng: np.random.Generator, n: int | None, horizon: float | None, draw: GapDraw) -> np.ndarray:
    """Cumulative sums of inter-arrival draws until n arrivals or the horizon is passed."""
    out: list[np.ndarray] = []
    t, count = 0.0, 0
    while True:
        if count > MAX_REQUESTS:  # callers check the expected count; this bounds an unlucky draw too
            raise ScenarioError(
                f"the arrival window holds over {MAX_REQUESTS:,} requests, the limit of one simulation"
            )
        gaps = draw(_BLOCK)
        times = t + np.cumsum(gaps)
        out.append(times)
        t, count = float(times[-1]), count + times.size
        if (n is not None and count >= n) or (horizon is not None and t >= horizon):
            break
    allt = np.concatenate(out)
    return _cut(allt, n, horizon)


def _cut(t: np.ndarray, n: int | None, horizon: float | None) -> np.ndarray:
    if n is not None:
        return t[:n]
    assert horizon is not None
    return t[t < horizon]


def _unit_renewal(rng: np.random.Generator, cv: float) -> GapDraw:
    if abs(cv - 1.0) < 1e-12:
        return lambda k: rng.exponential(1.0, k)
    shape = 1.0 / cv**2
    return lambda k: rng.gamma(shape, 1.0 / shape, k)


def _mmpp(
    rng: np.random.Generator, a: Mmpp, growth: float, n: int | None, horizon: float | None
) -> np.ndarray:
    cycle_s = sum(s.mean_duration_s for s in a.states)
    per_cycle = sum(s.rate_rps * s.mean_duration_s for s in a.states) * growth
    cycles = n / per_cycle if n is not None else (horizon or 0.0) / cycle_s
    if cycles * len(a.states) > MAX_STATE_VISITS:
        raise ScenarioError(
            f"MMPP: the window needs about {cycles * len(a.states):,.0f} state sojourns, over the "
            f"{MAX_STATE_VISITS:,} limit; lengthen mean_duration_s or shorten the window"
        )
    out: list[np.ndarray] = []
    t, count, i = 0.0, 0, 0
    while True:
        if i > 4 * MAX_STATE_VISITS:
            raise ScenarioError(
                f"MMPP: over {4 * MAX_STATE_VISITS:,} state sojourns without filling the window"
            )
        st = a.states[i % len(a.states)]
        dur = rng.exponential(st.mean_duration_s)
        rate = st.rate_rps * growth
        k = rng.poisson(rate * dur) if rate > 0 else 0
        if k > BIG_SOJOURN:
            times = _long_sojourn(rng, rate, t, dur, n, count, horizon)
            out.append(times)
            count += times.size
        elif k:
            out.append(np.sort(t + rng.uniform(0.0, dur, k)))
            count += k
        t += dur
        i += 1
        if (n is not None and count >= n) or (horizon is not None and t >= horizon):
            break
    allt = np.concatenate(out) if out else np.empty(0)
    return _cut(allt, n, horizon)


def _long_sojourn(
    rng: np.random.Generator,
    rate: float,
    t: float,
    dur: float,
    n: int | None,
    count: int,
    horizon: float | None,
) -> np.ndarray:
    """The arrivals of a sojourn holding more than BIG_SOJOURN of them, drawing only what the window uses: the
    first n - count of a Poisson process (request windows), or the part before the horizon (time windows)."""
    if n is not None:
        times = t + np.cumsum(rng.exponential(1.0 / rate, n - count))
        return times[times < t + dur]
    end = max(0.0, min(dur, (horizon or 0.0) - t))
    k = int(rng.poisson(rate * end))
    if count + k > MAX_REQUESTS:
        raise ScenarioError(
            f"MMPP: a busy state holds over {MAX_REQUESTS:,} requests within the window, the limit of one "
            "simulation; shorten duration_s"
        )
    return np.sort(t + rng.uniform(0.0, end, k))


def _diurnal(
    rng: np.random.Generator, a: Diurnal, growth: float, n: int | None, horizon: float | None
) -> np.ndarray:
    """A unit-rate renewal process mapped through the cumulative rate (time change), so the within-hour
    burstiness is kept while the rate follows the day."""
    rates = (
        np.array([a.hourly_multipliers[(a.start_hour + h) % 24] for h in range(24)])
        * a.peak_rate_rps
        * growth
    )
    per_day = float(rates.sum() * 3600.0)
    cum = np.concatenate([[0.0], np.cumsum(rates * 3600.0)])  # operational time at each hour boundary
    u_horizon = None
    if horizon is not None:
        whole_days, rest = divmod(horizon, 86_400.0)
        h, frac = divmod(rest, 3600.0)
        u_horizon = whole_days * per_day + cum[int(h)] + rates[int(h)] * frac
    u = _renewal(rng, n, u_horizon, _unit_renewal(rng, a.cv if a.within_hour == "gamma" else 1.0))
    days = np.floor(u / per_day)
    ud = u - days * per_day
    hour = np.clip(np.searchsorted(cum, ud, side="right") - 1, 0, 23)
    # an hour with zero rate has no operational time: searchsorted skips it
    within = (ud - cum[hour]) / np.where(rates[hour] > 0, rates[hour], 1.0)
    return days * 86_400.0 + hour * 3600.0 + within


def read_trace(path: str | Path) -> pd.DataFrame:
    """A trace CSV as a frame with `t_s` (seconds from the first request) and any size columns."""
    p = Path(path)
    try:
        raw = read_regular_file(p, MAX_TRACE_BYTES, "trace")
    except DataFileError as exc:
        raise ScenarioError(str(exc)) from None
    try:
        df = pd.read_csv(io.BytesIO(raw), encoding="utf-8", nrows=MAX_REQUESTS + 1)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise ScenarioError(f"trace {p}: not a CSV table: {str(exc).splitlines()[0][:200]}") from None
    if len(df) > MAX_REQUESTS:
        raise ScenarioError(f"trace {p}: more than {MAX_REQUESTS:,} rows")
    if "TIMESTAMP" in df.columns:
        ts = pd.to_datetime(df["TIMESTAMP"], errors="coerce")
        if ts.isna().any():
            raise ScenarioError(f"trace {p}: row {int(ts.isna().argmax()) + 2} has an unreadable TIMESTAMP")
        t = (ts - ts.min()).dt.total_seconds().to_numpy()
    elif "timestamp_s" in df.columns:
        t = pd.to_numeric(df["timestamp_s"], errors="coerce").to_numpy(dtype=np.float64)
        if np.isnan(t).any() or not np.isfinite(t).all():
            raise ScenarioError(f"trace {p}: timestamp_s has non-numeric or infinite values")
        t = t - t.min()
    else:
        raise ScenarioError(f"trace {p}: needs a TIMESTAMP (Azure LLM format) or timestamp_s column")
    if len(t) < 2:
        raise ScenarioError(f"trace {p}: needs at least two requests")
    if not np.isfinite(t).all() or float(t.max()) <= 0 or float(t.max()) > MAX_DURATION_S:
        raise ScenarioError(f"trace {p}: timestamps must span a positive time of at most a year")
    df = df.assign(t_s=t).sort_values("t_s", kind="stable").reset_index(drop=True)
    return df


def _trace(
    a: Trace, growth: float, n: int | None, horizon: float | None
) -> tuple[np.ndarray, pd.DataFrame, int]:
    if a.format == "mooncake":
        from planner.traffic.mooncake import read_mooncake

        df = read_mooncake(a.path, a.block_tokens)
    else:
        df = read_trace(a.path)
    t = df["t_s"].to_numpy() / (a.speedup * growth)
    # the loop period: one typical gap after the last (the mean gap where most gaps are zero)
    gap = float(np.median(np.diff(t))) or float(t[-1]) / (len(t) - 1)
    span = float(t[-1]) + gap
    need_loops = 1
    if n is not None:
        need_loops = -(-n // len(t))
    elif horizon is not None:
        need_loops = int(np.ceil(horizon / span))
    if need_loops * len(t) > MAX_REQUESTS + len(t):
        raise ScenarioError(
            f"trace replay: filling the window takes {need_loops:,} loops of {len(t):,} requests, over the "
            f"{MAX_REQUESTS:,} limit of one simulation; shorten duration_s"
        )
    times = np.concatenate([t + k * span for k in range(need_loops)])
    idx = np.tile(np.arange(len(t)), need_loops)
    keep = np.arange(min(n, times.size)) if n is not None else np.flatnonzero(times < (horizon or 0.0))
    rows = df.iloc[idx[keep]].reset_index(drop=True)
    if "hash_ids" in rows.columns and need_loops > 1:
        # a loop is new traffic of the same shape: its prompts share blocks among themselves as the trace's do,
        # never with an earlier loop's
        step = 1 + max((max(h) for h in df["hash_ids"] if h), default=0)
        loop = np.repeat(np.arange(need_loops), len(t))[keep]
        rows["hash_ids"] = [
            tuple(x + int(k) * step for x in h) for h, k in zip(rows["hash_ids"], loop, strict=True)
        ]
    return times[keep], rows, need_loops


def draw_sizes(
    rng: np.random.Generator, d: Fixed | Uniform | LogNormal | Empirical, k: int
) -> tuple[np.ndarray, int]:
    """k sizes from a distribution, and how many a lognormal cap clipped."""
    if isinstance(d, Fixed):
        return np.full(k, d.value, dtype=np.int64), 0
    if isinstance(d, Uniform):
        return rng.integers(d.low, d.high + 1, k, dtype=np.int64), 0
    if isinstance(d, LogNormal):
        raw = np.maximum(1, np.rint(rng.lognormal(np.log(d.median), d.sigma, k))).astype(np.int64)
        over = int((raw > d.cap).sum())
        return np.minimum(raw, d.cap), over
    w = None if d.weights is None else np.asarray(d.weights) / sum(d.weights)
    return rng.choice(np.asarray(d.values, dtype=np.int64), size=k, p=w), 0


def arrival_times(
    sc: Scenario, rng: np.random.Generator
) -> tuple[np.ndarray, pd.DataFrame | None, list[str]]:
    """Arrival times of a scenario (growth applied), the trace rows behind them (trace arrivals) and notes."""
    n, horizon = sc.requests, sc.duration_s
    mean_rate = sc.mean_rate_rps()
    if horizon is not None and mean_rate is not None and mean_rate * horizon > MAX_REQUESTS:
        raise ScenarioError(
            f"scenario {sc.name}: {horizon:g} s at {mean_rate:.4g} req/s is about {mean_rate * horizon:,.0f} requests, over "
            f"the {MAX_REQUESTS:,} limit of one simulation; shorten duration_s or give requests"
        )
    a = sc.arrivals
    frame: pd.DataFrame | None = None
    notes: list[str] = []
    if isinstance(a, Poisson):
        rate = a.rate_rps * sc.growth
        t = _renewal(rng, n, horizon, lambda k: rng.exponential(1.0 / rate, k))
    elif isinstance(a, Gamma):
        rate = a.rate_rps * sc.growth
        unit = _unit_renewal(rng, a.cv)
        t = _renewal(rng, n, horizon, lambda k: unit(k) / rate)
    elif isinstance(a, Mmpp):
        t = _mmpp(rng, a, sc.growth, n, horizon)
    elif isinstance(a, Diurnal):
        t = _diurnal(rng, a, sc.growth, n, horizon)
    else:
        t, frame, loops = _trace(a, sc.growth, n, horizon)
        if loops > 1:
            notes.append(f"the trace was replayed {loops} times back to back to fill the window")
    if t.size == 0:
        raise ScenarioError(f"scenario {sc.name}: the window holds no arrivals")
    if not np.isfinite(t).all():  # a rate (times growth) so low that the arrival times overflow
        raise ScenarioError(f"scenario {sc.name}: arrival rates too low to place the arrivals in finite time")
    if t.size > MAX_REQUESTS:
        raise ScenarioError(
            f"scenario {sc.name}: {t.size:,} requests, over the {MAX_REQUESTS:,} limit of one simulation"
        )
    return t, frame, notes


def trace_column(frame: pd.DataFrame | None, column: str, notes: list[str], what: str) -> np.ndarray:
    """A trace column of token counts: every cell a whole number >= 0 (else refused, with an example); 0 counts as
    1 token and values above MAX_SIZE are clipped to it (both counted in notes)."""
    if frame is None or column not in frame.columns:
        raise ScenarioError(f"trace has no column {column!r} for the {what}")
    cells = frame[column]
    raw = pd.to_numeric(cells, errors="coerce")
    bad = raw.isna() | ~np.isfinite(raw) | (raw < 0) | (raw != np.floor(raw))
    if bad.any():
        example = cells[bad].iloc[0]
        shown = "an empty cell" if pd.isna(example) else repr(str(example)[:40])
        raise ScenarioError(
            f"trace column {column!r}: {int(bad.sum()):,} cells are not whole token counts >= 0 "
            f"(for instance {shown})"
        )
    zero = int((raw == 0).sum())
    if zero:
        notes.append(f"{zero} trace {what} values of 0 were counted as 1 token")
    over = int((raw > MAX_SIZE).sum())
    if over:
        notes.append(f"{over} trace {what} values above {MAX_SIZE:,} tokens were clipped to it")
    return raw.clip(lower=1, upper=MAX_SIZE).to_numpy(dtype=np.int64)


def generate(sc: Scenario, rng: np.random.Generator | None = None) -> Requests:
    """The request stream of a scenario (growth applied), from `rng` or the scenario's seed."""
    rng = rng if rng is not None else np.random.default_rng(sc.seed)
    horizon = sc.duration_s
    t, frame, notes = arrival_times(sc, rng)
    items, clipped = draw_sizes(rng, sc.size.items, t.size)
    seq = None
    if isinstance(sc.size.seq_len, FromTrace):
        seq = trace_column(frame, sc.size.seq_len.column, notes, "sequence length")
    elif sc.size.seq_len is not None:
        seq, c2 = draw_sizes(rng, sc.size.seq_len, t.size)
        clipped += c2
    if clipped:
        notes.append(f"{clipped} request sizes above a lognormal cap were clipped to the cap")
    window = float(horizon) if horizon is not None else float(t[-1])
    return Requests(t.astype(np.float64), items, seq, window, clipped, tuple(notes))
