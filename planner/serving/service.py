"""Service-time models: how long a batch takes, from a measured run or from an assumed profile.

Measured: the service time of a batch of b items is drawn from the steady-state latencies measured at b.
Between measured batch sizes, the distribution of the nearest measured size (in log-batch distance) is
scaled by the ratio of medians, where the median is a monotone PCHIP interpolation of the measured medians
(made non-decreasing first). Batches above the largest measured size are refused (an OOM or an untested
size is a hard limit). Batches below the smallest measured size use that size's distribution unscaled
(conservative: a smaller batch is never assumed faster than what was measured).

Assumed profiles are what-if inputs for hardware nobody has measured; everything computed from them is
labelled `assumed`. Schema history of the profile file: 1 - first version.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.interpolate import PchipInterpolator

from planner.serving.profiles import Deterministic, EmpiricalLatency, Exponential, LogNormalLatency

Source = Literal["measured", "assumed"]
EXACT_BATCHES = 256  # sustainable rate: every batch size up to this is evaluated, a log grid above
Bound = Literal["nominal", "pessimistic", "optimistic"]


class ServiceError(ValueError):
    """A service model that cannot be built, or a batch it cannot serve; the message says why."""


# k latencies (ms) drawn from one batch size's distribution, with a generator
LatencyDraw = Callable[[np.random.Generator, int], np.ndarray]


@dataclass(frozen=True)
class BatchLatency:
    """The latency distribution at one batch size: its median, mean and a sampler (ms)."""

    batch: int
    median_ms: float
    mean_ms: float
    draw: LatencyDraw


def _dist_latency(
    batch: int, d: Deterministic | Exponential | LogNormalLatency | EmpiricalLatency
) -> BatchLatency:
    if isinstance(d, Deterministic):
        return BatchLatency(batch, d.ms, d.ms, lambda rng, k: np.full(k, d.ms))
    if isinstance(d, Exponential):
        return BatchLatency(
            batch, d.mean_ms * np.log(2), d.mean_ms, lambda rng, k: rng.exponential(d.mean_ms, k)
        )
    if isinstance(d, LogNormalLatency):
        mu = np.log(d.median_ms)
        return BatchLatency(
            batch,
            d.median_ms,
            float(np.exp(mu + d.sigma**2 / 2)),
            lambda rng, k: rng.lognormal(mu, d.sigma, k),
        )
    s = np.asarray(d.samples_ms, dtype=np.float64)
    return samples_latency(batch, s)


def samples_latency(batch: int, s: np.ndarray) -> BatchLatency:
    """The empirical latency distribution of one batch size (ms samples, drawn with replacement)."""
    return BatchLatency(
        batch, float(np.median(s)), float(s.mean()), lambda rng, k: s[rng.integers(0, s.size, k)]
    )


@dataclass(frozen=True)
class PacedBatch:
    """Service time of one measured batch size by the idle gap before it: gaps_s[0] is 0 (back to back)."""

    gaps_s: tuple[float, ...]
    dists: tuple[BatchLatency, ...]

    def pick(self, idle_s: float, u: float) -> tuple[int, bool]:
        """The bin to draw from after `idle_s` of idle (u uniform in [0, 1)) and whether the idle time was
        beyond the longest measured gap. Between two measured gaps the draw mixes the two bins linearly in the
        gap (at 3 ms between bins at 1 and 5 ms: half from each); beyond the longest, that bin is used."""
        g = self.gaps_s
        if idle_s >= g[-1]:
            return len(g) - 1, idle_s > g[-1]
        i = bisect.bisect_right(g, idle_s) - 1
        w = (idle_s - g[i]) / (g[i + 1] - g[i])
        return (i + 1 if u < w else i), False


@dataclass
class LatencyTable:
    """Latency by batch size for one sequence length, with the interpolation rule of the module docstring."""

    points: list[BatchLatency]  # sorted by batch
    # measured batch -> its service time by idle gap before the batch (gap 0: the back-to-back samples)
    paced: dict[int, PacedBatch] = field(default_factory=dict)
    _median: PchipInterpolator | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.points.sort(key=lambda p: p.batch)
        if len(self.points) >= 2:
            b = np.array([p.batch for p in self.points], dtype=np.float64)
            med = np.maximum.accumulate([p.median_ms for p in self.points])  # non-decreasing in batch
            self._median = PchipInterpolator(b, med)

    @property
    def max_batch(self) -> int:
        return self.points[-1].batch

    def base(self, b: int) -> tuple[BatchLatency, float]:
        """The measured distribution used for a batch of b and the factor its samples are scaled by."""
        exact = next((p for p in self.points if p.batch == b), None)
        if exact is not None:
            return exact, 1.0
        if b > self.max_batch:
            raise ServiceError(f"batch {b} is above the largest measured batch {self.max_batch}")
        if b < self.points[0].batch or self._median is None:
            return self.points[0], 1.0
        near = min(self.points, key=lambda p: abs(np.log(p.batch) - np.log(b)))
        return near, float(self._median(b)) / near.median_ms

    def paced_base(self, b: int) -> tuple[PacedBatch | None, float]:
        """The paced bins of the measured size a batch of b is drawn from, and the same scale as `base`."""
        near, scale = self.base(b)
        return self.paced.get(near.batch), scale

    def mean_ms(self, b: int) -> float:
        """Mean latency of a batch of b (ms), by the interpolation rule."""
        p, scale = self.base(b)
        return p.mean_ms * scale

    def median_ms(self, b: int) -> float:
        """Median latency of a batch of b (ms), by the interpolation rule."""
        p, scale = self.base(b)
        return p.median_ms * scale


@dataclass
class ServiceModel:
    """What the simulator needs from a device: batch service times, limits, power; and where they come from."""

    source: Source
    label: str
    evidence: str  # run id or profile name: what to look at to check these numbers
    unit: str
    units_per_item: float | None  # None: per-request units come from the sequence length (tokens)
    tables: dict[int | None, LatencyTable]  # by sequence length (None: the workload has none)
    max_batch: int
    limit_reason: str
    idle_power_w: float | None
    busy_power: Callable[[int], float] | None
    power_reason: str
    warnings: list[str] = field(default_factory=list)

    @property
    def seq_lens(self) -> list[int]:
        return sorted(s for s in self.tables if s is not None)

    def table_for(self, seq_len: int | None) -> tuple[LatencyTable, bool]:
        """The table for a batch whose longest sequence is seq_len, and whether it exceeded every measured one."""
        if None in self.tables or seq_len is None:
            return self.tables[None] if None in self.tables else self.tables[max(self.seq_lens)], False
        for s in self.seq_lens:
            if seq_len <= s:
                return self.tables[s], False
        return self.tables[max(self.seq_lens)], True

    def mean_service_s(self, b: int, seq_len: int | None = None) -> float:
        return self.table_for(seq_len)[0].mean_ms(b) / 1000.0

    def sustainable_items_per_s(self, max_batch: int, seq_len: int | None = None) -> float:
        """The most items/s one replica can serve with batches of at most max_batch (back to back).

        Evaluated at every batch size up to EXACT_BATCHES, at the measured sizes and on a log grid above:
        bounded work however large a run's batches are (the interpolation is smooth between measured sizes).
        """
        table = self.table_for(seq_len)[0]
        cands = set(range(1, min(max_batch, EXACT_BATCHES) + 1)) | {max_batch}
        cands |= {p.batch for p in table.points if p.batch <= max_batch}
        if max_batch > EXACT_BATCHES:
            cands |= {int(b) for b in np.geomspace(EXACT_BATCHES, max_batch, 256)}
        return max(b / self.mean_service_s(b, seq_len) for b in cands)

    def sampler(self, rng: np.random.Generator) -> BatchSampler:
        return BatchSampler(self, rng)


class BatchSampler:
    """Draws batch service times in seconds from per-(sequence, batch) buffers refilled in blocks."""

    BLOCK = 2048

    def __init__(self, model: ServiceModel, rng: np.random.Generator) -> None:
        self.model, self.rng = model, rng
        self._seqs = model.seq_lens if None not in model.tables else []
        self._longest = self._seqs[-1] if self._seqs else None
        self._buf: dict[tuple[int | None, int, int], tuple[list[float], list[int]]] = {}
        self._bucket_of: dict[int, int] = {}  # sequence length -> its measured bucket, as met
        self.seq_over = 0
        self.beyond_gap = 0  # batches after an idle time longer than the longest measured gap
        self._paced = any(t.paced for t in model.tables.values())
        self._u: list[float] = []
        # a separate stream for the bin choices: an unpaced model draws exactly the service times it drew before
        self._u_rng = np.random.default_rng(rng.integers(0, 2**63)) if self._paced else None
        self._plain: dict[int, Iterator[float]] = {}
        self._by_bucket: dict[tuple[int | None, int], Iterator[float]] = {}
        if not self._paced:
            self.draw = self._draw_bucketed if self._seqs else self._draw_plain  # type: ignore[method-assign]

    def _draw_plain(self, b: int, seq_len: int | None = None, idle_s: float | None = None) -> float:
        """`draw` for a model with one table and no pacing: the same blocks, refilled at the same draws (a
        sizing grid draws about two million batches, so each draw is one dict lookup and one next())."""
        it = self._plain.get(b)
        if it is not None:
            v = next(it, None)
            if v is not None:
                return v
        base, scale = self.model.tables[None].base(b)
        it = iter((base.draw(self.rng, self.BLOCK) * (scale / 1000.0)).tolist())
        self._plain[b] = it
        return next(it)

    def _draw_bucketed(self, b: int, seq_len: int | None = None, idle_s: float | None = None) -> float:
        """`draw` for a model with sequence buckets and no pacing: the same blocks per (bucket, batch),
        refilled at the same draws, without the pacing branches."""
        bucket = None
        if seq_len is not None:
            bucket = self._bucket(seq_len)
            if self._longest is not None and seq_len > self._longest:
                self.seq_over += 1
        it = self._by_bucket.get((bucket, b))
        if it is not None:
            v = next(it, None)
            if v is not None:
                return v
        base, scale = self.model.table_for(bucket)[0].base(b)
        it = iter((base.draw(self.rng, self.BLOCK) * (scale / 1000.0)).tolist())
        self._by_bucket[(bucket, b)] = it
        return next(it)

    def _bucket(self, seq_len: int) -> int:
        """The measured sequence bucket a length is served in (the longest one beyond them), remembered."""
        bucket = self._bucket_of.get(seq_len)
        if bucket is None:
            at = min(bisect.bisect_left(self._seqs, seq_len), len(self._seqs) - 1)
            bucket = self._bucket_of[seq_len] = self._seqs[at]
        return bucket

    def _uniform(self) -> float:
        if not self._u:
            assert self._u_rng is not None
            self._u = self._u_rng.random(self.BLOCK).tolist()
        return self._u.pop()

    def draw(self, b: int, seq_len: int | None = None, idle_s: float | None = None) -> float:
        # one buffer per measured (sequence bucket, batch, gap bin): every length in a bucket is served alike
        bucket = self._bucket(seq_len) if seq_len is not None and self._seqs else None
        gap_bin = -1  # back to back, the only bin of an unpaced point
        if idle_s is not None and self._paced:
            table, _ = self.model.table_for(bucket)
            pb, _ = table.paced_base(b)
            if pb is not None:
                gap_bin, beyond = pb.pick(idle_s, self._uniform())
                self.beyond_gap += beyond
        key = (bucket, b, gap_bin)
        entry = self._buf.get(key)
        if entry is None or entry[1][0] >= len(entry[0]):
            table, _ = self.model.table_for(bucket)
            base, scale = table.base(b)
            if gap_bin >= 0:
                pb, _ = table.paced_base(b)
                assert pb is not None
                base = pb.dists[gap_bin]
            entry = ((base.draw(self.rng, self.BLOCK) * (scale / 1000.0)).tolist(), [0])
            self._buf[key] = entry
        if seq_len is not None and self._longest is not None and seq_len > self._longest:
            self.seq_over += 1
        i = entry[1][0]
        entry[1][0] = i + 1
        return entry[0][i]
