"""Tests of the Pen2Sword embedding transfer (paper §4.4, eq. 2–7) on tiny in-test models."""

from __future__ import annotations

import hashlib
import json
import os
import random

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AddedToken,
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from methods.pen2sword.transfer import (
    REPORT_FILENAME,
    TransferOptions,
    build_vocab_union,
    expand_hidden,
    expand_rows,
    fuse,
    official_column_map,
    replicate_columns,
    sample_column_map,
    seeded_generator,
    transfer,
    transfer_embeddings,
    transfer_to_dir,
)

# Shared tokens sit at different ids in the two vocabularies, so pairing by id would be caught.
TARGET_WORDS = ["<pad>", "<s>", "</s>", "<unk>", "the", "cat", "sat", "on", "mat", "rug", "dog", "ran"]
EXPERT_WORDS = ["<pad>", "<s>", "</s>", "<unk>", "def", "dog", "ran", "the", "cat", "sat", "on", "return", "lambda"]
EXPERT_SPECIAL = ["<fim>"]
EXPERT_ONLY = ["def", "return", "lambda", "<fim>"]
K_T, K_UNION = len(TARGET_WORDS), len(TARGET_WORDS) + len(EXPERT_ONLY)
D_S, D_T = 16, 24


def make_tokenizer(words: list[str], special_extra: list[str] = ()) -> PreTrainedTokenizerFast:
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    if special_extra:
        tok.add_tokens([AddedToken(t, special=True) for t in special_extra])
    return tok


def make_llama(vocab_size: int, hidden: int, *, tie: bool = False, pad_token_id: int | None = None, seed: int = 0):
    torch.manual_seed(seed)
    config = LlamaConfig(
        hidden_size=hidden, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, vocab_size=vocab_size, max_position_embeddings=64,
        tie_word_embeddings=tie, pad_token_id=pad_token_id,
    )
    return LlamaForCausalLM(config).eval()


def make_pair(*, tie: bool = False, pad_token_id: int | None = None):
    expert_tok = make_tokenizer(EXPERT_WORDS, EXPERT_SPECIAL)
    target_tok = make_tokenizer(TARGET_WORDS)
    expert = make_llama(len(expert_tok), D_S, seed=1)
    target = make_llama(len(target_tok), D_T, tie=tie, pad_token_id=pad_token_id, seed=2)
    return expert, expert_tok, target, target_tok


def rescaled_new_rows(E_hat: torch.Tensor, original_head: torch.Tensor) -> torch.Tensor:
    """The untied lm_head rows of the new tokens: their rows of Ê at the old rows' mean norm."""
    new = E_hat[K_T:]
    return new * (original_head.norm(dim=1).mean() / new.norm(dim=1, keepdim=True))


def vocabs() -> tuple[dict[str, int], dict[str, int]]:
    return make_tokenizer(EXPERT_WORDS, EXPERT_SPECIAL).get_vocab(), make_tokenizer(TARGET_WORDS).get_vocab()


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


# --- eq. 4–6: hidden-size expansion ---------------------------------------------------------


def test_column_map_keeps_originals_draws_new_sources_in_range_and_follows_the_seed():
    f = sample_column_map(D_S, 4 * D_S, torch.Generator().manual_seed(0))
    assert torch.equal(f[:D_S], torch.arange(D_S))
    assert int(f[D_S:].min()) >= 0 and int(f[D_S:].max()) < D_S
    again = sample_column_map(D_S, 4 * D_S, torch.Generator().manual_seed(0))
    other = sample_column_map(D_S, 4 * D_S, torch.Generator().manual_seed(1))
    assert torch.equal(f, again)
    assert not torch.equal(f, other)


def test_each_replication_group_sums_to_its_source_column():
    E1 = torch.randn(50, 6)
    E2, f = expand_hidden(E1, 20, torch.Generator().manual_seed(3))
    c = torch.bincount(f, minlength=6)
    assert int(c.max()) > 1, "the draw should replicate some column"
    for source in range(6):
        group = (f == source).nonzero().squeeze(1)
        assert torch.allclose(E2[:, group].sum(1), E1[:, source], atol=1e-6)
        for i in group.tolist():  # eq. 6: every member, the original included, is divided by c
            assert torch.equal(E2[:, i], E1[:, source] / c[source])


