"""The error of an assumed LLM profile (a roofline) against every shipped measured LLM run of its model and
device: per phase, the median (roofline - measured) / measured over the measured steps, and each step.

    python benchmarks/roofline_error.py [--profile profiles/llm/cpu-tiny-fp32.yaml] [--runs data/runs]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository's root
from measure.run import load_run
from planner.llm.model_match import run_mismatch
from planner.llm.roofline import load_llm_profile
from planner.llm.roofline_check import profile_error
from planner.traffic.scenario import ModelSpec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", type=Path, default=Path("profiles/llm/cpu-tiny-fp32.yaml"))
    ap.add_argument("--runs", type=Path, default=Path("data/runs"))
    ap.add_argument("--steps", action="store_true", help="also print every step")
    a = ap.parse_args()
    prof = load_llm_profile(a.profile)
    spec = ModelSpec(names=[prof.shape.name], parameters=prof.shape.parameters())
    print(f"{prof.label()}\n")
    print("| run | source | prefill steps | prefill median error | decode steps | decode median error |")
    print("| --- | --- | --- | --- | --- | --- |")
    for f in sorted(a.runs.glob("llm-*.json")):
        run = load_run(f)
        if run_mismatch(spec, run) or run.stack.device_kind != "cpu":  # its model, on a CPU like the sheet
            continue
        e = profile_error(prof, run)
        n = {ph: sum(s.phase == ph for s in e.steps) for ph in ("prefill", "decode")}
        med = {ph: f"{e.median_error_pct[ph]:+.1f}%" if ph in e.median_error_pct else "-" for ph in n}
        print(
            f"| `{run.short_id()}` | {e.source} | {n['prefill']} | {med['prefill']} | {n['decode']} | {med['decode']} |"
        )
        if a.steps:
            for s in e.steps:
                print(
                    f"|  | {s.phase} b{s.batch} x{s.tokens} | measured {s.measured_ms:.3g} ms | roofline "
                    f"{s.roofline_ms:.3g} ms | {s.error_pct:+.1f}% | |"
                )


if __name__ == "__main__":
    main()
