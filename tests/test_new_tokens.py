"""Tokens Pen2Sword adds to the target (the expert-only tokens) can be predicted and learned: their
lm_head rows start at their transferred rows of E_hat, and train beside the embedding under LoRA."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from harness.config import TrainingConfig
from harness.engine.adapters import apply_adapters, load_trainable_state, trainable_state, trainable_summary
from harness.zoo.tokenizer import CODE_TOKENS, extend_for_code, train_base_tokenizer
from methods.pen2sword.transfer import TransferOptions, transfer
from tiny import tiny_llama, tiny_tokenizer

TEXTS = [f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(48)]
NEW = ["<fim_a>", "<fim_b>", "<fim_c>"]
D_S, D_T = 16, 32
TRAINING = TrainingConfig(lora_r=4, lora_alpha=8, lora_dropout=0.0)


def transferred(*, tie: bool = False, pad_rows: int = 0):
    """A tiny untied (or tied) target after transfer from an expert whose tokenizer has NEW on top."""
    target_tok = tiny_tokenizer(TEXTS, vocab_size=300)
    expert_tok = tiny_tokenizer(TEXTS, vocab_size=300, extra_tokens=NEW)
    expert = tiny_llama(expert_tok, hidden=D_S, seed=1)
    target = tiny_llama(target_tok, hidden=D_T, seed=2, tie=tie)
    if pad_rows:  # a matrix padded beyond its tokenizer, as vocabularies padded to a multiple are
        target.resize_token_embeddings(len(target_tok) + pad_rows, mean_resizing=False)
    return transfer(expert, expert_tok, target, target_tok, TransferOptions())


@pytest.fixture(scope="module")
def result():
    return transferred()


def new_ids(result) -> list[int]:
    return list(result.new_token_ids)


def head_weight(model) -> torch.Tensor:
    """lm_head's effective rows (through peft's trainable-token wrapper when there is one)."""
    return model.get_output_embeddings().weight.detach().clone()


def test_new_token_ids_are_the_expert_only_tokens(result):
    ids = new_ids(result)
    assert ids == result.tokenizer.convert_tokens_to_ids(NEW) == list(range(len(result.tokenizer) - 3,
                                                                            len(result.tokenizer)))


def fused_rows_at_old_norm(result, head: torch.Tensor) -> torch.Tensor:
    """What the new tokens' lm_head rows start at: their rows of E_hat, at the old rows' mean norm."""
    ids = new_ids(result)
    rows = result.embedding[ids]
    return rows * (head[: ids[0]].norm(dim=1).mean() / rows.norm(dim=1, keepdim=True))


def test_new_output_rows_start_at_their_fused_rows_and_can_win_the_argmax(result):
    ids = new_ids(result)
    head = head_weight(result.model)
    assert torch.allclose(head[ids], fused_rows_at_old_norm(result, head))
    h = torch.randn(1000, D_T, generator=torch.Generator().manual_seed(0))
    wins = torch.isin((h @ head.T).argmax(-1), torch.tensor(ids))
    assert wins.any()
    # the old initialisation: one shared row, the mean of the old rows, never beats the best old token
    old = head.clone()
    old[ids] = head[: ids[0]].mean(0)
    assert not torch.isin((h @ old.T).argmax(-1), torch.tensor(ids)).any()


def test_padded_target_matrix_still_gives_new_tokens_their_fused_rows():
    padded = transferred(pad_rows=8)
    ids = new_ids(padded)
    head = head_weight(padded.model)
    assert torch.allclose(head[ids], fused_rows_at_old_norm(padded, head))
    assert padded.report["tie"]["lm_head_rows_from_E_hat"] == len(NEW)


def _sequence(result) -> torch.Tensor:
    tok = result.tokenizer
    return torch.tensor([tok("def f1(x):")["input_ids"] + [new_ids(result)[1]] + tok(" return x")["input_ids"][1:]])


def _train(model, x: torch.Tensor, steps: int = 5) -> None:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


def _logprob_of_new(model, x: torch.Tensor, result) -> float:
    at = x[0].tolist().index(new_ids(result)[1])
    with torch.no_grad():
        logits = model(input_ids=x).logits[0, at - 1]
    return float(logits.log_softmax(-1)[new_ids(result)[1]])


def test_lora_with_embedding_training_learns_the_new_rows_only():
    result = transferred()
    model, ids, x = result.model, new_ids(result), _sequence(result)
    before_head = head_weight(model)
    with torch.no_grad():
        before_logits = model(input_ids=x).logits
    model = apply_adapters(model, TRAINING, new_token_ids=ids)
    with torch.no_grad():
        assert torch.equal(model(input_ids=x).logits, before_logits)  # unchanged at initialisation
    before = _logprob_of_new(model, x, result)
    _train(model, x)
    after_head = head_weight(model)
    assert _logprob_of_new(model, x, result) > before + 1.0
    assert not torch.equal(after_head[ids[1]], before_head[ids[1]])
    old = [i for i in range(after_head.shape[0]) if i not in ids]
    assert torch.equal(after_head[old], before_head[old])
    generated = model.generate(input_ids=x[:, :4], max_new_tokens=4, do_sample=False)
    assert generated.shape == (1, 8)


def test_pen2sword_f_keeps_the_new_rows_frozen():
    result = transferred()
    model, ids, x = result.model, new_ids(result), _sequence(result)
    before_head = head_weight(model)
    model = apply_adapters(model, replace(TRAINING, train_embeddings=False), new_token_ids=ids)
    assert not any("trainable_tokens" in n for n, _ in model.named_parameters())
    _train(model, x)
    assert torch.equal(head_weight(model), before_head)


def test_trainable_counts_are_exact(result):
    ids = new_ids(result)
    layers, vocab = result.model.config.num_hidden_layers, result.model.config.vocab_size
    lora = layers * TRAINING.lora_r * (D_T + D_T)  # q_proj: A r×d, B d×r
    model = apply_adapters(transferred().model, TRAINING, new_token_ids=ids)
    assert trainable_summary(model).trainable == lora + vocab * D_T + len(ids) * D_T
    frozen = apply_adapters(transferred().model, replace(TRAINING, train_embeddings=False), new_token_ids=ids)
    assert trainable_summary(frozen).trainable == lora
    only = apply_adapters(transferred().model, replace(TRAINING, peft="none"), new_token_ids=ids)
    assert trainable_summary(only).trainable == vocab * D_T + len(ids) * D_T
    full = apply_adapters(transferred().model, replace(TRAINING, peft="full"), new_token_ids=ids)
    assert trainable_summary(full).percent == 100.0


def test_tied_head_needs_no_extra_rows():
    tied = transferred(tie=True)
    model = apply_adapters(tied.model, TRAINING, new_token_ids=new_ids(tied))
    assert not any("trainable_tokens" in n for n, _ in model.named_parameters())
    lora = tied.model.config.num_hidden_layers * TRAINING.lora_r * 2 * D_T
    assert trainable_summary(model).trainable == lora + tied.model.config.vocab_size * D_T


def test_trainable_state_round_trips_the_new_rows():
    result = transferred()
    ids, x = new_ids(result), _sequence(result)
    model = apply_adapters(result.model, TRAINING, new_token_ids=ids)
    _train(model, x, steps=3)
    state = trainable_state(model)
    assert sum(v.numel() for k, v in state.items() if "trainable_tokens_delta" in k) == len(ids) * D_T
    fresh = apply_adapters(transferred().model, TRAINING, new_token_ids=ids)
    assert not torch.equal(head_weight(fresh)[ids], head_weight(model)[ids])
    load_trainable_state(fresh, state)
    assert torch.equal(head_weight(fresh), head_weight(model))
    with torch.no_grad():
        assert torch.equal(fresh(input_ids=x).logits, model(input_ids=x).logits)


def test_code_tokenizer_gives_the_base_ids_on_code():
    """The zoo code expert's 16 tokens are special markers only: ordinary code tokenizes as the base does."""
    base = train_base_tokenizer(TEXTS * 4, vocab_size=300, model_max_length=512)
    code = extend_for_code(base)
    assert len(code) == len(base) + 16 and all(code.added_tokens_decoder[len(base) + k].special for k in range(16))
    assert code.convert_ids_to_tokens(list(range(len(base), len(code)))) == list(CODE_TOKENS)
    snippets = TEXTS + ["class A:\n    def f(self, x):\n        if x is None:\n            return 1\n",
                        "import os\nfrom typing import Any\n\n\ndef g(*args, **kw):\n    yield from args\n"]
    for text in snippets:
        assert code(text)["input_ids"] == base(text)["input_ids"]