def test_equal_widths_is_the_identity():
    E1 = torch.randn(7, 5)
    E2, f = expand_hidden(E1, 5, torch.Generator().manual_seed(0))
    assert torch.equal(f, torch.arange(5)) and torch.equal(E2, E1)
    E_S, E_T = torch.randn(K_T, 5), torch.randn(K_T, 5)
    vocab = make_tokenizer(TARGET_WORDS).get_vocab()
    E_hat, _, report = transfer_embeddings(E_S, vocab, E_T, vocab, TransferOptions(compat="official", alpha=1.0))
    assert torch.equal(E_hat, E_S)
    assert report["official"]["official_code_would_crash"] is True


def test_wider_expert_is_refused_naming_both_sizes():
    with pytest.raises(ValueError, match=r"d_S=8.*d_T=6"):
        expand_hidden(torch.randn(3, 8), 6, None)
    vocab_S, vocab_T = vocabs()
    with pytest.raises(ValueError, match=r"d_S=8.*d_T=6"):
        transfer_embeddings(torch.randn(len(vocab_S), 8), vocab_S, torch.randn(K_T, 6), vocab_T)


def _official_expand_transcribed(org: torch.Tensor, target_col: int, match: dict[int, int]) -> torch.Tensor:
    """The official loop (bert2BERT expand_fpi as in pengmeishu/Pen2Sword), written out plainly."""
    row, col = org.shape
    new = torch.zeros(row, target_col)
    new[:, :col] = org
    count: dict[int, int] = {}
    for choice in match.values():
        count[choice] = count.get(choice, 0) + 1
    for source, n in count.items():
        new[:, source] /= n + 1
    for j in range(min(match), target_col):
        new[:, j] = new[:, match[j]]
    return new


def test_official_column_map_and_division_match_the_official_loop():
    d_S, d_T, seed = 10, 17, 42
    f = official_column_map(d_S, d_T, seed)
    rng = random.Random(seed)
    match = {j: rng.randint(0, d_S - 1) for j in range(d_S, d_T)}
    assert f[d_S:].tolist() == [match[j] for j in range(d_S, d_T)]
    E1 = torch.randn(9, d_S)
    E2, _ = replicate_columns(E1, f)
    assert torch.allclose(E2, _official_expand_transcribed(E1, d_T, match), rtol=1e-6, atol=0)


# --- eq. 7: fusion ---------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_fused_rows_are_exactly_the_convex_combination(alpha):
    a, b = torch.randn(30, 12), torch.randn(30, 12)
    expected = alpha * a + (1 - alpha) * b
    assert torch.equal(fuse(a, b, alpha), expected)
    assert torch.equal(fuse(a.clone(), b.clone(), alpha, inplace=True), expected)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_alpha_outside_unit_interval_is_refused_naming_the_value(alpha):
    with pytest.raises(ValueError, match=f"alpha={alpha!r}"):
        fuse(torch.zeros(2, 2), torch.zeros(2, 2), alpha)
    with pytest.raises(ValueError, match=f"TransferOptions.alpha={alpha!r}"):
        TransferOptions(alpha=alpha)


# --- eq. 2–3: vocabulary union ---------------------------------------------------------------


