"""The price book: what a device costs per hour under each pricing model, and what electricity costs.

Every price carries its `source` and `as_of` date; nothing is priced from a default hidden in code. A run is
priced by the entry whose `match` strings occur in its device name (and whose `cpus`, when given, equals
the run's usable CPU count); an assumed profile names its entry by `device`.

Schema history: 1 - first version.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from measure.run import Run
from measure.run.types import FileModel as _Model
from measure.run.versioned import VersionedFile
from planner.traffic.scenario import MAX_SCENARIO_BYTES

HOURS_PER_MONTH = 730.0  # 8760 h / 12: the month every monthly figure uses
Pricing = Literal["on_demand", "reserved", "reserved_3y", "owned"]
PRICINGS: tuple[str, ...] = ("on_demand", "reserved", "reserved_3y", "owned")  # reserved: the 1-year term


class PriceError(ValueError):
    """A price book that cannot be read, or a device or pricing model it does not price."""


# Ranges a real price falls in: what validates must also price without over- or underflow.
MAX_USD_PER_HOUR = 10_000.0
MIN_USD_PER_HOUR = 1e-4
MAX_CAPEX_USD = 1e9


class Sourced(_Model):
    """Where a figure comes from and when it was true."""

    source: str = Field(min_length=1, max_length=1000)
    as_of: date


class HourlyPrice(Sourced):
    """A rental price per device-hour (on-demand or reserved)."""

    usd_per_hour: float = Field(ge=MIN_USD_PER_HOUR, le=MAX_USD_PER_HOUR)
    energy_included: bool = Field(description="true when the provider's price already pays for power")
    term_years: float | None = Field(default=None, gt=0, le=30, description="reserved: commitment length")


class OwnedPrice(Sourced):
    """Buying the device: capex amortized straight-line, plus hosting (rack, network, staff) per month."""

    capex_usd: float = Field(ge=1, le=MAX_CAPEX_USD)
    amortization_years: float = Field(ge=0.25, le=30)
    hosting_usd_per_month: float = Field(ge=0, le=1e7)
    energy_included: bool = Field(default=False, description="true when hosting already pays for power")

    @property
    def usd_per_hour(self) -> float:
        return (
            self.capex_usd / (self.amortization_years * 12) + self.hosting_usd_per_month
        ) / HOURS_PER_MONTH


class DevicePrice(_Model):
    """One device kind, priced per device-hour under up to four pricing models (a replica of several devices
    costs that many device-hours an hour)."""

    device: str = Field(min_length=1, max_length=128, description="key an assumed profile's `device` names")
    description: str = Field(default="", max_length=1000)
    match: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, max_length=64, description="substrings of a run's device name this entry prices"
    )
    cpus: int | None = Field(
        default=None, gt=0, le=65_536, description="CPU runs: usable CPUs of the priced machine"
    )
    on_demand: HourlyPrice | None = None
    reserved: HourlyPrice | None = None  # a 1-year commitment unless its term_years says otherwise
    reserved_3y: HourlyPrice | None = None
    owned: OwnedPrice | None = None

    @model_validator(mode="after")
    def _some_price(self) -> DevicePrice:
        if all(getattr(self, p) is None for p in PRICINGS):
            raise ValueError(
                f"device {self.device!r} has no price (on_demand, reserved, reserved_3y or owned)"
            )
        return self

    def price(self, pricing: Pricing) -> HourlyPrice | OwnedPrice:
        """The entry for one pricing model, or a PriceError naming the device and what it does have."""
        got = getattr(self, pricing)
        if got is None:
            have = [p for p in PRICINGS if getattr(self, p) is not None]
            raise PriceError(f"device {self.device!r} has no {pricing} price (has: {', '.join(have)})")
        return got


class Electricity(Sourced):
    """Energy price at the facility meter and the facility's power usage effectiveness."""

    usd_per_kwh: float = Field(ge=1e-4, le=10)
    pue: float = Field(ge=1.0, le=3.0)


