"""Model registry and resolution: paper models by hub id, local directories, GGUF files, tie reports."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.models import (
    ModelSpec, ModelUnavailableError, ResolvedModel, embedding_tie_report, load_model, load_tokenizer, resolve_model,
)
from harness.registry import MODELS, RegistryError
from harness.zoo.recipe import ROLES
from tiny import save_pair, tiny_llama, tiny_tokenizer

PAPER_HUB_IDS = {
    "llama-2-7b": "meta-llama/Llama-2-7b-hf",
    "llama-2-7b-chat": "meta-llama/Llama-2-7b-chat-hf",
    "llama-2-13b": "meta-llama/Llama-2-13b-hf",
    "llama-2-13b-chat": "meta-llama/Llama-2-13b-chat-hf",
    "llama-2-70b": "meta-llama/Llama-2-70b-hf",
    "llama-2-70b-chat": "meta-llama/Llama-2-70b-chat-hf",
    "codellama-7b": "codellama/CodeLlama-7b-hf",
    "codellama-7b-instruct": "codellama/CodeLlama-7b-Instruct-hf",
    "vicuna-7b-v1.3": "lmsys/vicuna-7b-v1.3",
    "vicuna-7b-v1.5": "lmsys/vicuna-7b-v1.5",
    "vicuna-13b-v1.3": "lmsys/vicuna-13b-v1.3",
    "vicuna-13b-v1.5": "lmsys/vicuna-13b-v1.5",
    "baichuan2-13b-base": "baichuan-inc/Baichuan2-13B-Base",
    "baichuan2-7b-chat": "baichuan-inc/Baichuan2-7B-Chat",
    "llama-3.2-1b": "meta-llama/Llama-3.2-1B",
    "llama-3.2-1b-instruct": "meta-llama/Llama-3.2-1B-Instruct",
    "llama-3.2-3b": "meta-llama/Llama-3.2-3B",
    "qwen2.5-3b-instruct": "Qwen/Qwen2.5-3B-Instruct",
    "medical-o1-verifier-3b": "FreedomIntelligence/medical_o1_verifier_3B",
}

CODE = ["def add(a, b):\n    return a + b\n", "class Point:\n    def __init__(self, x):\n        self.x = x\n",
        "for i in range(10):\n    print(i * i)\n", "The quick brown fox jumps over the lazy dog. " * 3]


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer(CODE * 20, vocab_size=300)


def test_paper_models_registered_with_their_hub_ids():
    for name, hub_id in PAPER_HUB_IDS.items():
        spec: ModelSpec = MODELS.get(name)
        assert spec.hub_id == hub_id and spec.zoo_role is None
        repo = hub_id.split("/")[1].lower()
        assert MODELS.canonical(repo) == name  # the lowercased repo name is an alias
    assert MODELS.get("llama-2-13b").hidden_size == 5120 and MODELS.get("llama-2-7b-chat").hidden_size == 4096
    assert MODELS.get("codellama-7b").vocab_size - MODELS.get("llama-2-13b").vocab_size == 16
    assert MODELS.get("llama-3.2-1b").hidden_size / MODELS.get("llama-3.2-3b").hidden_size == pytest.approx(2 / 3)
    assert MODELS.get("llama-3.2-1b-instruct").tie_word_embeddings is True


def test_every_zoo_role_registered_with_a_paper_counterpart():
    for role in ROLES:
        spec = MODELS.get(role.name)
        assert spec.zoo_role == role.name and spec.hub_id is None
        if role.paper_model is not None:
            assert MODELS.get(role.paper_model).hub_id  # the paper scale can name it
    assert MODELS.get("target-base").paper_model == "llama-2-13b"
    assert MODELS.get("code-expert").paper_model == "codellama-7b"


def test_hub_id_offline_fails_fast_with_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for query in ("meta-llama/Llama-2-13b-hf", "llama-2-13b", "codellama/CodeLlama-7b-hf@main", "someone/unknown-7b"):
        start = time.perf_counter()
        with pytest.raises(ModelUnavailableError) as info:
            resolve_model(query)
        assert time.perf_counter() - start < 5
        message = str(info.value)
        assert "HF_HUB_OFFLINE" in message and "local model directory or a .gguf file" in message
        error = info.value  # no traceback from inside huggingface_hub attached
        assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_paper_scale_maps_roles_to_hub_models(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="meta-llama/Llama-2-13b-hf"):
        resolve_model("target-base", scale="paper")
    with pytest.raises(ModelUnavailableError, match="no counterpart"):
        resolve_model("math-expert", scale="paper")


def test_unknown_names_and_paths_are_clear():
    with pytest.raises(RegistryError, match="Did you mean: target-base"):
        resolve_model("target-bsae")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model("./no/such/model.gguf")


def test_local_directory_resolves_and_loads(tmp_path, tokenizer, data_cache):
    model = tiny_llama(tokenizer, hidden=32, layers=2, heads=4)
    save_pair(model, tokenizer, tmp_path / "m")
    resolved = resolve_model(str(tmp_path / "m"))
    assert resolved.source == "local" and resolved.tied_embeddings is False
    assert len(resolved.identity["weights_sha256"]) == 64
    assert resolve_model(str(tmp_path / "m")).identity == resolved.identity  # hashed once, cached
    loaded = load_model(resolved, dtype="float32")
    assert torch.equal(loaded.model.embed_tokens.weight, model.model.embed_tokens.weight)
    assert load_tokenizer(resolved).get_vocab() == tokenizer.get_vocab()


def test_tie_report(tokenizer):
    tied = embedding_tie_report(tiny_llama(tokenizer, tie=True))
    assert tied["tied"] and tied["tied_by_config"] and tied["tied_by_storage"] and tied["consistent"]
    untied_model = tiny_llama(tokenizer, tie=False)
    untied = embedding_tie_report(untied_model)
    assert not untied["tied"] and not untied["tied_by_config"] and untied["equal_values"] is False
    with torch.no_grad():  # equal values in two storages are not a tie
        untied_model.lm_head.weight.copy_(untied_model.model.embed_tokens.weight)
    copied = embedding_tie_report(untied_model)
    assert copied["equal_values"] and not copied["tied"] and copied["consistent"]


# --- GGUF: a tiny Llama written with gguf-py, read back by transformers, dequantized and cached ----------

def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order (convert_hf_to_gguf.py); transformers undoes it on load."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(model, tokenizer, path: Path) -> Path:
    import gguf

    cfg = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    writer.add_rope_freq_base(float(cfg.rope_parameters["rope_theta"]) if getattr(cfg, "rope_parameters", None)
                              else 10000.0)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
    special = set(tokenizer.all_special_tokens)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([tok for tok, _ in vocab])
    writer.add_token_types([gguf.TokenType.CONTROL if tok in special else gguf.TokenType.NORMAL for tok, _ in vocab])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_unk_token_id(tokenizer.unk_token_id)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    writer.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", sd["model.norm.weight"])
    if not cfg.tie_word_embeddings:
        writer.add_tensor("output.weight", sd["lm_head.weight"])
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        writer.add_tensor(f"blk.{i}.attn_norm.weight", sd[p + "input_layernorm.weight"])
        q, k = sd[p + "self_attn.q_proj.weight"], sd[p + "self_attn.k_proj.weight"]
        writer.add_tensor(f"blk.{i}.attn_q.weight", _permute(q, cfg.num_attention_heads))
        writer.add_tensor(f"blk.{i}.attn_k.weight", _permute(k, cfg.num_key_value_heads))
        writer.add_tensor(f"blk.{i}.attn_v.weight", sd[p + "self_attn.v_proj.weight"])
        writer.add_tensor(f"blk.{i}.attn_output.weight", sd[p + "self_attn.o_proj.weight"])
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", sd[p + "post_attention_layernorm.weight"])
        writer.add_tensor(f"blk.{i}.ffn_gate.weight", sd[p + "mlp.gate_proj.weight"])
        writer.add_tensor(f"blk.{i}.ffn_up.weight", sd[p + "mlp.up_proj.weight"])
        writer.add_tensor(f"blk.{i}.ffn_down.weight", sd[p + "mlp.down_proj.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("tie", [False, True])
def test_gguf_file_is_dequantized_once_and_loads(tmp_path, tokenizer, data_cache, tie):
    model = tiny_llama(tokenizer, hidden=32, layers=2, heads=4, tie=tie).eval()
    gguf_path = write_llama_gguf(model, tokenizer, tmp_path / f"tiny-{tie}.gguf")
    resolved = resolve_model(str(gguf_path))
    assert isinstance(resolved, ResolvedModel) and resolved.source == "gguf"
    assert resolved.tied_embeddings is tie
    assert Path(resolved.path).is_dir() and (Path(resolved.path) / "model.safetensors").is_file()
    loaded = load_model(resolved).eval()
    ids = torch.tensor([tokenizer("def add(a, b):\n    return a + b")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=1e-4, rtol=1e-4)
    assert embedding_tie_report(loaded)["tied"] is tie
    reloaded_tok = load_tokenizer(resolved)
    text = "class Point:\n    x = 1"
    expected = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert reloaded_tok(text, add_special_tokens=False)["input_ids"] == expected
    stamp = (Path(resolved.path) / "model.safetensors").stat().st_mtime_ns
    again = resolve_model(str(gguf_path))
    assert again.path == resolved.path and again.identity == resolved.identity
    assert (Path(resolved.path) / "model.safetensors").stat().st_mtime_ns == stamp  # not dequantized twice
