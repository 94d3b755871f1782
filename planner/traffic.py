"""Open-loop request streams from a scenario: arrival times, items and sequence lengths, fixed by the seed.

Everything is generated before the simulation starts (vectorised numpy), so the simulator only replays it
and the same seed always gives the same stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from planner.scenario import (
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
MAX_TRACE_BYTES = 512 * 1024 * 1024


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


Draw = Callable[[int], np.ndarray]


def _renewal(rng: np.random.Generator, n: int | None, horizon: float | None, draw: Draw) -> np.ndarray:
    """Cumulative sums of inter-arrival draws until n arrivals or the horizon is passed."""
    out: list[np.ndarray] = []
    t, count = 0.0, 0
    while True:
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


def _unit_renewal(rng: np.random.Generator, cv: float) -> Draw:
    if abs(cv - 1.0) < 1e-12:
        return lambda k: rng.exponential(1.0, k)
    shape = 1.0 / cv**2
    return lambda k: rng.gamma(shape, 1.0 / shape, k)


def _mmpp(
    rng: np.random.Generator, a: Mmpp, growth: float, n: int | None, horizon: float | None
) -> np.ndarray:
    out: list[np.ndarray] = []
    t, count, i = 0.0, 0, 0
    while True:
        st = a.states[i % len(a.states)]
        dur = rng.exponential(st.mean_duration_s)
        rate = st.rate_rps * growth
        k = rng.poisson(rate * dur) if rate > 0 else 0
        if k:
            out.append(np.sort(t + rng.uniform(0.0, dur, k)))
            count += k
        t += dur
        i += 1
        if (n is not None and count >= n) or (horizon is not None and t >= horizon):
            break
    allt = np.concatenate(out) if out else np.empty(0)
    return _cut(allt, n, horizon)


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
        if p.stat().st_size > MAX_TRACE_BYTES:
            raise ScenarioError(f"trace {p}: larger than {MAX_TRACE_BYTES} bytes")
        df = pd.read_csv(p)
    except OSError as exc:
        raise ScenarioError(f"trace {p}: cannot read: {exc.strerror or exc}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"trace {p}: not a CSV table: {str(exc).splitlines()[0]}") from None
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
    df = df.assign(t_s=t).sort_values("t_s", kind="stable").reset_index(drop=True)
    return df


def _trace(
    a: Trace, growth: float, n: int | None, horizon: float | None
) -> tuple[np.ndarray, pd.DataFrame, int]:
    df = read_trace(a.path)
    t = df["t_s"].to_numpy() / (a.speedup * growth)
    span = float(t[-1]) + float(np.median(np.diff(t)))  # the loop period: one typical gap after the last
    need_loops = 1
    if n is not None:
        need_loops = -(-n // len(t))
    elif horizon is not None:
        need_loops = int(np.ceil(horizon / span))
    times = np.concatenate([t + k * span for k in range(need_loops)])
    idx = np.tile(np.arange(len(t)), need_loops)
    keep = np.arange(min(n, times.size)) if n is not None else np.flatnonzero(times < (horizon or 0.0))
    return times[keep], df.iloc[idx[keep]].reset_index(drop=True), need_loops


def _sizes(
    rng: np.random.Generator, d: Fixed | Uniform | LogNormal | Empirical, k: int
) -> tuple[np.ndarray, int]:
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


def generate(sc: Scenario, rng: np.random.Generator | None = None) -> Requests:
    """The request stream of a scenario (growth applied), from `rng` or the scenario's seed."""
    rng = rng if rng is not None else np.random.default_rng(sc.seed)
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
    if t.size > MAX_REQUESTS:
        raise ScenarioError(
            f"scenario {sc.name}: {t.size:,} requests, over the {MAX_REQUESTS:,} limit of one simulation"
        )
    items, clipped = _sizes(rng, sc.size.items, t.size)
    seq = None
    if isinstance(sc.size.seq_len, FromTrace):
        assert frame is not None
        col = sc.size.seq_len.column
        if col not in frame.columns:
            raise ScenarioError(f"trace has no column {col!r} for the sequence length")
        seq = pd.to_numeric(frame[col], errors="coerce").fillna(1).clip(lower=1).to_numpy(dtype=np.int64)
    elif sc.size.seq_len is not None:
        seq, c2 = _sizes(rng, sc.size.seq_len, t.size)
        clipped += c2
    if clipped:
        notes.append(f"{clipped} request sizes above a lognormal cap were clipped to the cap")
    window = float(horizon) if horizon is not None else float(t[-1])
    return Requests(t.astype(np.float64), items, seq, window, clipped, tuple(notes))
