"""A measurement campaign: the same `fleetwise measure` on every node of a Ray cluster that has the device.

Each chosen node runs the command in its own process (so the run's stack manifest is that node's), writes into
a scratch folder there, and returns the run file's text; the driver parses it as untrusted data (the same
checks as an upload) and saves it into the runs folder. Nodes without the device are listed as skipped with
the reason; a node whose measurement fails is listed with its error. Nothing else is sent to the nodes.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_RUN_TEXT = 64 * 1024 * 1024
TIMEOUT_S = 6 * 3600


@dataclass(frozen=True)
class NodeResult:
    """What one node did: a run file's text, or why there is none."""

    node_id: str
    address: str
    hostname: str
    run_text: str | None
    skipped: str | None = None
    error: str | None = None


def _measure_here(args: list[str]) -> tuple[str, str | None, str | None]:
    """On the node: run `fleetwise measure ARGS --out TMP`; (hostname, run text, error)."""
    host = socket.gethostname()
    exe = shutil.which("fleetwise") or str(Path(sys.executable).with_name("fleetwise"))
    with tempfile.TemporaryDirectory(prefix="fleetwise-campaign-") as tmp:
        try:
            done = subprocess.run(
                [exe, "measure", *args, "--out", tmp],
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return host, None, f"could not run fleetwise measure: {exc}"
        files = sorted(Path(tmp).glob("*.json"))
        if done.returncode != 0 or len(files) != 1:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return host, None, f"fleetwise measure exited {done.returncode}: {last[0][:300]}"
        data = files[0].read_bytes()
        if len(data) > MAX_RUN_TEXT:
            return host, None, f"the run file is over {MAX_RUN_TEXT:,} bytes"
        return host, data.decode("utf-8", "replace"), None


def _has_device(node: dict[str, Any], device: str) -> str | None:
    """None when the node can run the device, else why not."""
    res = node.get("Resources") or {}
    if device == "cuda" and not res.get("GPU"):
        return "no GPU in the node's Ray resources"
    if not res.get("CPU"):
        return "no CPU in the node's Ray resources"
    return None


def run_campaign(ray: Any, device: str, args: list[str]) -> list[NodeResult]:
    """One measurement per alive node that has the device, all at once; results in node order."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    out: list[NodeResult] = []
    pending: dict[Any, dict[str, Any]] = {}
    remote = ray.remote(max_retries=0)(_measure_here)
    for n in nodes:
        why = _has_device(n, device)
        if why:
            out.append(NodeResult(n["NodeID"], n.get("NodeManagerAddress", "?"), "?", None, skipped=why))
            continue
        strategy = NodeAffinitySchedulingStrategy(node_id=n["NodeID"], soft=False)
        opts: dict[str, Any] = {"scheduling_strategy": strategy, "num_cpus": 1}
        if device == "cuda":
            opts["num_gpus"] = 1
        pending[remote.options(**opts).remote(args)] = n
    for ref, n in pending.items():
        try:
            host, text, error = ray.get(ref)
        except ray.exceptions.RayError as exc:
            host, text, error = "?", None, f"the node was lost: {str(exc).splitlines()[0][:300]}"
        out.append(NodeResult(n["NodeID"], n.get("NodeManagerAddress", "?"), host, text, error=error))
    return out
