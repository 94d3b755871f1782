"""Step times of an LLM engine from a measured LLM run: prefill by the tokens it prefills, decode by batch and
context, and the extra cost of a prefill chunk riding in a decode step.

Between measured points, medians are interpolated and the spread is the measured one:
- prefill: a monotone PCHIP over log total prefill tokens of log median (made non-decreasing first), pooled
  over the measured batch sizes (prefill is compute-bound: its time follows the tokens);
- decode: at each measured context, a PCHIP over log batch; between contexts, linear in log context;
- mixed: the decode step plus the chunk's extra cost, measured as (mixed - decode) at the mixed points and
  interpolated over chunk tokens; without mixed points, decode + prefill of the chunk (no overlap assumed:
  a pessimistic bound, stated in the warnings).
- a prefill behind a cached prefix (engine runs measured with cached prefix lengths): TTFT(C cached, S new) less
  TTFT(0, S) is the attention of the new tokens over the cached ones; its least-squares slope over C x S (through
  0) is what each computed token adds per cached token, added to the step that computes it.
A draw scales a sample of the nearest measured point by (interpolated median / that point's median). The
decode context is looked up in 16-token buckets (at the bucket's middle). Outside
the measured range the edge value is used and the step is counted as beyond the grid ("optimistic"): nothing
is extrapolated. A run measured through a serving engine reaches these curves through engine_steps.py.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.interpolate import PchipInterpolator

from measure.run import Point, Run
from planner.llm.engine_steps import decode_samples, samples, ttft_line

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
    cached_attend_ms: float = 0.0  # ms a computed prompt token adds per cached token before it (measured)
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
    behind = [p for p in mine if p.cached_tokens is not None]  # prefill behind a cached prefix: its own fit
    mine = [p for p in mine if p.cached_tokens is None]
    prefill = [(float(p.batch_size * (p.seq_len or 0)), samples(p)) for p in mine if p.phase == "prefill"]
    source = "engine" if any(p.source == "engine" for p in mine) else "in-process"
    line = ttft_line(mine) if source == "engine" else None
    slope = line[1] if isinstance(line, tuple) else None
    alone = {  # concurrency-1 decode points by prompt: the spread of a pure decode step there
        p.engine.prompt_tokens: p
        for p in mine
        if p.phase == "decode" and p.engine and p.engine.concurrency == 1
    }
    by_ctx: dict[int, list[tuple[float, np.ndarray]]] = {}
    counted = heuristic = 0
    for p in mine:
        if p.phase == "decode" and p.context_tokens is not None:
            if p.source == "engine" and p.engine is not None:
                x, read = decode_samples(p, alone.get(p.engine.prompt_tokens), slope)
                counted += read and p.engine.concurrency > 1
                heuristic += not read
            else:
                x = samples(p)
            by_ctx.setdefault(p.context_tokens, []).append((float(p.batch_size), x))
    if not prefill or not by_ctx:
        raise StepModelError(f"run {run.short_id()} at {precision} needs both prefill and decode points")
    decode = {c: Curve.build(v) for c, v in by_ctx.items()}
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
                extra.append((float(p.chunk_tokens), samples(p) * (gain / p.latency_ms.median)))
    if extra:
        model.chunk_extra = Curve.build(extra)
    elif isinstance(line, str):
        notes.append(line)
    elif line is not None:
        _split_engine_ttft(model, mine, line, notes)
    else:
        notes.append(
            "no mixed-step measurement: a step with decode and prefill costs decode + prefill (pessimistic)"
        )
    if behind:
        _cached_prefill(model, behind, notes)
    if counted:
        notes.append(
            f"engine run: {counted} decode point(s) above concurrency 1 from the engine's counters over the steady "
            "window: mean step (window / steps) less the prompt tokens a step carried at the fitted ms/token, "
            "with the concurrency-1 gaps' spread"
        )
    if heuristic:
        notes.append(
            f"engine run: {heuristic} decode point(s) without windowed counters: the inter-token gaps served at that "
            "concurrency without the share that carried another stream's prefill in the closed loop (the fastest "
            "e^-(c-1)/output tokens kept: a heuristic)"
        )
    return model


def _cached_prefill(model: StepModel, behind: list[Point], notes: list[str]) -> None:
    """What a cached prefix adds to a prefill: (TTFT(C, S) - TTFT(0, S)) = k x C x S fitted through 0, C the
    tokens the engine found cached per request (its counters; else the prefix sent)."""
    ref = {p.seq_len: p.latency_ms.median for p in behind if p.cached_tokens == 0 and p.latency_ms}
    xs, ys, said = [], [], []
    for p in behind:
        if not p.cached_tokens or p.latency_ms is None or p.seq_len not in ref:
            continue
        c = p.engine.counters if p.engine else None
        found = float(p.cached_tokens)
        if c is not None and c.prefix_cache_hits is not None and c.requests_sent:
            found = c.prefix_cache_hits / c.requests_sent
        extra = p.latency_ms.median - ref[p.seq_len]
        xs.append(found * (p.seq_len or 0))
        ys.append(extra)
        said.append(f"{found:.0f} cached: {p.latency_ms.median:.3g} ms")
    if not xs:
        notes.append("cached-prefix prefill points without an uncached one of the same suffix: not used")
        return
    x, y = np.array(xs), np.array(ys)
    k = float(x @ y / (x @ x)) if float(x @ x) > 0 else 0.0
    model.cached_attend_ms = max(k, 0.0)
    suffix = next(p.seq_len for p in behind if p.cached_tokens == 0)
    notes.append(
        f"prefill behind a cached prefix (engine run, {suffix} new tokens): {ref[suffix]:.3g} ms with none, "
        + ", ".join(said)
        + f"; each computed token adds {model.cached_attend_ms * 1e6:.3g} us per 1,000 cached tokens"
        + (" (the fitted slope was negative: none added)" if k < 0 else "")
    )


def _split_engine_ttft(
    model: StepModel, mine: list[Point], line: tuple[float, float], notes: list[str]
) -> None:
    """TTFT = a + b x prompt tokens (engine_steps.ttft_line): b x tokens is what a prompt chunk adds to a step
    (the mixed-step cost), the decode gap at batch 1 (d1) is a step's fixed cost, and a - d1 is latency outside
    the engine, added to every request's TTFT and E2E without occupying the engine."""
    intercept, slope = line
    xs = sorted({float(p.seq_len or 0) for p in mine if p.phase == "prefill" and p.latency_ms})
    d1, _, _ = model._decode_median(1, float(min(model.contexts)))
    outside = max(0.0, intercept - d1)
    model.request_overhead_ms = outside
    model.chunk_extra = Curve.build([(x, np.array([slope * x])) for x in xs])
    base = [
        (float(p.seq_len or 0), samples(p) * max(0.05, 1 - outside / float(p.latency_ms.median)))
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
