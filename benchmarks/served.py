"""`make run`'s server for the browser benchmarks: started on a free local port, stopped by its own pid."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


MAX_PATIENCE = 4.0


def patience(seconds: float) -> float:
    """`seconds` stretched by how busy this machine is (1-minute load per usable CPU, 1x..4x): a limit that
    holds a test to a condition, not to the speed of an idle machine, on a shared CI host."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0] / max(1, cpus)
    except OSError:
        load = 1.0
    return seconds * min(MAX_PATIENCE, max(1.0, load))


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """Until `url` answers; RuntimeError with the reason when the server exits first or the time is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before {url} answered")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout_s:g} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server this process started, by its own pid: terminate, then kill if it lingers."""
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)


@contextmanager
def served(log: IO[bytes] | int = subprocess.DEVNULL, env: dict[str, str] | None = None) -> Iterator[str]:
    """serve.py as `make run` starts it (file watcher off), healthy; yields its URL."""
    port = free_port()
    cmd = [
        sys.executable,
        str(ROOT / "serve.py"),
        "--server.headless",
        "true",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url + "/_stcore/health", proc, timeout_s=patience(60.0))
        yield url
    finally:
        stop(proc)
