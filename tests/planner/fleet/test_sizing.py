"""Fleet sizing against hand-checked answers: Erlang C, a cost-vs-energy ranking split, a diurnal day."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from planner.fleet.cost import Load, price_fleet
from planner.fleet.options import SizingError, build_options
from planner.fleet.plan import Question, make_plan
from planner.fleet.prices import Electricity, HourlyPrice, OwnedPrice, PriceError, parse_prices
from planner.fleet.redundancy import Redundancy
from planner.fleet.sizing import size_all
from planner.traffic.scenario import parse_scenario
from tests.planner.serving.test_sim_theory import erlang_c

TODAY = "2026-11-28"


def profile(
    tmp_path: Path, name: str, latency: dict[str, Any], power: dict[str, Any] | None = None, **kw: Any
) -> str:
    data: dict[str, Any] = {
        "kind": "assumed-profile",
        "name": name,
        "device": name,
        "points": [{"batch": b, "latency": latency} for b in kw.pop("batches", (1,))],
        **kw,
    }
    if power:
        data["power_w"] = power
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def book(**hourly: float) -> Any:
    src = {"source": "test figure", "as_of": TODAY}
    return parse_prices(
        {
            "kind": "price-book",
            "electricity": {"usd_per_kwh": 0.1, "pue": 1.5, **src},
            "devices": [
                {"device": d, "on_demand": {"usd_per_hour": p, "energy_included": True, **src}}
                for d, p in hourly.items()
            ],
        }
    )


def test_mmc_minimum_servers_follow_erlang_c_and_the_count_below_fails(tmp_path: Path) -> None:
    lam, mu, t_s, q = 40.0, 10.0, 0.1, 0.90  # exponential service, mean 100 ms; SLO: p90 wait <= 100 ms

    def p_wait_over(c: int) -> float:
        return erlang_c(c, lam / mu) * math.exp(-(c * mu - lam) * t_s) if c * mu > lam else 1.0

    expected = next(c for c in range(1, 50) if p_wait_over(c) <= 1 - q)
    assert p_wait_over(expected) < 0.05 and p_wait_over(expected - 1) > 0.15  # not a coin flip
    sc = parse_scenario(
        {
            "name": "mmc",
            "arrivals": {"process": "poisson", "rate_rps": lam},
            "requests": 60_000,
            "slo": [{"metric": "queue", "percentile": 90, "threshold_ms": 100}],
            "seed": 4,
        }
    )
    path = profile(tmp_path, "expo", {"dist": "exponential", "mean_ms": 100})
    opts, _ = build_options([], [path], None, [1], [0.0], "central")
    (res,) = size_all(sc, opts, sizing_requests=60_000)
    peak = res.levels[0]
    assert peak.replicas == expected
    assert peak.below is not None and peak.below.replicas == expected - 1 and peak.below.stable
    assert peak.below.failed_slo == "p90 queue <= 100 ms" and (peak.below.by_ms or 0) > 0
    assert all(c["met"] for c in peak.slo)


def test_cost_ranking_and_tokens_per_joule_ranking_disagree(tmp_path: Path) -> None:
    det = {"dist": "deterministic", "ms": 10}
    cheap = profile(tmp_path, "cheap-hot", det, {"idle": 100, "busy": {1: 400}})
    dear = profile(tmp_path, "dear-cool", det, {"idle": 10, "busy": {1: 50}})
    sc = parse_scenario(
        {
            "name": "t",
            "arrivals": {"process": "poisson", "rate_rps": 150},
            "requests": 20_000,
            "slo": [{"percentile": 99, "threshold_ms": 100}],
        }
    )
    prices = book(**{"cheap-hot": 1.0, "dear-cool": 3.0})
    q = Question(scenario=sc, runs=(), profiles=(cheap, dear), max_batches=(1,), max_delays_ms=(0.0,))
    by_cost = make_plan(q, prices)
    by_energy = make_plan(Question(**{**q.__dict__, "rank_by": "tokens_per_joule"}), prices)
    first = {p.rank_by: next(o for o in p.options if o.rank == 1) for p in (by_cost, by_energy)}
    assert first["monthly_cost"].device == "cheap-hot" and first["tokens_per_joule"].device == "dear-cool"
    for o in by_cost.options:  # same service, same count: the money is the hourly price x 730 h x replicas
        assert o.replicas == 2
        assert o.monthly_cost_usd == pytest.approx({"cheap-hot": 1.0, "dear-cool": 3.0}[o.device] * 730 * 2)
        assert o.units_per_joule is not None and o.cost_per_1k_requests_usd is not None
    assert len(by_cost.groups) == 1 and by_cost.not_comparable is None


def test_diurnal_hours_are_sized_one_by_one_with_known_counts(tmp_path: Path) -> None:
    mult = [0.0] * 6 + [0.1] * 6 + [1.0] * 6 + [0.5] * 6  # 0, 25, 250, 125 req/s at peak 250
    sc = parse_scenario(
        {
            "name": "day",
            "arrivals": {"process": "diurnal", "peak_rate_rps": 250, "hourly_multipliers": mult},
            "duration_s": 86_400,
            "slo": [{"percentile": 99, "threshold_ms": 200}],
        }
    )
    path = profile(tmp_path, "det", {"dist": "deterministic", "ms": 10})  # 100 req/s per replica
    q = Question(scenario=sc, runs=(), profiles=(path,), max_batches=(1,), max_delays_ms=(0.0,))
    plan = make_plan(q, book(det=2.0))
    (o,) = plan.options
    assert [h.replicas for h in o.hourly] == [0] * 6 + [1] * 6 + [3] * 6 + [2] * 6
    assert o.replicas == 3 and o.device_hours_per_day_autoscaled == 36
    assert o.cost is not None and o.cost_autoscaled is not None
    assert o.cost.monthly_cost_usd == pytest.approx(3 * 730 * 2.0)
    assert o.cost_autoscaled.monthly_cost_usd == pytest.approx(36 * 730 / 24 * 2.0)
    spared = make_plan(Question(**{**q.__dict__, "redundancy": Redundancy(spares=1)}), book(det=2.0)).options[
        0
    ]
    assert spared.replicas == 3 and spared.replicas_deployed == 4
    assert [h.replicas_deployed for h in spared.hourly][::6] == [0, 2, 4, 3]  # no spare where no traffic


def test_an_slo_faster_than_the_service_time_is_an_answer_not_a_crash(tmp_path: Path) -> None:
    sc = parse_scenario(
        {
            "name": "t",
            "arrivals": {"process": "poisson", "rate_rps": 50},
            "requests": 5_000,
            "slo": [{"percentile": 50, "threshold_ms": 5}],
        }
    )
    path = profile(tmp_path, "slow", {"dist": "deterministic", "ms": 20})
    plan = make_plan(Question(scenario=sc, runs=(), profiles=(path,), max_batches=(1,)), book(slow=1.0))
    (o,) = plan.options
    assert not o.meets_slo and o.replicas is None and o.monthly_cost_usd is None
    assert o.reason is not None and "do not help" in o.reason
    assert "no option meets every SLO" in plan.answer


def test_a_scenario_without_slo_is_refused(tmp_path: Path) -> None:
    path = profile(tmp_path, "p", {"dist": "deterministic", "ms": 2})
    sc = parse_scenario({"name": "t", "arrivals": {"process": "poisson", "rate_rps": 5}, "requests": 100})
    with pytest.raises(SizingError, match="no SLO"):
        make_plan(Question(scenario=sc, runs=(), profiles=(path,)), book(p=1.0))


def test_a_device_without_a_price_is_sized_and_shown_not_priced_beside_the_priced_answer(
    tmp_path: Path,
) -> None:
    known = profile(tmp_path, "known", {"dist": "deterministic", "ms": 4})
    new = profile(tmp_path, "new", {"dist": "deterministic", "ms": 2})
    sc = parse_scenario(
        {
            "name": "t",
            "arrivals": {"process": "poisson", "rate_rps": 5},
            "requests": 2000,
            "slo": [{"percentile": 99, "threshold_ms": 50}],
        }
    )
    q = Question(scenario=sc, runs=(), profiles=(known, new), max_batches=(1,), max_delays_ms=(0.0,))
    plan = make_plan(q, book(known=1.0))
    by_device = {o.device: o for o in plan.options}
    unpriced, priced = by_device["new"], by_device["known"]
    assert unpriced.meets_slo and unpriced.replicas is not None and unpriced.latency_ms is not None
    assert unpriced.monthly_cost_usd is None and unpriced.rank is None and unpriced.price_entry is None
    assert unpriced.not_priced is not None and "no price for device 'new'" in unpriced.not_priced
    assert priced.rank == 1 and priced.monthly_cost_usd is not None
    only_new = make_plan(Question(**{**q.__dict__, "profiles": (new,)}), book(known=1.0))
    assert "no priced option meets every SLO" in only_new.answer and "not priced" in only_new.answer


def test_price_book_rejects_missing_sources_and_duplicate_devices() -> None:
    good = {"usd_per_hour": 1, "energy_included": True, "source": "s", "as_of": TODAY}
    base = {
        "kind": "price-book",
        "electricity": {"usd_per_kwh": 0.1, "pue": 1.2, "source": "s", "as_of": TODAY},
    }
    with pytest.raises(PriceError, match="source"):
        parse_prices(
            {
                **base,
                "devices": [{"device": "a", "on_demand": {k: v for k, v in good.items() if k != "source"}}],
            }
        )
    with pytest.raises(PriceError, match="share a device key"):
        parse_prices(
            {**base, "devices": [{"device": "a", "on_demand": good}, {"device": "a", "on_demand": good}]}
        )
    with pytest.raises(PriceError, match="has no price"):
        parse_prices({**base, "devices": [{"device": "a"}]})
    b = parse_prices({**base, "devices": [{"device": "a", "on_demand": good}]})
    with pytest.raises(PriceError, match="no reserved price"):
        b.by_key("a").price("reserved")


def test_energy_is_paid_only_where_the_price_does_not_include_it() -> None:
    el = Electricity(usd_per_kwh=0.1, pue=1.5, source="s", as_of=date(2026, 1, 1))
    owned = OwnedPrice(
        capex_usd=12_000, amortization_years=1, hosting_usd_per_month=270, source="s", as_of=date(2026, 1, 1)
    )
    load = Load(mean_rps=10.0, units_per_request=100.0, unit="tokens")
    c = price_fleet("d", "owned", owned, el, 730.0, 1000.0, load)
    assert c.device_cost_usd_per_month == pytest.approx(1000 + 270)  # capex / 12 months + hosting
    assert c.energy_cost_usd_per_month == pytest.approx(730 * 1.5 * 0.1)  # 1 kW, a month, PUE, $/kWh
    assert c.units_per_joule == pytest.approx(10 * 100 / 1000.0)
    assert c.cost_per_1m_tokens_usd == pytest.approx(c.monthly_cost_usd / (10 * 100 * 730 * 3600) * 1e6)
    rented = HourlyPrice(usd_per_hour=2.0, energy_included=True, source="s", as_of=date(2026, 1, 1))
    r = price_fleet("d", "on_demand", rented, el, 730.0, None, Load(10.0, 1.0, "images"))
    assert r.energy_cost_usd_per_month is None and r.cost_complete and r.cost_per_1m_tokens_usd is None
    unknown = price_fleet("d", "owned", owned, el, 730.0, None, load)
    assert not unknown.cost_complete and unknown.monthly_cost_usd == pytest.approx(1270)


def test_a_service_time_scale_is_applied_and_stated(tmp_path: Path) -> None:
    sc = parse_scenario(
        {
            "name": "t",
            "arrivals": {"process": "poisson", "rate_rps": 150},
            "requests": 5_000,
            "slo": [{"percentile": 99, "threshold_ms": 100}],
        }
    )
    path = profile(tmp_path, "det", {"dist": "deterministic", "ms": 10})  # 100 req/s per replica
    q = Question(scenario=sc, runs=(), profiles=(path,), max_batches=(1,), max_delays_ms=(0.0,))
    base = make_plan(q, book(det=1.0)).options[0]
    slower = make_plan(Question(**{**q.__dict__, "service_scale": 1.5}), book(det=1.0))
    assert base.replicas == 2 and slower.options[0].replicas == 3  # 150 req/s at 66.7 req/s per replica
    assert slower.service_scale == 1.5 and any("x1.5" in w for w in slower.options[0].warnings)


def test_a_token_workload_on_a_scenario_without_sequence_lengths_is_left_out_with_the_reason() -> None:
    from planner.fleet.options import build_options
    from planner.traffic.scenario import load_scenario

    root = Path(__file__).resolve().parents[3]
    steady = load_scenario(root / "scenarios" / "steady-api.yaml")
    assert steady.size.seq_len is None
    profiles = [
        root / "profiles" / "example-accelerator.yaml",
        root / "profiles" / "example-encoder-accelerator.yaml",
    ]
    options, skipped = build_options([], profiles, None, None, None, "central", scenario=steady)
    assert {o.evidence.profile.name for o in options if o.evidence.profile} == {"example-accelerator"}
    assert any("gives no sequence lengths" in s for s in skipped), skipped


def test_session_prices_price_only_the_named_device_and_say_where_they_come_from() -> None:
    import datetime as dt

    import yaml

    from planner.fleet.prices import SESSION_SOURCE, price_entry_yaml, with_session_prices
    from tests.conftest import make_run

    base = book(known=1.0)
    today = dt.date(2026, 11, 29)
    priced = with_session_prices(base, {"Ampere Altra Q80-30": 2.5}, today)
    entry = priced.for_run(make_run(device_name="Ampere Altra Q80-30"))
    assert (
        entry.device == "Ampere Altra Q80-30 (user-supplied)" and entry.price("on_demand").usd_per_hour == 2.5
    )
    assert entry.price("on_demand").source == SESSION_SOURCE
    with pytest.raises(PriceError, match="no price for device"):
        priced.for_run(make_run(device_name="Some Other CPU"))
    assert with_session_prices(base, {}, today) is base
    xeon = book(known=1.0).model_copy(
        update={"devices": [book(known=1.0).devices[0].model_copy(update={"match": ["Xeon"]})]}
    )
    kept = with_session_prices(xeon, {"Intel Xeon Gold": 9.0}, today)
    assert kept.for_run(make_run(device_name="Intel Xeon Gold")).device == "known"  # the book's entry stays
    (snippet,) = yaml.safe_load(price_entry_yaml("Ampere Altra Q80-30", 2.5, today))
    filled = {**snippet, "on_demand": {**snippet["on_demand"], "source": "my quote"}}
    book_data = base.model_dump(mode="json")
    added = parse_prices({**book_data, "devices": [*book_data["devices"], filled]})
    assert added.for_run(make_run(device_name="Ampere Altra Q80-30")).device == "Ampere Altra Q80-30"