def test_union_keeps_target_ids_appends_expert_only_tokens_and_pairs_rows_by_string():
    vocab_S, vocab_T = vocabs()
    union = build_vocab_union(vocab_S, vocab_T, len(vocab_S), len(vocab_T))
    assert union.size == K_UNION
    assert (union.shared_count, union.target_only_count) == (10, 2)
    assert union.expert_only_tokens == EXPERT_ONLY
    assert torch.equal(union.target_ids, torch.arange(K_T))
    assert union.target_rows[:K_T].tolist() == list(range(K_T))
    assert union.target_rows[K_T:].tolist() == [-1] * len(EXPERT_ONLY)
    assert union.expert_rows[K_T:].tolist() == [vocab_S[t] for t in EXPERT_ONLY]
    assert union.expert_rows[vocab_T["mat"]] == -1 and union.expert_rows[vocab_T["rug"]] == -1

    E_S = torch.randn(len(vocab_S), 4)
    E_S1 = expand_rows(E_S, union.expert_rows, torch.Generator().manual_seed(0))
    for tok in set(vocab_S) & set(vocab_T):
        assert torch.equal(E_S1[vocab_T[tok]], E_S[vocab_S[tok]]), tok
    assert vocab_S["dog"] != vocab_T["dog"]  # the pairing above really crossed ids


def test_a_target_vocabulary_with_holes_is_refused():
    with pytest.raises(ValueError, match=r"target tokenizer ids are not exactly 0\.\.2"):
        build_vocab_union({"a": 0}, {"a": 0, "b": 1, "c": 5}, 1, 6)


def test_rows_a_model_lacks_are_standard_normal():
    vocab_T = {f"t{i}": i for i in range(2000)}
    vocab_S = {f"t{i}": i for i in range(10)}
    union = build_vocab_union(vocab_S, vocab_T, 10, 2000)
    E_S = torch.randn(10, 32) * 0.02
    missing = union.expert_rows < 0
    for std in (1.0, 0.1):
        E_S1 = expand_rows(E_S, union.expert_rows, torch.Generator().manual_seed(0), std)
        filled = E_S1[missing]
        assert abs(float(filled.mean())) < 0.03 * std
        assert abs(float(filled.std()) - std) < 0.03 * std
        assert torch.equal(E_S1[~missing], E_S)


def test_transfer_embeddings_takes_each_models_own_row_per_token():
    vocab_S, vocab_T = vocabs()
    E_S, E_T = torch.randn(len(vocab_S), 6), torch.randn(K_T, 6)
    only_expert, _, _ = transfer_embeddings(E_S, vocab_S, E_T, vocab_T, TransferOptions(alpha=1.0))
    only_target, _, _ = transfer_embeddings(E_S, vocab_S, E_T, vocab_T, TransferOptions(alpha=0.0))
    for tok in set(vocab_S) & set(vocab_T):
        assert torch.equal(only_expert[vocab_T[tok]], E_S[vocab_S[tok]]), tok
    for k, tok in enumerate(EXPERT_ONLY):
        assert torch.equal(only_expert[K_T + k], E_S[vocab_S[tok]]), tok
    assert torch.equal(only_target[:K_T], E_T)


# --- the model-level transfer ----------------------------------------------------------------


def test_transfer_installs_fused_rows_and_extends_the_tokenizer():
    expert, expert_tok, target, target_tok = make_pair()
    E_S = expert.get_input_embeddings().weight.detach().clone()
    E_T = target.get_input_embeddings().weight.detach().clone()
    vocab_S, vocab_T = expert_tok.get_vocab(), target_tok.get_vocab()
    result = transfer(expert, expert_tok, target, target_tok, TransferOptions())

    assert len(result.tokenizer) == K_UNION and result.model.config.vocab_size == K_UNION
    weight = result.model.get_input_embeddings().weight.detach()
    assert torch.equal(weight, result.embedding)

    f = sample_column_map(D_S, D_T, seeded_generator(0, "columns"))
    c = torch.bincount(f, minlength=D_S)

    def expanded(row: torch.Tensor) -> torch.Tensor:  # eq. 4–6 for one row
        return row[f] / c[f]

    # A shared token whose ids differ: its own expert row and its own target row, fused (eq. 7).
    expected = 0.5 * expanded(E_S[vocab_S["dog"]]) + 0.5 * E_T[vocab_T["dog"]]
    assert torch.allclose(weight[vocab_T["dog"]], expected, rtol=1e-6, atol=0)

    # Expert-only tokens: the extended tokenizer maps them to the rows built for them.
    z_T = expand_rows(E_T, result.union.target_rows, seeded_generator(0, "target_rows"))
    for k, tok in enumerate(EXPERT_ONLY):
        new_id = K_T + k
        assert result.tokenizer.convert_tokens_to_ids(tok) == new_id
        expected = 0.5 * expanded(E_S[vocab_S[tok]]) + 0.5 * z_T[new_id]
        assert torch.allclose(weight[new_id], expected, rtol=1e-6, atol=0), tok
    encoded = result.tokenizer("the def cat", add_special_tokens=False)["input_ids"]
    assert encoded == [vocab_T["the"], K_T, vocab_T["cat"]]
    assert result.tokenizer.added_tokens_decoder[K_UNION - 1].special  # <fim> stays special
    assert not result.tokenizer.added_tokens_decoder[K_T].special  # def is a plain token

    report = result.report
    assert json.loads(json.dumps(report)) == report
    assert (report["d_S"], report["d_T"], report["k_T"], report["k_union"]) == (D_S, D_T, K_T, K_UNION)
    assert report["expert_only_tokens_first"] == EXPERT_ONLY and report["alpha"] == 0.5
    assert report["columns"]["max_c"] == int(c.max())


