"""A real LLM serving engine to measure on any machine: a tiny Llama-shaped model served by `transformers serve`.

The model has random weights and a byte-level BPE tokenizer trained here with the `tokenizers` package on a
generated corpus; both are saved with `save_pretrained` into a folder. Nothing comes from a model hub. The
server listens on 127.0.0.1 only and is stopped by its own process id.

    python benchmarks/tiny_llm.py build FOLDER            # write the model folder
    python benchmarks/tiny_llm.py serve FOLDER --port P   # build if missing, serve until Ctrl-C

Needs the `llm` extra (transformers with its serving dependencies, tokenizers); the planner never does.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a file: the repository's root
from benchmarks.served import stop, wait_healthy
from measure.engine_client.http import WORDS  # the words engine sweeps build prompts from: whole tokens here

# the `tiny` preset of measure/workloads/decoder.py, as a Hugging Face Llama config
TINY: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 352,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "vocab_size": 1024,  # the tokenizer's size: the model's output rows and its tokens match one to one
    "rope_theta": 500000.0,
}


def corpus(lines: int, seed: int = 0) -> list[str]:
    """Generated text for the tokenizer (any text will do: the weights are random): some real words and many
    made-up ones, so that BPE fills its whole vocabulary."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"

    def word() -> str:
        if rng.random() < 0.3:
            return rng.choice(WORDS)
        return "".join(rng.choice(letters) for _ in range(rng.randint(2, 9)))

    return [" ".join(word() for _ in range(rng.randint(5, 40))) for _ in range(lines)]


def build(folder: Path) -> Path:
    """Write a tiny Llama model with random weights and a locally trained tokenizer into folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    # Metaspace, not byte-level: every token decodes to whole characters, so a stream sends one chunk per token
    # (byte-level tokens can end mid-character and the server holds them back)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    specials = ["<s>", "</s>", "<pad>", "<unk>"]
    trainer = trainers.BpeTrainer(vocab_size=TINY["vocab_size"], special_tokens=specials)
    tok.train_from_iterator(corpus(2000), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    fast.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant: {% endif %}"
    )
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(
        **{**TINY, "vocab_size": len(fast)},
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id
    )
    model.save_pretrained(folder)
    return folder


# the continuous-batching knobs the live checks start the engine with, so that the simulator gets the same ones
ENGINE_KNOBS = {"--cb-block-size": 16, "--cb-num-blocks": 8192, "--cb-max-batch-tokens": 2048}


def serve_command(folder: Path, port: int, knobs: dict[str, int] | None = None) -> list[str]:
    """The `transformers serve` command line for the folder on 127.0.0.1:port (with --cb-* knobs if given)."""
    exe = Path(sys.executable).with_name("transformers")
    return [
        str(exe),
        "serve",
        str(folder),
        "--continuous-batching",
        "--device",
        "cpu",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *[str(x) for kv in (knobs or {}).items() for x in kv],
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["build", "serve"])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--port", type=int, default=8765)
    args = ap.parse_args()
    if args.action == "build" or not (args.folder / "config.json").exists():
        build(args.folder)
        print(f"built {args.folder}")
    if args.action == "serve":
        proc = subprocess.Popen(serve_command(args.folder, args.port))
        try:
            wait_healthy(f"http://127.0.0.1:{args.port}/health", proc, timeout_s=120)
            print(f"serving {args.folder} on http://127.0.0.1:{args.port} (Ctrl-C stops it)")
            proc.wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
