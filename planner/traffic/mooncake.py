"""Mooncake-format traces (JSON lines: `timestamp` in ms, `input_length`, `output_length`, `hash_ids`): arrivals,
token lengths and the prefix structure of every prompt, read with bounds.

A line's `hash_ids` name its prompt's blocks of `block_tokens` tokens (512 in the Mooncake release), first to
last; equal ids are equal blocks. The reader holds every line to that: one id per started block
(ceil(input_length / block_tokens)), each a whole number in 0..MAX_HASH_ID, and refuses a line that is not,
naming it. Nothing in the file is evaluated: each line is parsed as JSON data (bounded in length) and checked.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from measure.run.datafile import DataFileError, read_regular_file
from planner.traffic.scenario import MAX_DURATION_S, MAX_SIZE, ScenarioError

MAX_MOONCAKE_BYTES = 256 * 1024 * 1024
MAX_LINE_BYTES = 1024 * 1024
MAX_ROWS = 2_000_000
MAX_IDS = 50_000_000  # hash ids over the whole file: an hour of Mooncake conversation holds ~290,000
MAX_HASH_ID = 2**53  # exact in a float: no two ids can collide on the way through JSON
FIELDS = ("timestamp", "input_length", "output_length", "hash_ids")


def _whole(v: object, lo: int, hi: int) -> int | None:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        return None
    return v


def read_mooncake(path: str | Path, block_tokens: int) -> pd.DataFrame:
    """A Mooncake trace as a frame: `t_s` (seconds from the first request, sorted), `input_length`,
    `output_length` and `hash_ids` (a tuple of ints per row). ScenarioError (one line) for anything else."""
    p = Path(path)
    try:
        raw = read_regular_file(p, MAX_MOONCAKE_BYTES, "trace")
    except DataFileError as exc:
        raise ScenarioError(str(exc)) from None
    t_ms: list[float] = []
    inp: list[int] = []
    out: list[int] = []
    ids: list[tuple[int, ...]] = []
    total_ids = 0
    for n, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        where = f"trace {p} line {n}"
        if len(line) > MAX_LINE_BYTES:
            raise ScenarioError(f"{where}: longer than {MAX_LINE_BYTES:,} bytes")
        if len(t_ms) >= MAX_ROWS:
            raise ScenarioError(f"trace {p}: more than {MAX_ROWS:,} requests")
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise ScenarioError(f"{where}: not a JSON object ({str(exc).splitlines()[0][:120]})") from None
        if not isinstance(row, dict) or any(k not in row for k in FIELDS):
            raise ScenarioError(f"{where}: needs the fields {', '.join(FIELDS)}")
        ts = row["timestamp"]
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not 0 <= ts <= MAX_DURATION_S * 1000:
            raise ScenarioError(f"{where}: timestamp must be milliseconds in 0..{MAX_DURATION_S * 1000:.0f}")
        i, o = _whole(row["input_length"], 1, MAX_SIZE), _whole(row["output_length"], 1, MAX_SIZE)
        if i is None or o is None:
            raise ScenarioError(
                f"{where}: input_length and output_length must be whole numbers in 1..{MAX_SIZE:,}"
            )
        h = row["hash_ids"]
        blocks = math.ceil(i / block_tokens)
        if not isinstance(h, list) or len(h) != blocks:
            got = len(h) if isinstance(h, list) else type(h).__name__
            raise ScenarioError(
                f"{where}: hash_ids must list one id per {block_tokens}-token block of the prompt ({blocks} for "
                f"{i} tokens), got {got}"
            )
        if any(_whole(x, 0, MAX_HASH_ID) is None for x in h):
            bad = next(x for x in h if _whole(x, 0, MAX_HASH_ID) is None)
            raise ScenarioError(f"{where}: hash id {str(bad)[:40]!r} is not a whole number in 0..2^53")
        total_ids += len(h)
        if total_ids > MAX_IDS:
            raise ScenarioError(f"trace {p}: more than {MAX_IDS:,} hash ids")
        t_ms.append(float(ts))
        inp.append(i)
        out.append(o)
        ids.append(tuple(h))
    if len(t_ms) < 2:
        raise ScenarioError(f"trace {p}: needs at least two requests")
    t = np.asarray(t_ms) / 1000.0
    t = t - t.min()
    if float(t.max()) <= 0:
        raise ScenarioError(f"trace {p}: timestamps must span a positive time")
    df = pd.DataFrame({"t_s": t, "input_length": inp, "output_length": out, "hash_ids": ids})
    return df.sort_values("t_s", kind="stable").reset_index(drop=True)


def reused_block_share(frame: pd.DataFrame) -> float:
    """The share of all prompt blocks whose id appeared in an earlier request (what a cache of unlimited size
    could at most reuse, before the one-token rule)."""
    seen: set[int] = set()
    reused = total = 0
    for ids in frame["hash_ids"]:
        reused += sum(1 for x in ids if x in seen)
        total += len(ids)
        seen.update(ids)
    return reused / total if total else 0.0