def _train_one_step(model, ids: torch.Tensor) -> torch.Tensor:
    """One SGD step on the input embedding; which rows changed. Every id in ``ids`` gets a
    gradient: a trailing token is appended, since the last position's logits have no label."""
    weight = model.get_input_embeddings().weight
    before = weight.detach().clone()
    model.train()
    weight.requires_grad_(True)
    sequence = torch.cat([ids, ids[:1]])[None]
    model(input_ids=sequence, labels=sequence).loss.backward()
    torch.optim.SGD([weight], lr=1.0).step()
    return (weight.detach() != before).any(1)


def test_no_real_token_row_is_frozen_after_transfer():
    # pad_token_id on <unk>, a real token: HF builds nn.Embedding(padding_idx=3), freezing its row.
    expert, expert_tok, target, target_tok = make_pair(pad_token_id=TARGET_WORDS.index("<unk>"))
    assert target.get_input_embeddings().padding_idx == 3
    result = transfer(expert, expert_tok, target, target_tok, TransferOptions())
    assert result.model.get_input_embeddings().padding_idx is None
    assert result.model.config.pad_token_id is None
    assert result.report["padding"]["padding_idx_before"] == 3
    changed = _train_one_step(result.model, torch.arange(K_UNION))
    assert changed.all(), f"rows left unchanged by a gradient step: {(~changed).nonzero().flatten().tolist()}"

    # The official mode's padding_idx=0 does freeze row 0 (what the test above guards against).
    expert, expert_tok, target, target_tok = make_pair()
    official = transfer(expert, expert_tok, target, target_tok, TransferOptions(compat="official"))
    changed = _train_one_step(official.model, torch.arange(K_T))
    assert not changed[0] and changed[1:].all()


def test_a_dedicated_pad_token_keeps_its_padding_idx():
    expert, expert_tok, target, target_tok = make_pair(pad_token_id=TARGET_WORDS.index("<pad>"))
    result = transfer(expert, expert_tok, target, target_tok, TransferOptions())
    assert result.model.get_input_embeddings().padding_idx == 0
    assert result.model.config.pad_token_id == 0


def test_tied_target_stays_tied_with_keep():
    expert, expert_tok, target, target_tok = make_pair(tie=True)
    result = transfer(expert, expert_tok, target, target_tok, TransferOptions(tie_word_embeddings="keep"))
    model = result.model
    assert model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert model.config.tie_word_embeddings is True
    assert torch.equal(model.get_output_embeddings().weight.detach(), result.embedding)
    tie = result.report["tie"]
    assert tie["tied_before"] and tie["tied_after"]


