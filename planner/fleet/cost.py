"""Cost, efficiency and value of a sized fleet: separate metrics, never blended into one score.

Pure functions of the fleet (device-hours, mean power), the load it serves and a price-book entry.
Energy cost is added only where the price does not already include power (a cloud rental does; an owned
device usually does not): facility energy = device energy x PUE. Device energy per joule figures use the
device energy (no PUE), so they compare hardware, not buildings.
"""

from __future__ import annotations

from dataclasses import dataclass

from measure.run.types import ResultModel
from planner.fleet.prices import HOURS_PER_MONTH, Electricity, HourlyPrice, OwnedPrice, Pricing

SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0


@dataclass(frozen=True)
class Load:
    """The traffic a fleet serves over a month: mean request rate and work per request."""

    mean_rps: float
    units_per_request: float
    unit: str  # tokens, samples, images, requests...


class Cost(ResultModel):
    """Money and energy of one fleet for one month, with what each figure includes."""

    device: str
    pricing: Pricing
    usd_per_device_hour: float
    device_hours_per_month: float
    device_cost_usd_per_month: float
    mean_power_w: float | None  # device power of the whole fleet, averaged over the month
    energy_kwh_per_month: float | None  # facility energy (PUE applied)
    energy_cost_usd_per_month: float | None  # None: included in the price, or power not measured
    energy_included_in_price: bool
    monthly_cost_usd: float
    cost_complete: bool  # false: energy should be paid but power was not measured
    cost_per_1k_requests_usd: float | None
    cost_per_1m_units_usd: float | None
    cost_per_1m_tokens_usd: float | None  # only where the unit is tokens
    units_per_joule: float | None  # device energy
    requests_per_usd: float | None
    notes: list[str]


def price_fleet(
    device: str,
    pricing: Pricing,
    price: HourlyPrice | OwnedPrice,
    electricity: Electricity,
    device_hours_per_month: float,
    mean_power_w: float | None,
    load: Load,
) -> Cost:
    """Monthly cost (devices + energy x PUE where not included) and the per-request and per-unit figures."""
    hourly = price.usd_per_hour
    device_cost = hourly * device_hours_per_month
    notes: list[str] = []
    kwh = None if mean_power_w is None else mean_power_w * HOURS_PER_MONTH / 1000.0 * electricity.pue
    energy_cost: float | None = None
    complete = True
    if price.energy_included:
        notes.append(f"energy is included in the {pricing} price")
    elif kwh is None:
        complete = False
        notes.append("energy cost missing: the evidence has no power measurement, so this is a lower bound")
    else:
        energy_cost = kwh * electricity.usd_per_kwh
    monthly = device_cost + (energy_cost or 0.0)
    requests = load.mean_rps * SECONDS_PER_MONTH
    units = requests * load.units_per_request
    per_1m_units = monthly / units * 1e6 if units > 0 else None
    return Cost(
        device=device,
        pricing=pricing,
        usd_per_device_hour=hourly,
        device_hours_per_month=device_hours_per_month,
        device_cost_usd_per_month=device_cost,
        mean_power_w=mean_power_w,
        energy_kwh_per_month=kwh,
        energy_cost_usd_per_month=energy_cost,
        energy_included_in_price=price.energy_included,
        monthly_cost_usd=monthly,
        cost_complete=complete,
        cost_per_1k_requests_usd=monthly / requests * 1000.0 if requests > 0 else None,
        cost_per_1m_units_usd=per_1m_units,
        cost_per_1m_tokens_usd=per_1m_units if load.unit == "tokens" else None,
        units_per_joule=(
            load.mean_rps * load.units_per_request / mean_power_w
            if mean_power_w and load.mean_rps > 0
            else None
        ),
        requests_per_usd=requests / monthly if monthly > 0 else None,
        notes=notes,
    )