class PriceBook(_Model):
    """Device prices and electricity: the only place fleetwise gets money figures from."""

    schema_version: Literal[1] = 1
    kind: Literal["price-book"]
    currency: Literal["USD"] = "USD"
    note: str = Field(default="", max_length=4000)
    electricity: Electricity
    devices: list[DevicePrice] = Field(min_length=1, max_length=1000)

    @model_validator(mode="after")
    def _unique(self) -> PriceBook:
        keys = [d.device for d in self.devices]
        if len(set(keys)) != len(keys):
            raise ValueError("two entries share a device key")
        return self

    def by_key(self, device: str) -> DevicePrice:
        """The entry an assumed profile names."""
        for d in self.devices:
            if d.device == device:
                return d
        raise PriceError(
            f"no price for device {device!r}: add it to the price book (has: "
            f"{', '.join(d.device for d in self.devices)})"
        )

    def for_hardware(self, name: str) -> DevicePrice:
        """The one entry whose match names this hardware description (an imported benchmark's), or why not."""
        hits = [d for d in self.devices if any(m.lower() in name.lower() for m in d.match)]
        if len(hits) != 1:
            raise PriceError(
                f"no price for hardware {name!r}: add an entry whose match names it"
                if not hits
                else f"hardware {name!r} matches several price entries: {', '.join(d.device for d in hits)}"
            )
        return hits[0]

    def for_run(self, run: Run) -> DevicePrice:
        """The one entry that prices a run's device, or a PriceError saying why none (or several) do."""
        name = run.stack.device_name.lower()
        hits = [
            d
            for d in self.devices
            if any(m.lower() in name for m in d.match)
            and (d.cpus is None or run.stack.device_kind != "cpu" or d.cpus == run.stack.cpu_count_usable)
        ]
        what = f"{run.stack.device_name!r}" + (
            f" with {run.stack.cpu_count_usable} CPUs" if run.stack.device_kind == "cpu" else ""
        )
        if not hits:
            raise PriceError(
                f"no price for device {what} (run {run.short_id()}): add an entry whose match names it"
            )
        if len(hits) > 1:
            raise PriceError(
                f"device {what} (run {run.short_id()}) matches several price entries: "
                f"{', '.join(d.device for d in hits)}"
            )
        return hits[0]


PRICE_BOOK_FILE: VersionedFile[PriceBook] = VersionedFile(
    PriceBook,
    what="price book",
    version=1,
    error=PriceError,
    max_bytes=MAX_SCENARIO_BYTES,
    filename=lambda _book: "prices.yaml",
    pattern="*.yaml",
    yaml=True,
    version_required=False,
    kind="price-book",
)


def parse_prices(data: Any, where: str = "price book") -> PriceBook:
    """Validate a price-book mapping with one-line, field-level errors."""
    return PRICE_BOOK_FILE.parse(data, where)


def load_prices(path: str | Path) -> PriceBook:
    """Read and validate a price-book YAML file."""
    return PRICE_BOOK_FILE.read(path)


def price_book_json_schema() -> dict[str, Any]:
    """The JSON Schema of the price-book file."""
    return PriceBook.model_json_schema()


SESSION_SOURCE = "user-supplied in the app session; not from the price book, not verified"


def with_session_prices(book: PriceBook, usd_per_hour: dict[str, float], today: date) -> PriceBook:
    """The book plus an entry per device name priced by the user for this session (rental, energy included),
    labelled as such wherever it is shown; a device the book already prices keeps the book's entry."""
    known = [m.lower() for d in book.devices for m in d.match]
    added = []
    for name, usd in sorted(usd_per_hour.items()):
        if any(m in name.lower() for m in known):  # two entries matching one device would price neither
            continue
        hourly = {"source": SESSION_SOURCE, "as_of": today, "usd_per_hour": usd, "energy_included": True}
        added.append(
            {
                "device": f"{name[:100]} (user-supplied)",
                "description": "priced in the app for this session",
                "match": [name],
                "on_demand": hourly,
                "reserved": hourly,
            }
        )
    if not added:
        return book
    data = book.model_dump(mode="json")
    return parse_prices({**data, "devices": [*data["devices"], *added]}, "price book with session prices")


def price_entry_yaml(device_name: str, usd_per_hour: float, today: date) -> str:
    """A price-book entry for a device, to paste into the price book (sources to be filled in)."""
    import yaml

    hourly = {
        "usd_per_hour": usd_per_hour,
        "energy_included": True,
        "source": "FILL IN",
        "as_of": today.isoformat(),
    }
    entry = {"device": device_name, "match": [device_name], "on_demand": hourly}
    return yaml.safe_dump([entry], sort_keys=False, allow_unicode=True)
