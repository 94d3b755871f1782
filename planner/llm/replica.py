"""A continuous-batching LLM engine in the manner of vLLM, one SimPy process per replica, one event per step.

Each step, the scheduler (knobs named as vLLM's):
1. walks the running sequences in admission order: a sequence in decode gets 1 token, one still prefilling
   gets its next chunk (chunked prefill) within `max_num_batched_tokens`;
2. before giving a sequence its tokens, makes room in the KV cache (blocks of `block_size` tokens): when no
   block is free, the newest running sequence is preempted by recompute (its blocks freed, its prompt and
   the tokens generated so far prefilled again when it is readmitted; counted);
3. admits waiting sequences first come, first served while `max_num_seqs`, the token budget and free blocks
   allow (none in a step that preempted); without chunked prefill a prompt is admitted only whole.
The step's time is drawn from the measured step model (decode batch at mean context, plus the prefill
tokens). At the end of the step every scheduled decode sequence has one more token, and a sequence whose
prefill completed has its first (or, after recompute, its next) token.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import simpy

from planner.llm.steps import StepModel

MAX_SIM_STEPS: Final = 20_000_000  # engine steps over all replicas (a tiny token budget makes many)


class EngineError(ValueError):
    """Engine knobs that cannot serve the requests (a prompt that can never be admitted, say)."""


@dataclass(frozen=True)
class EngineConfig:
    """The engine knobs, with vLLM's names and defaults where they exist."""

    max_num_seqs: int = 256
    max_num_batched_tokens: int = 8192
    chunked_prefill: bool = True
    block_size: int = 16
    kv_blocks: int = 100_000
    prefix_caching: bool = False  # vLLM's automatic prefix caching (planner/llm/prefix_cache.py)

    def __post_init__(self) -> None:
        if min(self.max_num_seqs, self.max_num_batched_tokens, self.block_size, self.kv_blocks) < 1:
            raise EngineError("max_num_seqs, max_num_batched_tokens, block_size and kv_blocks must be >= 1")

    def check(self, prompt: int, output: int) -> str | None:
        """Why a request of this size can never be served by one replica, or None."""
        if not self.chunked_prefill and prompt + output > self.max_num_batched_tokens:
            # as vLLM requires max_num_batched_tokens >= max_model_len without chunking: a preempted sequence is
            # prefilled again whole, prompt and generated tokens together
            return (
                f"{prompt} + {output} tokens exceed max_num_batched_tokens {self.max_num_batched_tokens} without "
                "chunked prefill"
            )
        if math.ceil((prompt + output) / self.block_size) > self.kv_blocks:
            return f"{prompt + output} tokens need more KV blocks than the cache has ({self.kv_blocks} x {self.block_size})"
        return None


class Seq:
    """One request inside a replica."""

    __slots__ = ("blocks", "computed", "generated", "idx", "last_s", "output", "prompt", "target")

    def __init__(self, idx: int, prompt: int, output: int) -> None:
        self.idx, self.prompt, self.output = idx, prompt, output
        self.computed = 0  # tokens whose KV is in the cache
        self.generated = 0  # output tokens produced (streamed) so far
        self.target = prompt  # tokens to prefill before the next token: the prompt, or prompt + generated after recompute
        self.blocks = 0
        self.last_s = 0.0


@dataclass
class Trace:
    """What happened to every request, and per-step facts, filled in as the simulation runs."""

    first_s: np.ndarray
    finish_s: np.ndarray
    preempted: np.ndarray
    itl_ms: array[float] = field(default_factory=lambda: array("d"))  # 8 bytes a token, not a float object
    itl_request: array[int] = field(default_factory=lambda: array("q"))  # whose gap each itl_ms entry is
    steps: int = 0
    step_starts: array[float] = field(default_factory=lambda: array("d"))
    beyond_grid_steps: int = 0
    kv_used_time: float = 0.0  # integral of used blocks / total blocks over busy time
    busy_s: float = 0.0
    prefill_busy_s: float = 0.0
    decode_busy_s: float = 0.0
    prefill_tokens: int = 0
    decode_tokens: int = 0
    record_starts: bool = False
    record_itl: bool = True  # off: a day of requests keeps no 16 bytes a token
    sent_s: np.ndarray | None = None  # closed loop: when each request was sent
    # prefix caching (summed over replicas): prompt tokens looked up and found cached on admission, evictions
    prefix_queried_tokens: int = 0
    prefix_hit_tokens: int = 0
    prefix_evicted_blocks: int = 0
    cached_tokens: np.ndarray | None = (
        None  # per request, prompt tokens found cached when it was (last) admitted
    )


