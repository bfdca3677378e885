"""The generation path (validation, pseudo-labels) against the bound of a bare KV-cached greedy loop on the
same model and batch shapes (issue 20: ours at >= 0.9 of the bare loop's tokens/s).

Run: pytest -m perf tests/perf/test_bench_generation.py --benchmark-only -s
Both are timed in one run, interleaved, so machine load affects them alike; the ratio is what counts. The two
must write the same tokens, which the test checks first.
"""

import statistics
import time

import pytest
import torch

from harness.engine.generate import Decoding, generations
from tiny import tiny_llama, tiny_tokenizer

pytestmark = pytest.mark.perf

TEXTS = [f"def function_{i}(values):\n    return sum(v * {i} for v in values) + {i % 11}\n" * 3 for i in range(64)]
NEW_TOKENS = 64
BATCH = 16


@torch.no_grad()
def bare_greedy(model, ids: torch.Tensor, mask: torch.Tensor, max_new: int, eos: int) -> torch.Tensor:
    """The bound: one prefill, then one forward of the newest tokens per step against the KV cache; argmax;
    rows past EOS keep going (masked out of the result), the loop ends when every row has ended."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    token = out.logits[:, -1].argmax(-1)
    tokens, done = [token], token == eos
    position = positions[:, -1:]
    for _ in range(max_new - 1):
        if bool(done.all()):
            break
        mask = torch.cat([mask, torch.ones_like(token)[:, None]], dim=1)
        position = position + 1
        out = model(input_ids=token[:, None], attention_mask=mask, position_ids=position,
                    past_key_values=out.past_key_values, use_cache=True)
        token = torch.where(done, torch.full_like(token, eos), out.logits[:, -1].argmax(-1))
        tokens.append(token)
        done = done | (token == eos)
    return torch.stack(tokens, dim=1)


def left_padded(prompts: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(prompt)
        mask[row, width - len(prompt):] = 1
    return ids, mask


def test_generation_against_the_bare_loop(benchmark):
    torch.set_num_threads(2)
    tok = tiny_tokenizer(TEXTS, vocab_size=400)
    model = tiny_llama(tok, hidden=128, layers=4, heads=4, seed=0).eval()
    model.generation_config.eos_token_id = None  # neither path may stop early for a reason the other lacks
    # One batch of similar lengths, as the path forms them (it sorts by length).
    prompts = sorted((tok(t[: 40 + 3 * i])["input_ids"] for i, t in enumerate(TEXTS[:BATCH])), key=len, reverse=True)
    decoding = Decoding(max_new_tokens=NEW_TOKENS)
    ids, mask = left_padded(prompts, tok.pad_token_id)

    ours = [tok(g.text, add_special_tokens=False)["input_ids"] for g in
            generations(model, tok, prompts, decoding, batch_size=BATCH)]
    bare = bare_greedy(model, ids, mask, NEW_TOKENS, tok.eos_token_id)
    bare_texts = tok.batch_decode(bare, skip_special_tokens=True)
    assert [tok(t, add_special_tokens=False)["input_ids"] for t in bare_texts] == ours  # the same tokens

    def time_ours() -> float:
        start = time.perf_counter()
        generations(model, tok, prompts, decoding, batch_size=BATCH)
        return time.perf_counter() - start

    def time_bare() -> float:
        start = time.perf_counter()
        bare_greedy(model, ids, mask, NEW_TOKENS, tok.eos_token_id)
        return time.perf_counter() - start

    ours_s, bare_s = [], []
    for _ in range(5):  # interleaved
        ours_s.append(time_ours())
        bare_s.append(time_bare())
    benchmark.pedantic(time_ours, rounds=1, iterations=1)
    tokens = BATCH * NEW_TOKENS
    ours_tps, bare_tps = tokens / statistics.median(ours_s), tokens / statistics.median(bare_s)
    ratio = ours_tps / bare_tps
    benchmark.extra_info.update(ours_tokens_per_s=round(ours_tps), bare_tokens_per_s=round(bare_tps),
                                ratio=round(ratio, 3))
    print(f"\ngeneration: ours {ours_tps:.0f} tok/s, bare KV-cached loop {bare_tps:.0f} tok/s, ratio {ratio:.2f}")
    assert ratio > 0  # the figure is the deliverable; issue 20's target (>= 0.9) is read from it, not asserted yet
