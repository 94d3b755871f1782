"""Independent simulation tasks on a Ray cluster: the same tasks and functions as the local process pool.

Chosen with `FLEETWISE_EXECUTOR=ray` (`--executor ray`) or by naming a cluster in `FLEETWISE_RAY_ADDRESS`
(`ray://host:10001`); without an address Ray starts a local cluster on this machine. The task list goes into
the object store once and every worker reads its task from there (the scenario, runs and option grid are not
pickled per task). A task lost with its worker is retried by Ray (up to MAX_RETRIES); a task that still fails
stops the sizing with the option's name, so no option is ever silently missing. Ctrl-C cancels what is left.
Ray is imported only here, only when chosen: the default executor never loads it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from planner.fleet.sizing import SizingError

T = TypeVar("T")
R = TypeVar("R")
MAX_RETRIES = 2


class ExecutorError(SizingError):
    """A task the cluster could not run, even after retries; names the option."""


def _run_one(fn: Callable[[Any], Any], tasks: Sequence[Any], i: int) -> Any:
    return fn(tasks[i])


def _label(task: Any, i: int) -> str:
    option = getattr(task, "option", None)
    return str(getattr(option, "label", f"task {i}"))


def ensure_ray() -> Any:
    """Ray, connected: to FLEETWISE_RAY_ADDRESS when set, else to a local cluster started on this machine."""
    try:
        import ray
    except ImportError:
        raise ExecutorError(
            "the Ray executor needs the `ray` package: pip install 'fleetwise[ray]'"
        ) from None
    if not ray.is_initialized():
        address = os.environ.get("FLEETWISE_RAY_ADDRESS") or None
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            ignore_reinit_error=True,
        )
    return ray


def in_ray(fn: Callable[[T], R], tasks: list[T], progress: Callable[[int, int, str], None] | None) -> list[R]:
    """fn over tasks on the Ray cluster, reporting each finished task; results in task order."""
    ray = ensure_ray()
    remote = ray.remote(max_retries=MAX_RETRIES)(_run_one)
    shared = ray.put(tasks)  # once: each worker fetches the list from the object store
    refs = {remote.remote(fn, shared, i): i for i in range(len(tasks))}
    results: dict[int, R] = {}
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                i = refs[ref]
                try:
                    results[i] = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    label = _label(tasks[i], i)
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise ExecutorError(
                        f"{label}: failed on the Ray cluster after {MAX_RETRIES} retries: {first[:300]}"
                    ) from None
                if progress:
                    progress(len(results), len(tasks), _label(tasks[i], i))
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return [results[i] for i in range(len(tasks))]