class Replica:
    """One engine: waiting queue, running set, KV blocks; a SimPy process steps it while it has work."""

    def __init__(
        self,
        env: simpy.Environment,
        cfg: EngineConfig,
        model: StepModel,
        trace: Trace,
        rng: np.random.Generator,
    ) -> None:
        self.env, self.cfg, self.model, self.trace, self.rng = env, cfg, model, trace, rng
        self.waiting: deque[Seq] = deque()
        self.running: list[Seq] = []
        self.free = cfg.kv_blocks
        self.outstanding = 0
        self.on_finish: Callable[[], None] | None = None  # closed-loop clients send their next request
        self.wake: simpy.Event = env.event()
        self.attend_ms = 0.0  # a replica with a prefix cache sets the model's cost of attending over it
        env.process(self.loop())

    @property
    def kv_use(self) -> float:
        return 1.0 - self.free / self.cfg.kv_blocks

    def submit(self, seq: Seq) -> None:
        self.waiting.append(seq)
        self.outstanding += 1
        if not self.wake.triggered:
            self.wake.succeed()

    def _blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.cfg.block_size)

    def add_counts(self, trace: Trace) -> None:
        """This replica's own counters into the trace (a replica without a prefix cache has none)."""

    def cached_attention(self, plan: list[tuple[Seq, int, bool]]) -> int:
        """Computed prompt tokens x cached tokens before them, over a step (none without a prefix cache)."""
        return 0

    def stalled(self) -> simpy.Event | None:
        """An event that frees blocks this replica is waiting for, where some are held (None: none are)."""
        return None

    def _release(self, seq: Seq) -> None:
        """A finished sequence's blocks go back to the pool."""
        self.free += seq.blocks
        seq.blocks = 0

    def _preempt(self, victim: Seq) -> None:
        self.running.remove(victim)
        self.free += victim.blocks
        victim.blocks = 0
        victim.computed = 0
        victim.target = victim.prompt + victim.generated  # recompute: prefill what the cache held again
        self.waiting.appendleft(victim)
        self.trace.preempted[victim.idx] += 1

    def schedule(self) -> list[tuple[Seq, int, bool]]:
        """(sequence, tokens, is_decode) for this step; preempts to make room where it must."""
        cfg = self.cfg
        budget = cfg.max_num_batched_tokens
        plan: list[tuple[Seq, int, bool]] = []
        preempted = False
        i = 0
        while i < len(self.running) and budget > 0:
            seq = self.running[i]
            decoding = seq.computed >= seq.target
            need = 1 if decoding else min(seq.target - seq.computed, budget)
            extra = self._blocks_for(seq.computed + need) - seq.blocks
            while extra > self.free:
                victim = self.running[-1]
                self._preempt(victim)
                preempted = True
                if victim is seq:
                    break
            if seq not in self.running:
                break
            self.free -= extra
            seq.blocks += extra
            plan.append((seq, need, decoding))
            budget -= need
            i += 1
        while self.waiting and budget > 0 and len(self.running) < cfg.max_num_seqs and not preempted:
            seq = self.waiting[0]
            need = seq.target - seq.computed
            if need > budget:
                if not cfg.chunked_prefill:
                    break
                need = budget
            blocks = self._blocks_for(seq.computed + need)
            if blocks > self.free:
                break
            self.waiting.popleft()
            self.running.append(seq)
            self.free -= blocks
            seq.blocks = blocks
            plan.append((seq, need, False))
            budget -= need
        return plan

    def loop(self) -> Generator[simpy.Event, None, None]:
        trace, env = self.trace, self.env
        while True:
            if not self.running and not self.waiting:
                self.wake = env.event()
                yield self.wake
            plan = self.schedule()
            if (
                not plan
            ):  # the step preempted its only sequence: schedule again at once (it fits an empty cache)
                plan = self.schedule()
            if not plan:  # blocks held elsewhere (a KV on its way out): wait for them, never a busy loop
                stall = self.stalled()
                if stall is None:  # cannot happen after EngineConfig.check
                    raise EngineError("the scheduler found nothing to run with work waiting")
                yield stall
                continue
            decodes = [s for s, _, d in plan if d]
            prefill = sum(n for _, n, d in plan if not d)
            context = sum(s.computed for s in decodes) / len(decodes) if decodes else 0.0
            ms, beyond = self.model.step_ms(self.rng, len(decodes), context, prefill)
            if self.attend_ms:  # computed prompt tokens attending over a prefix found cached (measured)
                ms += self.attend_ms * self.cached_attention(plan)
            if trace.record_starts:
                trace.step_starts.append(env.now)
            kv = self.kv_use
            yield env.timeout(ms / 1000.0)
            now = env.now
            dt = ms / 1000.0
            trace.steps += 1
            if trace.steps > MAX_SIM_STEPS:  # preemption and recompute can add steps no bound foresaw
                raise WorkBudgetError(f"the simulation passed the budget of {MAX_SIM_STEPS:,} engine steps")
            trace.beyond_grid_steps += beyond
            trace.busy_s += dt
            trace.kv_used_time += kv * dt
            trace.prefill_tokens += prefill
            trace.decode_tokens += len(decodes)
            if prefill and decodes:
                share = prefill / (prefill + len(decodes))
                trace.prefill_busy_s += dt * share
                trace.decode_busy_s += dt * (1 - share)
            elif prefill:
                trace.prefill_busy_s += dt
            else:
                trace.decode_busy_s += dt
            for seq, n, decoding in plan:
                seq.computed += n
                if not decoding and seq.computed < seq.target:
                    continue  # a chunk of a longer prefill: no token yet
                if seq.generated == 0:
                    trace.first_s[seq.idx] = now
                elif trace.record_itl:
                    trace.itl_ms.append((now - seq.last_s) * 1000.0)
                    trace.itl_request.append(seq.idx)
                seq.generated += 1
                seq.last_s = now
                if seq.generated >= seq.output:
                    self.running.remove(seq)
                    self._release(seq)
                    trace.finish_s[seq.idx] = now
                    self.outstanding -= 1
                    if self.on_finish is not None:
                        self.on_finish()


class WorkBudgetError(EngineError):
    """Input that would make a simulation (or a replay of a benchmark) do work past a stated budget."""
