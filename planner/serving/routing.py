"""One router vocabulary for batch and LLM serving: the names, what each means, and which serving has it.

`rr` and `jsq`, the batch simulator's earlier names, are read as `round-robin` and `least-outstanding`.
"""

from __future__ import annotations

from typing import Literal

ROUTER_MEANING = {
    "central": "one FCFS queue that every free replica pulls from (batch serving)",
    "random": "each request to a replica drawn uniformly at random",
    "round-robin": "requests to the replicas in turn",
    "least-outstanding": "each request to the replica with the fewest outstanding requests, queued plus in "
    "service (lowest index on ties)",
    "least-kv": "each request to the replica with the least KV cache in use (LLM serving)",
    "prefix-aware": "each request to the replica whose prefix cache holds the longest leading part of its prompt, "
    "among those within PREFIX_LOAD_GUARD outstanding requests of the least loaded (fewest outstanding, then "
    "lowest index, on ties); LLM serving with prefix caching",
}
PREFIX_LOAD_GUARD = (
    4  # a replica this many outstanding requests above the least loaded one is not a candidate
)
ALIASES = {"rr": "round-robin", "jsq": "least-outstanding"}
BATCH_ROUTERS: tuple[str, ...] = ("central", "random", "round-robin", "least-outstanding")
LLM_ROUTERS: tuple[str, ...] = ("round-robin", "least-outstanding", "least-kv", "prefix-aware")


class RouterError(ValueError):
    """A router name that is unknown, or that the serving kind does not have."""


def router_for(name: str, serving: Literal["batch", "LLM"]) -> str:
    """The canonical name of a router for batch or LLM serving, or one line saying why not."""
    canonical = ALIASES.get(name, name)
    allowed = BATCH_ROUTERS if serving == "batch" else LLM_ROUTERS
    if canonical in allowed:
        return canonical
    if canonical in ROUTER_MEANING:
        raise RouterError(f"router {name!r} does not apply to {serving} serving: use {', '.join(allowed)}")
    raise RouterError(f"unknown {serving} router {name!r}: use {', '.join(allowed)}")
