"""ProxyTuning: combined logits, cached decoding equal to recomputation, and the decoder driving the
harness's generation path and lm-eval benchmarks."""

from __future__ import annotations

import pytest
import torch

from methods.proxytuning import ProxyTuned, VocabularyMismatch, token_map

pytestmark = pytest.mark.usefixtures("data_cache")


@pytest.fixture(scope="module")
def trio():
    """A target, an expert with two extra tokens (a bigger vocabulary, ids shifted nowhere) and an anti-expert."""
    from tiny import benchmark_llama as tiny_llama, benchmark_tokenizer as tiny_tokenizer

    tok = tiny_tokenizer()
    expert_tok = tiny_tokenizer()
    expert_tok.add_special_tokens({"additional_special_tokens": ["<PRE>", "<SUF>"]})
    target = tiny_llama(tok, hidden=32, seed=1)
    expert = tiny_llama(expert_tok, hidden=16, seed=2)
    anti = tiny_llama(tok, hidden=16, seed=3)
    rows = lambda m: m.get_input_embeddings().weight.shape[0]  # noqa: E731
    proxy = ProxyTuned(target, expert, anti, alpha=1.0,
                       expert_map=token_map(expert_tok, tok, rows(expert), rows(target), "expert"),
                       anti_map=token_map(tok, tok, rows(anti), rows(target), "anti-expert"))
    return proxy.eval(), tok


def test_combined_logits_are_target_plus_alpha_expert_minus_anti(trio):
    proxy, tok = trio
    ids = torch.tensor([tok("def add(a, b):\n    return")["input_ids"]])
    with torch.no_grad():
        t, e, a = (m(ids).logits for m in (proxy.target, proxy.expert, proxy.anti_expert))
        combined = proxy(ids).logits
    k = t.shape[-1]
    assert e.shape[-1] == k + 2  # the expert's extra tokens are not in the target's vocabulary
    torch.testing.assert_close(combined, t + 1.0 * (e[..., :k] - a))
    proxy.alpha = 0.5
    try:
        with torch.no_grad():
            torch.testing.assert_close(proxy(ids).logits, t + 0.5 * (e[..., :k] - a))
    finally:
        proxy.alpha = 1.0


def test_cached_decoding_gives_the_tokens_of_recomputation(trio):
    proxy, tok = trio
    prompts = ["def add(a, b):\n", "import collections\nclass Counter"]
    enc = [tok(p)["input_ids"] for p in prompts]
    width = max(map(len, enc))
    ids = torch.full((2, width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, e in enumerate(enc):  # left padding, as the generation path pads
        ids[i, width - len(e):], mask[i, width - len(e):] = torch.tensor(e), 1
    cached = proxy.generate(ids, mask, max_new_tokens=12, eos_token_id=-1, use_cache=True)
    recomputed = proxy.generate(ids, mask, max_new_tokens=12, eos_token_id=-1, use_cache=False)
    assert cached.shape == (2, width + 12)
    assert torch.equal(cached, recomputed)
    # And the first new token is the argmax of the combined logits at the prompt's end.
    with torch.no_grad():
        first = proxy(ids[:1, width - len(enc[0]):]).logits[0, -1].argmax()
    assert int(cached[0, width]) == int(first)


def test_stop_strings_end_rows_where_decoding_the_whole_continuation_would(trio):
    """Only the newest tokens are decoded for the stop check; rows stop at the very token a check of the whole
    continuation stops at."""
    proxy, tok = trio
    prompts = ["def add(a, b):\n", "import collections\nclass Counter", "x = [", "# a comment\n"]
    enc = [tok(p)["input_ids"] for p in prompts]
    width = max(map(len, enc))
    ids = torch.full((len(enc), width), tok.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, e in enumerate(enc):
        ids[i, width - len(e):], mask[i, width - len(e):] = torch.tensor(e), 1
    free = proxy.generate(ids, mask, max_new_tokens=24, eos_token_id=-1)
    texts = [tok.decode(row[width:], skip_special_tokens=True) for row in free]
    # Stops the free continuations do write, some late: a few characters from the middle of each row's text.
    stops = [t[len(t) // 2: len(t) // 2 + 3] for t in texts if len(t) > 8][:2]
    assert stops
    stopped = proxy.generate(ids, mask, max_new_tokens=24, eos_token_id=-1, stop_strings=stops, tokenizer=tok,
                             pad_token_id=tok.pad_token_id)
    for row, free_row in zip(stopped, free):
        new = free_row[width:].tolist()
        # The reference: the first length at which the decoded continuation holds a stop.
        end = next((n for n in range(1, len(new) + 1)
                    if any(s in tok.decode(new[:n], skip_special_tokens=True) for s in stops)), len(new))
        assert row[width: width + end].tolist() == new[:end]
        assert all(int(t) == tok.pad_token_id for t in row[width + end:])


def test_vocabularies_must_cover_the_target(trio):
    from tiny import benchmark_tokenizer as tiny_tokenizer

    _, tok = trio
    other = tiny_tokenizer(vocab_size=300)  # a different BPE: most target tokens have no counterpart
    with pytest.raises(VocabularyMismatch, match="expert"):
        token_map(other, tok, len(other), len(tok), "expert")


def test_the_decoder_drives_validation_and_benchmarks(trio):
    from harness.engine.evaluation import evaluate_model
    from harness.engine.validation import generate_responses

    proxy, tok = trio
    [text] = generate_responses(proxy, tok, ["Write a function."], max_new_tokens=6, batch_size=1,
                                max_prompt_tokens=64)
    assert isinstance(text, str)
    results = evaluate_model(proxy, tok, ["mmlu-cs", "humaneval"], limit=2, max_new_tokens=8, batch_size=2)
    assert results["mmlu-cs"].n_items == 2 and results["humaneval"].n_items == 2
    assert results["mmlu-cs"].metrics["bits_per_byte"]["value"] > 0
