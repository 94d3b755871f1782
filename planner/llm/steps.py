"""Step times of an LLM engine from a measured LLM run: prefill by the tokens it prefills, decode by batch and
context, and the extra cost of a prefill chunk riding in a decode step.

Between measured points, medians are interpolated and the spread is the measured one:
- prefill: a monotone PCHIP over log total prefill tokens of log median (made non-decreasing first), pooled
  over the measured batch sizes (prefill is compute-bound: its time follows the tokens);
- decode: at each measured context, a PCHIP over log batch; between contexts, linear in log context;
- mixed: the decode step plus the chunk's extra cost, measured as (mixed - decode) at the mixed points and
  interpolated over chunk tokens; without mixed points, decode + prefill of the chunk (no overlap assumed:
  a pessimistic bound, stated in the warnings).
A draw scales a sample of the nearest measured point by (interpolated median / that point's median). The
decode context is looked up in 16-token buckets (at the bucket's middle). Outside
the measured range the edge value is used and the step is counted as beyond the grid ("optimistic"): nothing
is extrapolated.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import PchipInterpolator

from measure.run import Point, Run

CONTEXT_BUCKET_BITS = 4  # decode contexts are looked up in buckets of 16 tokens
MAX_SAMPLES = 512  # per point: enough to keep the measured spread, small enough to index fast


class StepModelError(ValueError):
    """An LLM run that cannot serve as an engine model (no LLM points at the precision, no decode points)."""


@dataclass
class Curve:
    """A monotone curve of median ms over log x, with each measured point's samples normalised by its median."""

    xs: np.ndarray
    medians: np.ndarray
    spreads: list[np.ndarray]
    _f: PchipInterpolator | None = field(default=None, repr=False)

    @classmethod
    def build(cls, points: list[tuple[float, np.ndarray]]) -> Curve:
        by_x: dict[float, list[np.ndarray]] = {}
        for x, s in points:
            by_x.setdefault(x, []).append(s)
        xs = sorted(by_x)
        pooled = [np.concatenate(by_x[x]) for x in xs]
        medians = np.maximum.accumulate(np.array([float(np.median(s)) for s in pooled]))
        # evenly spaced over each pooled series, so every point pooled at this x keeps its share
        spreads = [
            (s / np.median(s))[np.linspace(0, s.size - 1, min(s.size, MAX_SAMPLES)).astype(int)]
            for s in pooled
        ]
        f = PchipInterpolator(np.log(xs), np.log(medians)) if len(xs) > 1 else None
        return cls(np.array(xs, dtype=float), medians, spreads, f)

    def median(self, x: float) -> tuple[float, bool]:
        """Median at x and whether x was outside the measured range (then the edge value)."""
        lo, hi = float(self.xs[0]), float(self.xs[-1])
        outside = x < lo * 0.999 or x > hi * 1.001
        if self._f is None:
            return float(self.medians[0]), outside
        xc = min(max(x, lo), hi)
        return float(math.exp(float(self._f(math.log(xc))))), outside

    def spread(self, x: float) -> np.ndarray:
        i = bisect.bisect_left(self.xs.tolist(), x)
        if i >= len(self.xs):
            return self.spreads[-1]
        if i > 0 and math.log(x / self.xs[i - 1]) < math.log(self.xs[i] / x):
            i -= 1
        return self.spreads[i]