def test_untie_gives_a_separate_lm_head_holding_the_original_output_rows():
    expert, expert_tok, target, target_tok = make_pair(tie=True)
    original = target.get_output_embeddings().weight.detach().clone()
    result = transfer(expert, expert_tok, target, target_tok, TransferOptions(tie_word_embeddings="untie"))
    model = result.model
    lm_head = model.get_output_embeddings().weight.detach()
    assert lm_head.data_ptr() != model.get_input_embeddings().weight.data_ptr()
    assert model.config.tie_word_embeddings is False
    assert torch.equal(lm_head[:K_T], original)
    assert torch.allclose(lm_head[K_T:], rescaled_new_rows(result.embedding, original))  # Ê rows, old norm
    assert result.report["tie"]["tied_before"] and not result.report["tie"]["tied_after"]
    assert result.report["tie"]["lm_head_rows_from_E_hat"] == len(EXPERT_ONLY)


def test_untied_target_keeps_its_output_rows_for_old_tokens():
    expert, expert_tok, target, target_tok = make_pair(tie=False)
    original = target.get_output_embeddings().weight.detach().clone()
    result = transfer(expert, expert_tok, target, target_tok, TransferOptions())
    lm_head = result.model.get_output_embeddings().weight.detach()
    assert lm_head.shape == (K_UNION, D_T)
    assert torch.equal(lm_head[:K_T], original)
    assert torch.allclose(lm_head[K_T:], rescaled_new_rows(result.embedding, original))
    assert result.report["tie"]["lm_head_new_row_norms"]["rescaled_to"] == pytest.approx(
        float(original.norm(dim=1).mean()))
    assert result.model.config.tie_word_embeddings is False
    assert "E_hat" in result.report["tie"]["lm_head"]


# --- official-code compatibility --------------------------------------------------------------


def test_official_mode_pairs_rows_by_id_truncates_and_mean_fills():
    vocab_S, vocab_T = vocabs()
    E_S, E_T = torch.randn(len(vocab_S), 8), torch.randn(K_T, 8)
    options = TransferOptions(compat="official", alpha=1.0)
    E_hat, union, report = transfer_embeddings(E_S, vocab_S, E_T, vocab_T, options)
    assert union.size == K_T and E_hat.shape == (K_T, 8)
    assert torch.equal(E_hat, E_S[:K_T])  # by id, whatever the tokens: "dog" gets the row of "ran"
    assert report["official"]["expert_rows_truncated"] == len(vocab_S) - K_T
    assert report["official"]["id_pairs_with_different_strings"] > 0

    short = E_S[:10]
    E_hat, _, _ = transfer_embeddings(short, vocab_S, E_T, vocab_T, options)
    assert torch.allclose(E_hat[10:], short.mean(0).expand(2, -1))
    assert TransferOptions(compat="official").effective_alpha == 0.25
    assert TransferOptions().effective_alpha == 0.5


def test_official_mode_on_models_freezes_row_zero_unties_and_keeps_the_tokenizer():
    expert, expert_tok, target, target_tok = make_pair(tie=True)
    original = target.get_output_embeddings().weight.detach().clone()
    result = transfer(expert, expert_tok, target, target_tok, TransferOptions(compat="official"))
    model = result.model
    assert result.report["alpha"] == 0.25
    assert model.get_input_embeddings().padding_idx == 0 and model.config.pad_token_id == 0
    assert len(result.tokenizer) == K_T and model.config.vocab_size == K_T
    assert torch.equal(model.get_output_embeddings().weight.detach(), original)
    assert result.report["tie"]["tied_before"] and not result.report["tie"]["tied_after"]


# --- ablations and the fitted maps -----------------------------------------------------------


def test_noise_expansion_keeps_the_expert_columns_and_adds_noise():
    vocab = {f"t{i}": i for i in range(500)}
    E_S, E_T = torch.randn(500, 8) * 0.3, torch.randn(500, 24)
    E_hat, _, report = transfer_embeddings(E_S, vocab, E_T, vocab, TransferOptions(expansion="noise", alpha=1.0))
    assert torch.equal(E_hat[:, :8], E_S)
    assert report["columns"]["noise_std"] == pytest.approx(float(E_S.std()))
    assert float(E_hat[:, 8:].std()) == pytest.approx(float(E_S.std()), rel=0.05)
    E_hat, _, _ = transfer_embeddings(
        E_S, vocab, E_T, vocab, TransferOptions(expansion="noise", alpha=1.0, noise_std=2.0)
    )
    assert float(E_hat[:, 8:].std()) == pytest.approx(2.0, rel=0.05)


