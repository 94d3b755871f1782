"""One router vocabulary: batch and LLM serving share names; the old batch names are read as the shared ones."""

from __future__ import annotations

import pytest

from planner.serving.routing import RouterError, router_for


def test_the_old_batch_names_are_the_shared_names() -> None:
    assert router_for("rr", "batch") == router_for("round-robin", "batch") == "round-robin"
    assert router_for("jsq", "batch") == router_for("jsq", "LLM") == "least-outstanding"


@pytest.mark.parametrize(
    ("name", "serving", "message"),
    [
        ("central", "LLM", "router 'central' does not apply to LLM serving"),
        ("least-kv", "batch", "router 'least-kv' does not apply to batch serving"),
        ("p2c", "batch", "unknown batch router 'p2c'"),
    ],
)
def test_a_router_the_serving_kind_lacks_is_named(name: str, serving: str, message: str) -> None:
    with pytest.raises(RouterError, match=message):
        router_for(name, serving)  # type: ignore[arg-type]