@dataclass
class StepModel:
    """Step time in ms of one engine step, from one LLM run at one precision."""

    run_id: str
    precision: str
    source: str
    prefill: Curve
    decode: dict[int, Curve]  # context -> curve over batch
    chunk_extra: Curve | None
    notes: list[str]
    request_overhead_ms: float = (
        0.0  # per-request latency outside the engine's steps (engine runs: HTTP, ...)
    )
    _cache: dict[tuple[int, int, int], tuple[float, bool, np.ndarray]] = field(
        default_factory=dict, repr=False
    )

    @property
    def contexts(self) -> list[int]:
        return sorted(self.decode)

    def _decode_median(self, batch: int, context: float) -> tuple[float, bool, np.ndarray]:
        ctxs = self.contexts
        outside = context < ctxs[0] * 0.999 or context > ctxs[-1] * 1.001
        c = min(max(context, ctxs[0]), ctxs[-1])
        j = bisect.bisect_left(ctxs, c)
        lo_c, hi_c = ctxs[max(j - 1, 0)], ctxs[min(j, len(ctxs) - 1)]
        m_lo, o_lo = self.decode[lo_c].median(batch)
        if hi_c == lo_c:
            return m_lo, outside or o_lo, self.decode[lo_c].spread(batch)
        m_hi, o_hi = self.decode[hi_c].median(batch)
        w = math.log(c / lo_c) / math.log(hi_c / lo_c)
        near = lo_c if w < 0.5 else hi_c
        return m_lo + w * (m_hi - m_lo), outside or o_lo or o_hi, self.decode[near].spread(batch)

    def step_ms(
        self, rng: np.random.Generator, decode_batch: int, context: float, prefill_tokens: int
    ) -> tuple[float, bool]:
        """One step's time: `decode_batch` sequences decoding at mean `context`, plus `prefill_tokens` of
        prefill (chunks or whole prompts). Returns (ms, beyond the measured grid)."""
        # contexts in 16-token buckets, evaluated at the bucket's middle: one interpolation serves many steps
        key = (decode_batch, int(context) >> CONTEXT_BUCKET_BITS, prefill_tokens)
        hit = self._cache.get(key)
        if hit is None:
            middle = (
                ((key[1] << CONTEXT_BUCKET_BITS) + (1 << CONTEXT_BUCKET_BITS) / 2) if decode_batch else 0.0
            )
            hit = self._median(decode_batch, middle, prefill_tokens)
            if len(self._cache) < 200_000:
                self._cache[key] = hit
        median, outside, spread = hit
        return median * float(spread[int(rng.integers(spread.size))]), outside

    def _median(self, batch: int, context: float, prefill: int) -> tuple[float, bool, np.ndarray]:
        if batch == 0:
            m, o = self.prefill.median(prefill)
            return m, o, self.prefill.spread(prefill)
        dm, do, spread = self._decode_median(batch, context)
        if prefill == 0:
            return dm, do, spread
        if self.chunk_extra is not None:
            em, eo = self.chunk_extra.median(prefill)
            return dm + em, do or eo, spread
        pm, po = self.prefill.median(prefill)
        return dm + pm, do or po, spread


def _samples(p: Point) -> np.ndarray:
    return np.asarray(p.raw_latencies_ms, dtype=np.float64)


MIN_DECODE_SAMPLES = 20


def _pure_decode(p: Point) -> np.ndarray:
    """An engine run's inter-token gaps without the steps that carried another stream's prefill.

    In the closed loop that measured the point, each of the other c - 1 streams starts a new request (one
    prefill) every `output_tokens` steps, so a step carries Poisson(lambda = (c - 1) / output_tokens) prefills
    and e^-lambda of the steps are pure decode. Those are taken as the fastest e^-lambda of the gaps (a step
    with a prefill is never faster than one without); the engine model adds prefill chunks to steps itself."""
    x = np.sort(_samples(p))
    e = p.engine
    if e is None or e.concurrency <= 1 or not e.output_tokens:
        return x
    keep = max(MIN_DECODE_SAMPLES, int(x.size * math.exp(-(e.concurrency - 1) / e.output_tokens)))
    return x[: min(keep, x.size)]