def test_fitted_maps_beat_replication_when_the_target_is_a_linear_image_of_the_expert():
    vocab = {f"t{i}": i for i in range(300)}
    E_S = torch.randn(300, 8)
    R = torch.randn(8, 12)
    E_T = E_S @ R

    def error(expansion: str, E_T: torch.Tensor) -> float:
        E_hat, _, _ = transfer_embeddings(E_S, vocab, E_T, vocab, TransferOptions(expansion=expansion, alpha=1.0))
        return relative_error(E_hat, E_T)

    replicate = error("replicate", E_T)
    assert error("lstsq", E_T) < 1e-4
    assert error("procrustes", E_T) < replicate
    Q = torch.linalg.qr(torch.randn(12, 8)).Q.T  # 8×12 with orthonormal rows
    rotated = 2.5 * E_S @ Q
    assert error("procrustes", rotated) < 1e-4
    assert error("procrustes", rotated) < error("replicate", rotated)


def test_without_fusion_the_expanded_expert_is_used_alone():
    vocab_S, vocab_T = vocabs()
    E_S, E_T = torch.randn(len(vocab_S), 8), torch.randn(K_T, 12)
    E_hat, union, report = transfer_embeddings(E_S, vocab_S, E_T, vocab_T, TransferOptions(fusion=False))
    E_S1 = expand_rows(E_S, union.expert_rows, seeded_generator(0, "expert_rows"))
    E_S2, _ = expand_hidden(E_S1, 12, seeded_generator(0, "columns"))
    assert torch.equal(E_hat, E_S2) and report["alpha"] == 1.0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"compat": "bogus"}, r"compat='bogus'.*'paper', 'official'"),
        ({"expansion": "pca"}, r"expansion='pca'.*'replicate'"),
        ({"compat": "official", "expansion": "lstsq"}, r"expansion='lstsq'.*compat='official'"),
        ({"fusion": False, "alpha": 0.5}, r"fusion=False.*alpha=0.5"),
        ({"noise_std": 0.1}, r"noise_std=0.1.*expansion='noise'"),
        ({"seed": -1}, r"seed=-1"),
        ({"missing_std": 0.0}, r"missing_std=0.0"),
        ({"tie_word_embeddings": "yes"}, r"tie_word_embeddings='yes'.*'keep', 'untie'"),
    ],
)
def test_bad_options_are_refused_naming_field_and_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TransferOptions(**kwargs)


# --- on disk ---------------------------------------------------------------------------------


def test_transfer_to_dir_round_trip(tmp_path):
    expert, expert_tok, target, target_tok = make_pair(tie=True)
    for name, model, tok in (("expert", expert, expert_tok), ("target", target, target_tok)):
        model.save_pretrained(tmp_path / name)
        tok.save_pretrained(tmp_path / name)
    out = tmp_path / "transferred"
    report = transfer_to_dir(tmp_path / "expert", tmp_path / "target", out, TransferOptions(seed=3))

    reloaded = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    weight = reloaded.get_input_embeddings().weight.detach().contiguous()
    assert hashlib.sha256(weight.numpy().tobytes()).hexdigest() == report["fused_sha256"]
    assert reloaded.get_output_embeddings().weight.data_ptr() == weight.data_ptr()  # still tied
    assert len(AutoTokenizer.from_pretrained(out, local_files_only=True)) == K_UNION
    saved = json.loads((out / REPORT_FILENAME).read_text())
    assert saved["alpha"] == 0.5 and saved["seed"] == 3 and saved == report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expert", "target", "transferred"]
    with pytest.raises(FileExistsError, match="transferred"):
        transfer_to_dir(tmp_path / "expert", tmp_path / "target", out)
