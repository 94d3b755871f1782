"""The load generators' result formats, read as data: vllm bench serve, GuideLLM benchmarks.json (v2) and
AIPerf profile_export_aiperf.json (1.x), each recognised by content and turned into engine benchmark levels.
"""

from __future__ import annotations

from typing import Any

from measure.run.datafile import one_line
from planner.evidence.engine_benchmark import (
    MAX_REQUESTS_PER_LEVEL,
    UNKNOWN,
    BenchLevel,
    BenchmarkFileError,
    BenchRequest,
    Stat,
    Tool,
)

GUIDELLM_REPORT_VERSION = 2
AIPERF_SCHEMA_MAJOR = "1"
VLLM_REQUIRED = ("completed", "duration", "request_rate", "mean_ttft_ms")


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _int(v: Any) -> int | None:
    f = _num(v)
    return int(f) if f is not None and f >= 0 and f == int(f) else None


def _obj(d: dict[str, Any], key: str) -> dict[str, Any]:
    v = d.get(key)
    return v if isinstance(v, dict) else {}


def _list(d: dict[str, Any], key: str) -> list[Any]:
    v = d.get(key)
    return v if isinstance(v, list) else []


def _str(v: Any, default: str = UNKNOWN) -> str:
    return v[:500] if isinstance(v, str) and v.strip() else default


def detect(data: Any) -> Tool | None:
    """Which tool wrote this parsed JSON, or None."""
    if not isinstance(data, dict):
        return None
    meta = data.get("metadata")
    if isinstance(data.get("benchmarks"), list) and isinstance(meta, dict) and "guidellm_version" in meta:
        return "guidellm"
    if "aiperf_version" in data and "time_to_first_token" in data:
        return "aiperf"
    if all(k in data for k in VLLM_REQUIRED):
        return "vllm-bench-serve"
    return None


# ------------------------------------------------------------------------------------------------ vLLM


def _vllm_stat(data: dict[str, Any], metric: str, fields: dict[str, str], ours: str) -> Stat | None:
    keys = {
        "mean": f"mean_{metric}_ms",
        "p50": f"median_{metric}_ms",
        "p90": f"p90_{metric}_ms",
        "p95": f"p95_{metric}_ms",
        "p99": f"p99_{metric}_ms",
    }
    got = {k: _num(data.get(v)) for k, v in keys.items()}
    if got["p50"] is None and _num(data.get(f"p50_{metric}_ms")) is not None:
        got["p50"], keys["p50"] = _num(data.get(f"p50_{metric}_ms")), f"p50_{metric}_ms"
    if all(v is None for v in got.values()):
        return None
    for k, v in keys.items():
        if got[k] is not None:
            fields[f"{ours}.{k}"] = v
    return Stat(**got)


def _vllm_requests(data: dict[str, Any]) -> list[BenchRequest]:
    ins, outs, ttfts, itls = (data.get(k) for k in ("input_lens", "output_lens", "ttfts", "itls"))
    if not all(isinstance(x, list) for x in (ins, outs, ttfts, itls)):
        return []
    assert (
        isinstance(ins, list)
        and isinstance(outs, list)
        and isinstance(ttfts, list)
        and isinstance(itls, list)
    )
    n = len(ttfts)
    if not (len(ins) == len(outs) == len(itls) == n) or n > MAX_REQUESTS_PER_LEVEL:
        raise BenchmarkFileError(
            f"vllm result: per-request arrays differ in length or exceed {MAX_REQUESTS_PER_LEVEL:,} requests"
        )
    errors = data.get("errors") if isinstance(data.get("errors"), list) else [""] * n
    starts = data.get("start_times") if isinstance(data.get("start_times"), list) else None
    first = _num(starts[0]) if starts else None
    out = []
    for i in range(n):
        ttft = _num(ttfts[i])
        gaps = itls[i] if isinstance(itls[i], list) else []
        e2e = ttft + sum(g for g in map(_num, gaps) if g is not None) if ttft is not None else None
        ok = (
            not (isinstance(errors, list) and i < len(errors) and errors[i]) and ttft is not None and ttft > 0
        )
        start = _num(starts[i]) if starts and i < len(starts) else None
        out.append(
            BenchRequest(
                start_s=start - first if start is not None and first is not None else None,
                prompt_tokens=_int(ins[i]),
                output_tokens=_int(outs[i]),
                ttft_ms=ttft * 1000.0 if ttft is not None and ttft >= 0 else None,
                e2e_ms=e2e * 1000.0 if e2e is not None and e2e >= 0 else None,
                ok=ok,
            )
        )
    return out


