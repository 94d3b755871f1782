"""The GPU LLM measurement, prepared on the CPU: the Llama 3.1 8B shape (hf-config, random weights) at fp16,
bf16 and fp8, prefill up to batch 16 x 8k prompt tokens, decode up to batch 256 at 8k context, mixed steps,
with telemetry (NVML power, energy counter, clocks). About 10 minutes on one H200; rows end at OOM.

    python benchmarks/gpu_llm.py --out "$OUT"            # on the GPU machine
    python benchmarks/gpu_llm.py --smoke --out /tmp/x    # the same path on the CPU with a small shape

Never run it to produce figures anywhere but on the GPU it names: the run records the device it measured.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository's root
from measure.workloads.decoder_shape import PRESETS

GPU_GRID = [
    "--prefill-batch", "1,4,16", "--prompt-tokens", "128,512,2048,8192",
    "--decode-batch", "1,8,32,64,128,256", "--context", "512,2048,8192",
    "--mixed-batch", "32", "--mixed-context", "2048", "--chunk", "256,1024",
    "--min-seconds-per-point", "0.5", "--max-seconds-per-point", "3", "--energy-window", "1", "--idle-seconds", "5",
]  # fmt: skip
SMOKE_GRID = [
    "--prefill-batch", "1,2", "--prompt-tokens", "16,64", "--decode-batch", "1,4", "--context", "32,128",
    "--mixed-batch", "2", "--mixed-context", "32", "--chunk", "16",
    "--min-seconds-per-point", "0.1", "--max-seconds-per-point", "0.3", "--idle-seconds", "0",
]  # fmt: skip


def hf_config(preset: str, **override: int) -> dict[str, object]:
    """A preset as the config.json a Hugging Face Llama folder carries."""
    shape = {**asdict(PRESETS[preset]), **override}
    shape.pop("name")
    return {"model_type": "llama", **shape}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--smoke", action="store_true", help="a small shape on the CPU: checks the script, no figures"
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / ("llama-3.1-8b-shape.json" if not args.smoke else "small-shape.json")
        small = {"num_hidden_layers": 2, "hidden_size": 256, "intermediate_size": 512, "vocab_size": 2048}
        cfg.write_text(json.dumps(hf_config("8b", **(small if args.smoke else {}))))
        device, precisions, grid = (
            ("cpu", "bf16,fp8", SMOKE_GRID) if args.smoke else ("cuda", "fp16,bf16,fp8", GPU_GRID)
        )
        cmd = [str(Path(sys.executable).with_name("fleetwise")), "measure", "-w", f"hf-config:{cfg}"]
        cmd += ["--device", device, "--precision", precisions, *grid, "--out", str(args.out)]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
