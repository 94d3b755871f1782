"""The engine's own counters: its Prometheus /metrics read before and after a setting, as evidence beside the
client's timings (how many steps the engine ran, how many tokens a step carried, preemptions, prefix-cache
hits, what was running and waiting as the setting ended).

The text is fetched bounded (size and a whole-request deadline) and parsed by prometheus_client's parser; only
the vLLM series named below are read, summed over their labels (one engine, one model). An engine without
/metrics (transformers serve) gives no counters, and the run says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from measure.engine_client.http import Endpoint, EndpointError
from measure.run import EngineCounters
from measure.run.datafile import one_line

MAX_METRICS_BYTES = 4 << 20  # vLLM's page is ~50 KB; a page this size is not an engine's
METRICS_TIMEOUT_S = 5.0
COUNTERS = {  # our name -> vLLM's sample name (counters: _total)
    "prompt_tokens": "vllm:prompt_tokens_total",
    "generation_tokens": "vllm:generation_tokens_total",
    "preemptions": "vllm:num_preemptions_total",
    "prefix_cache_queries": "vllm:prefix_cache_queries_total",
    "prefix_cache_hits": "vllm:prefix_cache_hits_total",
    "steps": "vllm:iteration_tokens_total_count",
    "step_tokens": "vllm:iteration_tokens_total_sum",
}
GAUGES = {
    "running_at_end": "vllm:num_requests_running",
    "waiting_at_end": "vllm:num_requests_waiting",
    "kv_cache_usage_at_end": "vllm:kv_cache_usage_perc",
}
BUCKETS = "vllm:iteration_tokens_total_bucket"


@dataclass
class Scrape:
    """One reading of /metrics: each series summed over its labels, and the step-tokens buckets by `le`."""

    values: dict[str, float] = field(default_factory=dict)
    buckets: dict[str, float] = field(default_factory=dict)


def parse_metrics(text: str) -> Scrape:
    """The series fleetwise reads, from Prometheus text (anything else on the page is ignored)."""
    wanted = set(COUNTERS.values()) | set(GAUGES.values())
    out = Scrape()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if not math.isfinite(s.value):
                continue
            if s.name in wanted:
                out.values[s.name] = out.values.get(s.name, 0.0) + s.value
            elif s.name == BUCKETS and "le" in s.labels:
                le = s.labels["le"]
                out.buckets[le] = out.buckets.get(le, 0.0) + s.value
    return out


def scrape(ep: Endpoint) -> Scrape | str:
    """The engine's /metrics now, or why there is none (one line)."""
    try:
        body = ep.get_bytes("/metrics", METRICS_TIMEOUT_S, MAX_METRICS_BYTES)
    except EndpointError as exc:
        return str(exc)
    try:
        got = parse_metrics(body.decode("utf-8", errors="replace"))
    except ValueError as exc:  # the parser's refusal of malformed text
        return f"GET /metrics: not Prometheus text ({one_line(str(exc), 120)})"
    if not got.values:
        return "GET /metrics: none of the vLLM series fleetwise reads"
    return got


def counters_between(
    before: Scrape | str, after: Scrape | str, requests_sent: int, seconds: float | None = None
) -> EngineCounters | None:
    """The counters' increase between two readings `seconds` apart and the gauges at the second; None when
    either scrape failed."""
    if isinstance(before, str) or isinstance(after, str):
        return None
    notes: list[str] = []

    def delta(name: str) -> float | None:
        if name not in after.values:
            return None
        d = after.values[name] - before.values.get(name, 0.0)
        if d < 0:  # a restarted engine resets its counters: the difference is not this setting's
            notes.append(f"{name} went down ({d:g}): the engine restarted during the setting")
            return None
        return d

    hist = {
        le: after.buckets[le] - before.buckets.get(le, 0.0)
        for le in list(after.buckets)[:256]
        if after.buckets[le] >= before.buckets.get(le, 0.0)
    }
    return EngineCounters(
        source="vllm /metrics",
        seconds=seconds,
        requests_sent=requests_sent,
        **{k: delta(v) for k, v in COUNTERS.items()},
        step_tokens_histogram=hist,
        running_at_end=after.values.get(GAUGES["running_at_end"]),
        waiting_at_end=after.values.get(GAUGES["waiting_at_end"]),
        kv_cache_usage_at_end=after.values.get(GAUGES["kv_cache_usage_at_end"]),
        notes=notes,
    )