def _vllm(data: dict[str, Any]) -> tuple[str, str, str, str, list[BenchLevel], list[str]]:
    fields: dict[str, str] = {}
    rate_v = data.get("request_rate")
    rate = None if rate_v == "inf" else _num(rate_v)
    if rate_v != "inf" and rate is None:
        raise BenchmarkFileError(
            f"vllm result: request_rate {one_line(str(rate_v), 40)!r} is neither a number nor 'inf'"
        )
    conc = _int(data.get("max_concurrency"))
    burst = _num(data.get("burstiness"))
    traffic = "rate" if rate is not None else "concurrency" if conc else "throughput"
    arrivals = "unknown" if rate is None else "poisson" if burst in (None, 1.0) else "gamma"
    notes = []
    if rate is not None and conc:
        notes.append(f"rate {rate:g} req/s capped at {conc} concurrent requests (max_concurrency)")
    completed = _int(data.get("completed"))
    if completed is None:
        raise BenchmarkFileError("vllm result: completed is not a count")
    stats = {
        ours: _vllm_stat(data, m, fields, ours)
        for ours, m in (("ttft", "ttft"), ("tpot", "tpot"), ("itl", "itl"), ("e2e", "e2el"))
    }
    requests = _vllm_requests(data)
    if not requests:
        notes.append("no per-request data (saved without --save-detailed)")
    level = BenchLevel(
        label=f"rate {rate_v}" + (f", max_concurrency {conc}" if conc else ""),
        traffic=traffic,
        arrivals=arrivals,
        rate_rps=rate,
        concurrency=conc,
        duration_s=_num(data.get("duration")),
        completed=completed,
        failed=_int(data.get("failed")),
        request_rps=_num(data.get("request_throughput")),
        output_tokens_per_s=_num(data.get("output_throughput")),
        prompt_tokens=_mean_tokens(data, "total_input_tokens", completed, fields, "prompt_tokens"),
        output_tokens=_mean_tokens(data, "total_output_tokens", completed, fields, "output_tokens"),
        requests=requests,
        fields=fields,
        **stats,
    )
    model = _str(data.get("model_id"))
    engine = _str(data.get("backend") or data.get("endpoint_type"))
    return (
        "unknown (vllm bench serve results carry no version)",
        "vllm bench serve --save-result JSON",
        model,
        engine,
        [level],
        notes,
    )


def _mean_tokens(data: dict[str, Any], key: str, n: int, fields: dict[str, str], ours: str) -> Stat | None:
    total = _num(data.get(key))
    if total is None or n <= 0:
        return None
    fields[f"{ours}.mean"] = f"{key} / completed"
    return Stat(mean=total / n, count=n)


# ------------------------------------------------------------------------------------------------ GuideLLM


def _gl_stat(
    metrics: dict[str, Any], key: str, ours: str, fields: dict[str, str], scale: float = 1.0
) -> Stat | None:
    node = metrics.get(key)
    ok = node.get("successful") if isinstance(node, dict) else None
    if not isinstance(ok, dict):
        return None
    pct = _obj(ok, "percentiles")
    vals = {"mean": _num(ok.get("mean"))} | {q: _num(pct.get(q)) for q in ("p50", "p90", "p95", "p99")}
    for k, v in vals.items():
        if v is not None:
            fields[f"{ours}.{k}"] = f"metrics.{key}.successful." + (
                "mean" if k == "mean" else f"percentiles.{k}"
            )
    return Stat(**{k: None if v is None else v * scale for k, v in vals.items()}, count=_int(ok.get("count")))


