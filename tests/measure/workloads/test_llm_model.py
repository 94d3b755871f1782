"""The built-in Llama-style decoder: preset shapes as published, a KV cache that changes nothing but speed."""

from __future__ import annotations

import pytest
import torch

from measure.workloads.decoder import Decoder, KVCache, mixed_step
from measure.workloads.decoder_shape import PRESETS, ShapeError, shape_for


def test_the_presets_have_the_parameter_counts_of_the_models_they_copy() -> None:
    assert PRESETS["8b"].parameters() == pytest.approx(8.03e9, rel=0.005)  # Llama 3.1 8B
    assert PRESETS["1b"].parameters() == pytest.approx(1.236e9, rel=0.005)  # Llama 3.2 1B, tied embeddings
    # 8B at bf16: 32 layers x 8 kv heads x 128 dims x (k + v) x 2 bytes = 128 KiB per token
    assert PRESETS["8b"].kv_bytes_per_token(2) == 131_072


def test_tiny_builds_with_its_stated_parameter_count() -> None:
    model = Decoder(PRESETS["tiny"])
    assert sum(p.numel() for p in model.parameters()) == PRESETS["tiny"].parameters()


def test_decoding_with_the_cache_gives_the_logits_of_a_full_forward() -> None:
    shape = shape_for("tiny", max_position_embeddings=64)
    model = Decoder(shape).eval()
    ids = torch.randint(0, shape.vocab_size, (3, 12))
    with torch.inference_mode():
        cache = KVCache(shape, 3, 64, torch.float32, "cpu")
        model(ids[:, :8], cache)  # prefill 8
        chunk = model(ids[:, 8:10], cache)  # a chunk of 2 on top of the cache (chunked prefill)
        step = [model(ids[:, i : i + 1], cache) for i in range(10, 12)]  # two decode steps
        for end, got in ((10, chunk), (11, step[0]), (12, step[1])):
            torch.testing.assert_close(got, model(ids[:, :end]), rtol=1e-4, atol=1e-4)
    assert cache.length == 12
    assert cache.nbytes() == 3 * 64 * shape.kv_bytes_per_token(4)


def test_impossible_shapes_and_overfull_caches_are_refused() -> None:
    with pytest.raises(ShapeError, match="multiple of num_key_value_heads"):
        shape_for("tiny", num_key_value_heads=3)
    with pytest.raises(ShapeError, match="unknown preset"):
        shape_for("70b")
    shape = shape_for("tiny", max_position_embeddings=16)
    model = Decoder(shape)
    cache = KVCache(shape, 1, 8, torch.float32, "cpu")
    with torch.inference_mode(), pytest.raises(ShapeError, match="exceed"):
        model(torch.zeros(1, 9, dtype=torch.long), cache)


def test_a_decode_step_reads_the_same_context_every_iteration_and_prefill_starts_empty() -> None:
    from measure.workloads.decoder import decode_step, prefill_step

    shape = shape_for("tiny", max_position_embeddings=64)
    model = Decoder(shape).eval()
    with torch.inference_mode():
        step = decode_step(model, 2, 20)
        first, again = step(), step()  # the same token over the same 20 cached tokens: the same logits
        torch.testing.assert_close(first, again)
        assert first.shape == (2, shape.vocab_size)
        pre = prefill_step(model, 3, 16)
        torch.testing.assert_close(pre(), pre())
    with pytest.raises(ShapeError, match="exceeds"):
        decode_step(model, 1, 64)  # context + the new token is beyond the model's 64 positions


def test_a_hugging_face_config_gives_the_shape_and_bad_ones_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from measure.workloads.decoder_shape import shape_from_hf_config

    cfg = {
        "model_type": "llama",
        "num_hidden_layers": 32,
        "hidden_size": 4096,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "auto_map": {"AutoModel": "evil.module:Model"},  # never followed: the config is data
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    shape = shape_from_hf_config(path)
    assert shape.parameters() == PRESETS["8b"].parameters() and shape.name == "hf-config:config.json"
    for bad, message in (
        ({**cfg, "model_type": "bert"}, "not a Llama-style decoder"),
        ({**cfg, "hidden_size": -1}, "hidden_size must be an integer"),
        ({**cfg, "num_key_value_heads": 5}, "multiple of num_key_value_heads"),
        ({**cfg, "rope_theta": "big"}, "rope_theta must be a number"),
    ):
        path.write_text(json.dumps(bad))
        with pytest.raises(ShapeError, match=message):
            shape_from_hf_config(path)
    path.write_text('{"model_type": "llama", "model_type": "llama"}')
    with pytest.raises(ShapeError, match="duplicate key"):
        shape_from_hf_config(path)


def test_a_mixed_step_packs_a_decode_batch_and_a_prefill_chunk_without_changing_either() -> None:
    shape = shape_for("tiny", max_position_embeddings=64)
    model = Decoder(shape).eval()
    ctx = torch.randint(0, shape.vocab_size, (2, 9))
    prompt = torch.randint(0, shape.vocab_size, (1, 5))
    with torch.inference_mode():
        dc = KVCache(shape, 2, 10, torch.float32, "cpu")
        model(ctx[:, :8], dc)
        cc = KVCache(shape, 1, 5, torch.float32, "cpu")
        packed = model.forward_packed([(ctx[:, 8:9], dc), (prompt, cc)])
        assert packed.shape == (3, shape.vocab_size)
        torch.testing.assert_close(packed[:2], model(ctx), rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(packed[2:], model(prompt), rtol=1e-4, atol=1e-4)
    assert (dc.length, cc.length) == (9, 5)
    step = mixed_step(model, 2, 8, 5)
    with torch.inference_mode():
        first, again = step(), step()  # every iteration starts from the same cached context
    torch.testing.assert_close(first, again)


def test_a_decoder_built_in_place_has_the_same_weights_at_every_precision() -> None:
    shape = shape_for(
        "1b",
        num_hidden_layers=1,
        hidden_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        vocab_size=256,
        max_position_embeddings=128,
    )
    a = Decoder.build(shape, torch.float32, "cpu", seed=3)
    b = Decoder.build(shape, torch.bfloat16, "cpu", seed=3)
    assert a.lm_head.weight is a.embed.weight  # tied, as the 1b shape says
    assert sum(p.numel() for p in a.parameters()) == shape.parameters()
    torch.testing.assert_close(
        b.layers[0].attn.q.weight.float(), a.layers[0].attn.q.weight, rtol=1e-2, atol=1e-3
    )
    assert b.cos.dtype == torch.float32 and b.layers[0].mlp_norm.weight.dtype == torch.bfloat16
    assert not torch.equal(
        a.layers[0].gate.weight, Decoder.build(shape, torch.float32, "cpu", seed=4).layers[0].gate.weight
    )
