"""Synthetic prefix structure for generative traffic: shared system prompts and multi-turn sessions, stated by
the scenario (`llm.prefix`) where no trace names one.

The arrival process gives every request's time, as for any scenario; the requests are then dealt to sessions in
time order. A request continues the session that became ready first, if one is ready (its last turn arrived at
least a think time ago: exponential, the stated mean), else opens a new session, which draws its number of turns
and one of the system prompts (uniformly). A turn's prompt is the session's last prompt, its answer and the new
message (`llm.prompt` draws the message, `llm.output` the answer); the first turn's is the system prompt and the
message. A session ends after its turns, or before a turn whose prompt would pass `max_prompt_tokens`.

Prefix ids name the prompt's blocks of `block_tokens` tokens, equal ids standing for equal tokens: a block wholly
inside the system prompt by the system prompt and its index, every other block by the session and its index
(a session's prompts extend one another, so block b of any of its turns holds the same tokens, cut where a
shorter prompt ends). These are the ids a Mooncake trace would carry for the same traffic.
"""

from __future__ import annotations

import heapq
import itertools

import numpy as np

from planner.traffic.arrivals import draw_sizes
from planner.traffic.scenario import PrefixModel, ScenarioError

MAX_PREFIX_IDS = 20_000_000  # ids over all prompts (a Mooncake hour holds ~290,000)


def synthetic_prefixes(
    pm: PrefixModel,
    arrival_s: np.ndarray,
    message: np.ndarray,
    answer: np.ndarray,
    rng: np.random.Generator,
    scale: float = 1.0,
) -> tuple[np.ndarray, tuple[tuple[int, ...], ...], int, list[str]]:
    """Each request's prompt tokens and prefix block ids, the tokens an id stands for, and notes saying what was
    built. `scale` multiplies the system prompt and the block as it multiplied the drawn lengths."""
    n = arrival_s.size
    block = max(1, round(pm.block_tokens * scale))
    system = pm.system
    sys_tokens = max(1, round(system.tokens * scale)) if system is not None else 0
    sys_blocks = sys_tokens // block  # blocks wholly inside a system prompt
    first_session_id = (system.prompts if system is not None else 0) * sys_blocks
    ses = pm.sessions
    cap = max(1, round(ses.max_prompt_tokens * scale)) if ses is not None else None
    # a session's ids: a range of `stride`, room for its longest prompt (a first turn may pass the cap)
    stride = max(cap or 0, int(message.max(initial=1)) + sys_tokens) // block + 2
    if n and first_session_id + n * stride > 2**53:
        raise ScenarioError("the synthetic prefix model needs more ids than fit in 2^53: fewer requests")
    if ses is not None:
        turns, _ = draw_sizes(rng, ses.turns, n)  # at most one session a request
        think = rng.exponential(ses.think_s, n)
    which = rng.integers(0, system.prompts, n) if system is not None else np.zeros(n, dtype=np.int64)
    ready: list[tuple[float, int]] = []  # (when the session's next turn may arrive, session)
    context: list[int] = []  # per session: its last prompt and answer, in tokens
    left: list[int] = []
    sys_of: list[int] = []
    prompt = np.empty(n, dtype=np.int64)
    ids: list[tuple[int, ...]] = []
    total = ended_by_cap = 0
    msg, ans, times = message.tolist(), answer.tolist(), arrival_s.tolist()
    for i in range(n):
        sid = -1
        while ready and ready[0][0] <= times[i]:
            _, s = heapq.heappop(ready)
            if cap is None or context[s] + msg[i] <= cap:
                sid = s
                break
            ended_by_cap += 1  # this turn would pass the cap: the session ends, the request opens another
        if sid < 0:
            sid = len(context)
            context.append(sys_tokens)
            left.append(int(turns[sid]) if ses is not None else 1)
            sys_of.append(int(which[sid]))
        p = context[sid] + msg[i]
        prompt[i] = p
        nblocks = -(-p // block)
        shared = min(sys_blocks, nblocks) if system is not None else 0
        base = first_session_id + sid * stride
        k = sys_of[sid] * sys_blocks
        ids.append(tuple(itertools.chain(range(k, k + shared), range(base + shared, base + nblocks))))
        total += nblocks
        if total > MAX_PREFIX_IDS:
            raise ScenarioError(
                f"the synthetic prefix model names more than {MAX_PREFIX_IDS:,} prefix blocks: fewer requests, "
                "shorter sessions or a larger block_tokens"
            )
        context[sid] = p + ans[i]
        left[sid] -= 1
        if left[sid] > 0 and ses is not None:
            heapq.heappush(ready, (times[i] + float(think[i]), sid))
    sessions = len(context)
    notes = [
        f"synthetic prefixes ({block} tokens an id): "
        + (f"{system.prompts} system prompt(s) of {sys_tokens} tokens; " if system is not None else "")
        + (
            f"{sessions:,} sessions over {n:,} requests ({n / max(sessions, 1):.2f} turns each on average)"
            if ses is not None
            else f"{n:,} single-turn requests"
        )
    ]
    if ended_by_cap:
        notes.append(f"{ended_by_cap:,} sessions ended before a turn that would pass {cap:,} prompt tokens")
    return prompt, tuple(ids), block, notes