def _gl_requests(reqs: Any) -> list[BenchRequest]:
    if not isinstance(reqs, dict):
        return []
    rows: list[tuple[bool, dict[str, Any]]] = []
    for key, ok in (("successful", True), ("errored", False), ("incomplete", False)):
        part = reqs.get(key)
        if isinstance(part, list):
            rows += [(ok, r) for r in part if isinstance(r, dict)]
    if len(rows) > MAX_REQUESTS_PER_LEVEL:
        raise BenchmarkFileError(
            f"GuideLLM report: a benchmark holds over {MAX_REQUESTS_PER_LEVEL:,} requests"
        )
    out = []
    starts = []
    for ok, r in rows:
        info = _obj(r, "info")
        t = _obj(info, "timings")
        start, first, last = (
            _num(t.get("request_start")),
            _num(t.get("first_token_iteration")),
            _num(t.get("last_token_iteration")),
        )
        # the actual send, as GuideLLM times TTFT and latency from it (its schedule is targeted_start)
        starts.append(start if start is not None else _num(t.get("targeted_start")))
        inm = _obj(r, "input_metrics")
        outm = _obj(r, "output_metrics")
        out.append(
            BenchRequest(
                start_s=None,
                prompt_tokens=_int(inm.get("text_tokens")),
                output_tokens=_int(outm.get("text_tokens")),
                ttft_ms=(first - start) * 1000.0
                if start is not None and first is not None and first >= start
                else None,
                e2e_ms=(last - start) * 1000.0
                if start is not None and last is not None and last >= start
                else None,
                ok=ok,
            )
        )
    known = [s for s in starts if s is not None]
    if known:
        t0 = min(known)
        out = [
            r.model_copy(update={"start_s": s - t0 if s is not None else None})
            for r, s in zip(out, starts, strict=True)
        ]
    return sorted(out, key=lambda r: (r.start_s is None, r.start_s or 0.0))


def _guidellm(data: dict[str, Any]) -> tuple[str, str, str, str, list[BenchLevel], list[str]]:
    meta = data["metadata"]
    version = meta.get("version")
    if version != GUIDELLM_REPORT_VERSION:
        raise BenchmarkFileError(
            f"GuideLLM report metadata version {one_line(str(version), 20)}: fleetwise reads version "
            f"{GUIDELLM_REPORT_VERSION} (GuideLLM 0.4 and later); re-export with a GuideLLM that writes it"
        )
    levels = []
    model = engine = UNKNOWN
    for i, b in enumerate(data["benchmarks"]):
        if not isinstance(b, dict):
            raise BenchmarkFileError(f"GuideLLM report: benchmarks[{i}] is not an object")
        cfg = _obj(b, "config")
        strat = _obj(cfg, "strategy")
        kind = _str(strat.get("type_"))
        backend = _obj(cfg, "backend")
        model = _str(backend.get("model"), model)
        engine = f"{_str(backend.get('kind'))} at {_str(backend.get('target'))}"
        metrics = _obj(b, "metrics")
        fields: dict[str, str] = {}
        rate = _num(strat.get("rate"))
        streams = _int(strat.get("streams"))
        traffic, arrivals = {
            "constant": ("rate", "constant"),
            "poisson": ("rate", "poisson"),
            "concurrent": ("concurrency", "unknown"),
            "synchronous": ("synchronous", "unknown"),
            "throughput": ("throughput", "unknown"),
        }.get(kind, ("unknown", "unknown"))
        totals = _obj(metrics, "request_totals")
        levels.append(
            BenchLevel(
                label=f"{kind}" + (f"@{rate:g}" if rate else "") + (f" x{streams}" if streams else ""),
                traffic=traffic,
                arrivals=arrivals,
                rate_rps=rate if traffic == "rate" else None,
                concurrency=streams if traffic == "concurrency" else 1 if traffic == "synchronous" else None,
                duration_s=_num(b.get("duration")),
                completed=_int(totals.get("successful")) or 0,
                failed=(_int(totals.get("errored")) or 0) + (_int(totals.get("incomplete")) or 0),
                request_rps=_num(_obj(_obj(metrics, "requests_per_second"), "successful").get("mean")),
                output_tokens_per_s=_num(
                    _obj(_obj(metrics, "output_tokens_per_second"), "successful").get("mean")
                ),
                prompt_tokens=_gl_stat(metrics, "prompt_token_count", "prompt_tokens", fields),
                output_tokens=_gl_stat(metrics, "output_token_count", "output_tokens", fields),
                ttft=_gl_stat(metrics, "time_to_first_token_ms", "ttft", fields),
                tpot=_gl_stat(metrics, "time_per_output_token_ms", "tpot", fields),
                itl=_gl_stat(metrics, "inter_token_latency_ms", "itl", fields),
                e2e=_gl_stat(metrics, "request_latency", "e2e", fields, scale=1000.0),  # GuideLLM: seconds
                requests=_gl_requests(b.get("requests")),
                fields=fields,
            )
        )
    notes = [
        "GuideLLM times TTFT and request latency from each request's actual send (info.timings.request_start), "
        "not its scheduled time; time_per_output_token_ms as GuideLLM defines it"
    ]
    return (
        _str(meta.get("guidellm_version")),
        f"GuideLLM report (metadata version {version})",
        model,
        engine,
        levels,
        notes,
    )