def step_model(run: Run, precision: str | None = None) -> StepModel:
    """The engine step model of an LLM run at a precision (the only one it has when not given)."""
    measured = [
        p for p in run.points if p.phase is not None and p.latency_ms is not None and p.raw_latencies_ms
    ]
    precisions = sorted({p.precision for p in measured})
    if not measured:
        raise StepModelError(f"run {run.short_id()} has no measured LLM point (prefill/decode)")
    if precision is None:
        if len(precisions) != 1:
            raise StepModelError(
                f"run {run.short_id()} has LLM points at {', '.join(precisions)}: pick --precision"
            )
        precision = precisions[0]
    mine = [p for p in measured if p.precision == precision]
    if not mine:
        raise StepModelError(
            f"run {run.short_id()} has no LLM point at {precision} (has {', '.join(precisions)})"
        )
    prefill = [(float(p.batch_size * (p.seq_len or 0)), _samples(p)) for p in mine if p.phase == "prefill"]
    by_ctx: dict[int, list[tuple[float, np.ndarray]]] = {}
    for p in mine:
        if p.phase == "decode" and p.context_tokens is not None:
            samples = _pure_decode(p) if p.source == "engine" else _samples(p)
            by_ctx.setdefault(p.context_tokens, []).append((float(p.batch_size), samples))
    if not prefill or not by_ctx:
        raise StepModelError(f"run {run.short_id()} at {precision} needs both prefill and decode points")
    decode = {c: Curve.build(v) for c, v in by_ctx.items()}
    source = "engine" if any(p.source == "engine" for p in mine) else "in-process"
    notes: list[str] = []
    model = StepModel(run.id, precision, source, Curve.build(prefill), decode, None, notes)
    extra = []
    for p in mine:
        if (
            p.phase == "mixed"
            and p.context_tokens is not None
            and p.chunk_tokens is not None
            and p.latency_ms
        ):
            dm, _, _ = model._decode_median(p.batch_size, p.context_tokens)
            gain = p.latency_ms.median - dm
            if gain > 0:
                extra.append((float(p.chunk_tokens), _samples(p) * (gain / p.latency_ms.median)))
    if extra:
        model.chunk_extra = Curve.build(extra)
    elif source == "engine":
        _split_engine_ttft(model, mine, notes)
    else:
        notes.append(
            "no mixed-step measurement: a step with decode and prefill costs decode + prefill (pessimistic)"
        )
    if source == "engine":
        notes.append(
            "engine run: a decode step is the inter-token gap served at that concurrency, without the share of gaps "
            "that carried another stream's prefill in the closed loop (e^-(c-1)/output tokens kept: the fastest)"
        )
    return model


def _split_engine_ttft(model: StepModel, mine: list[Point], notes: list[str]) -> None:
    """An engine run's TTFT at concurrency 1 is not one engine step: it holds the client's round trip and
    tokenisation, one step's fixed cost and the prompt's marginal compute. A straight line through the
    measured medians, TTFT = a + b x prompt tokens, separates them: b x tokens is what a prompt chunk adds to a
    step (the mixed-step cost), the decode gap at batch 1 (d1) is a step's fixed cost, and a - d1 is latency
    outside the engine, added to every request's TTFT and E2E without occupying the engine."""
    pts = [
        (float(p.seq_len or 0), float(p.latency_ms.median))
        for p in mine
        if p.phase == "prefill" and p.latency_ms
    ]
    xs = np.array([x for x, _ in pts])
    if len(set(xs.tolist())) < 2:
        notes.append(
            "engine run with one prompt length: TTFT cannot be split into engine and client time; a step with "
            "decode and prefill costs decode + the whole TTFT (pessimistic)"
        )
        return
    slope, intercept = np.polyfit(xs, np.array([y for _, y in pts]), 1)
    d1, _, _ = model._decode_median(1, float(min(model.contexts)))
    if slope <= 0 or intercept <= 0:
        notes.append(
            f"engine run: TTFT does not grow with the prompt in a straight line (fit {intercept:.3g} + "
            f"{slope:.3g} ms/token); a step with decode and prefill costs decode + the whole TTFT (pessimistic)"
        )
        return
    outside = max(0.0, float(intercept) - d1)
    model.request_overhead_ms = outside
    extra = [(x, np.array([float(slope) * x])) for x in sorted(set(xs.tolist()))]
    model.chunk_extra = Curve.build(extra)
    base = [
        (float(p.seq_len or 0), _samples(p) * max(0.05, 1 - outside / float(p.latency_ms.median)))
        for p in mine
        if p.phase == "prefill" and p.latency_ms
    ]
    model.prefill = Curve.build(base)
    notes.append(
        f"engine run: TTFT = {intercept:.3g} ms + {slope:.3g} ms/prompt token (fit over the measured prompts); "
        f"{outside:.3g} ms of it is outside the engine (round trip, tokenisation: added to each request, not to "
        f"steps), a step's fixed cost is the batch-1 decode gap ({d1:.3g} ms), and a prompt chunk adds "
        f"{slope:.3g} ms/token to the step it rides in"
    )
