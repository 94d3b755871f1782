"""Where the planner's independent tasks run, and the runs they read: below every wing, used by all of them.

A task is one option to size (or one ladder of the SLO explorer); `in_workers` runs a function over a list of
them inline, in a local process pool, or on a Ray cluster. The executor is an argument: the entry point (the
CLI's `--executor`, the app's server environment) chooses it once, nothing deeper reads the environment.

On Ray, the cluster is the one named in `FLEETWISE_RAY_ADDRESS` (`ray://host:10001`), else Ray starts a local
cluster on this machine. The task list goes into the object store once and every worker reads its task from
there (the scenario, runs and option grid are not pickled per task). A task lost with its worker is retried by
Ray (up to MAX_RETRIES); a task that still fails stops the sizing with the option's name, so no option is ever
silently missing. Ctrl-C cancels what is left. Ray is imported only when chosen: the default never loads it.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, get_args

from measure.run import Run, load_run

Executor = Literal["local", "ray"]
EXECUTORS: tuple[str, ...] = get_args(Executor)
# called as each task finishes: (tasks done, tasks in all, the finished task's label)
TaskProgress = Callable[[int, int, str], None]
MAX_RETRIES = 2


class ExecutorError(ValueError):
    """A task could not run where it was sent (no Ray, or failed on the cluster after retries); names it."""


def check_executor(kind: str) -> Executor:
    """`local` or `ray`, or one line naming the choices."""
    if kind == "local":
        return "local"
    if kind == "ray":
        return "ray"
    raise ExecutorError(f"unknown executor {kind!r}: use {' or '.join(EXECUTORS)}")


def executor_from_env(environ: Mapping[str, str] = os.environ) -> Executor:
    """The default an entry point offers: FLEETWISE_EXECUTOR, else `ray` when FLEETWISE_RAY_ADDRESS names a
    cluster, else `local`."""
    kind = environ.get("FLEETWISE_EXECUTOR") or ("ray" if environ.get("FLEETWISE_RAY_ADDRESS") else "local")
    try:
        return check_executor(kind)
    except ExecutorError:
        raise ExecutorError(f"FLEETWISE_EXECUTOR={kind!r}: use {' or '.join(EXECUTORS)}") from None


@lru_cache(maxsize=64)
def _load_run(path: str, size: int, mtime_ns: int, inode: int) -> Run:
    return load_run(path)


def load_run_cached(path: str | Path) -> Run:
    """A run file, parsed once per process for as long as the file is unchanged: the cache is keyed on the path
    and its size, modification time and inode, so a run replaced under the same name is read again."""
    try:
        st = os.stat(path)
    except OSError:
        return load_run(path)  # the reader names what is wrong with the path
    return _load_run(str(path), st.st_size, st.st_mtime_ns, st.st_ino)


class _Named(Protocol):
    @property
    def label(self) -> str: ...


class _Labelled(Protocol):
    """A worker task: its option's label names it on the progress bar."""

    @property
    def option(self) -> _Named: ...


R = TypeVar("R")
T = TypeVar("T", bound=_Labelled)


def _context() -> multiprocessing.context.BaseContext:
    # a single-threaded process (the CLI) forks its workers: they start with the planner already imported and
    # the runs already parsed (a forkserver costs about 2.5 s to start on 2 cores). Forking a process that
    # runs threads (the app's server) can deadlock a worker, so there a forkserver starts them.
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else None)
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(
            ["planner.fleet.sizing", "planner.llm.sizing"]
        )  # numpy/scipy/simpy imported
    return ctx


@contextmanager
def _plain_main() -> Iterator[None]:
    """Hide the running script from the workers being started.

    A forkserver or spawn worker re-runs the parent's __main__ file before its task; under Streamlit that file
    is the app page (Streamlit puts the script it runs in sys.modules["__main__"]), so every worker imported
    Streamlit and ran the page ("missing ScriptRunContext" in the log). Tasks are planner functions and need
    nothing from __main__.
    """
    main = sys.modules.get("__main__")
    if main is None or getattr(main, "__file__", None) is None:
        yield
        return
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def start_workers() -> None:
    """Start the process that forks sizing workers now, so that a long-running app's first answer does not
    wait for it (about 2 s on 2 cores to import the planner); idempotent."""
    if _context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        with _plain_main():
            forkserver.ensure_running()


def in_workers(
    fn: Callable[[T], R],
    tasks: list[T],
    jobs: int,
    progress: TaskProgress | None,
    executor: Executor = "local",
) -> list[R]:
    """fn over tasks in `jobs` processes (inline when 1), or on a Ray cluster when that executor is chosen;
    reporting each finished task; results in order."""
    if tasks and check_executor(executor) == "ray":
        return in_ray(fn, tasks, progress)
    results: dict[int, R] = {}
    if jobs <= 1 or len(tasks) == 1:
        for i, t in enumerate(tasks):
            results[i] = fn(t)
            if progress:
                progress(i + 1, len(tasks), t.option.label)
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=_context()) as pool:
            with _plain_main():  # workers start as the pool fills
                futures = {pool.submit(fn, t): i for i, t in enumerate(tasks)}
            for done, fut in enumerate(as_completed(futures), start=1):
                i = futures[fut]
                results[i] = fut.result()
                if progress:
                    progress(done, len(tasks), tasks[i].option.label)
    return [results[i] for i in range(len(tasks))]


# ------------------------------------------------------------------------------------------------ Ray


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