# ------------------------------------------------------------------------------------------------ AIPerf


def _ap_stat(data: dict[str, Any], key: str, ours: str, fields: dict[str, str]) -> Stat | None:
    node = data.get(key)
    if not isinstance(node, dict):
        return None
    vals = {"mean": _num(node.get("avg"))} | {q: _num(node.get(q)) for q in ("p50", "p90", "p95", "p99")}
    for k, v in vals.items():
        if v is not None:
            fields[f"{ours}.{k}"] = f"{key}." + ("avg" if k == "mean" else k)
    return Stat(**vals, count=_int(node.get("count")))


def _aiperf(data: dict[str, Any]) -> tuple[str, str, str, str, list[BenchLevel], list[str]]:
    sv = str(data.get("schema_version", ""))
    if sv.split(".")[0] != AIPERF_SCHEMA_MAJOR:
        raise BenchmarkFileError(
            f"AIPerf export schema_version {one_line(sv, 20)!r}: fleetwise reads {AIPERF_SCHEMA_MAJOR}.x"
        )
    cfg = _obj(data, "input_config")
    phases = [p for p in _list(cfg, "phases") if isinstance(p, dict) and p.get("kind") == "profiling"]
    phase = phases[0] if phases else {}
    rate, conc = _num(phase.get("rate")), _int(phase.get("concurrency"))
    ptype = _str(phase.get("type"))
    traffic = "rate" if rate else "concurrency" if conc else "unknown"
    arrivals = ptype if ptype in ("poisson", "constant", "gamma") else "unknown"
    fields: dict[str, str] = {}

    def avg(key: str) -> float | None:
        node = data.get(key)
        return _num(node.get("avg")) if isinstance(node, dict) else None

    completed = _int(avg("completed_request_count")) or _int(avg("request_count")) or 0
    level = BenchLevel(
        label=f"{ptype}" + (f"@{rate:g}" if rate else "") + (f" x{conc}" if conc else ""),
        traffic=traffic,
        arrivals=arrivals,
        rate_rps=rate,
        concurrency=conc,
        duration_s=avg("benchmark_duration"),
        completed=completed,
        failed=None,
        request_rps=avg("request_throughput"),
        output_tokens_per_s=avg("output_token_throughput"),
        prompt_tokens=_ap_stat(data, "input_sequence_length", "prompt_tokens", fields),
        output_tokens=_ap_stat(data, "output_sequence_length", "output_tokens", fields),
        ttft=_ap_stat(data, "time_to_first_token", "ttft", fields),
        tpot=_ap_stat(data, "inter_token_latency", "tpot", fields),
        itl=_ap_stat(data, "inter_chunk_latency", "itl", fields),
        e2e=_ap_stat(data, "request_latency", "e2e", fields),
        fields=fields,
    )
    models = _list(_obj(cfg, "models"), "items")
    model = _str(models[0].get("name")) if models and isinstance(models[0], dict) else UNKNOWN
    ep = _obj(cfg, "endpoint")
    urls = ep.get("urls") if isinstance(ep.get("urls"), list) else []
    engine = f"{_str(ep.get('type'))} endpoint at {_str(urls[0]) if urls else UNKNOWN}"
    notes = [
        "AIPerf's inter_token_latency is per request (latency - TTFT) / (output tokens - 1): fleetwise's TPOT; "
        "its inter_chunk_latency (gaps between stream chunks) is taken as ITL",
        "per-request records are in AIPerf's profile_export.jsonl, not in this file",
    ]
    return (
        _str(data.get("aiperf_version")),
        f"AIPerf profile export (schema {sv})",
        model,
        engine,
        [level],
        notes,
    )


# ------------------------------------------------------------------------------------------------ entry


def _records(tool: Tool, data: dict[str, Any]) -> tuple[int, int]:
    """Levels and per-request records a tool's file holds, counted before any is converted: a small file of
    empty records must not become gigabytes of objects, nor an evidence file its own loader refuses."""
    if tool == "guidellm":
        benches = data["benchmarks"]
        reqs = [_obj(b, "requests") if isinstance(b, dict) else {} for b in benches]
        parts = ("successful", "errored", "incomplete")
        return len(benches), sum(len(_list(r, k)) for r in reqs for k in parts)
    if tool == "vllm-bench-serve":
        return 1, len(_list(data, "ttfts"))
    return 1, 0  # AIPerf's summary holds no per-request records
