"""The generation path's own loop (harness.engine.generate.decode) writes the tokens transformers' generate
writes; with compact=True, rows that have finished leave the batch (and the KV cache) at once."""

from __future__ import annotations

import pytest
import torch

from harness.engine.generate import CachedSteps, Decoding, decode, generate_ids, generations, left_padded
from tiny import tiny_llama, tiny_tokenizer

TEXTS = [f"def function_{i}(values):\n    return sum(v * {i} for v in values) + {i % 7}\n" * 2 for i in range(24)]
NEW = 24


@pytest.fixture(scope="module")
def pair():
    tok = tiny_tokenizer(TEXTS, vocab_size=400)
    model = tiny_llama(tok, hidden=64, layers=2, seed=3).eval()
    model.generation_config.eos_token_id = None  # the end token is chosen by each test
    prompts = [tok(t[: 12 + 5 * i])["input_ids"] for i, t in enumerate(TEXTS[:8])]  # lengths differ
    return model, tok, prompts


def hf_rows(model, tok, prompts, end: int, **kwargs) -> list[list[int]]:
    """transformers' greedy continuation of each prompt, through its end token (the pads after it dropped)."""
    ids, mask = left_padded(prompts, tok.pad_token_id)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=NEW,
                             eos_token_id=[end], pad_token_id=tok.pad_token_id, **kwargs)[:, ids.shape[1]:]
    rows = []
    for row in out.tolist():
        rows.append(row[: row.index(end) + 1] if end in row else row)
    return rows


def an_end_token_rows_reach_at_different_steps(model, tok, prompts) -> int:
    """A token the free continuations write at different steps (or not at all), to serve as the end token: rows
    then finish at different lengths, which is what compaction acts on."""
    free = hf_rows(model, tok, prompts, end=-1)
    for candidate in sorted({t for row in free for t in row}):
        firsts = {row.index(candidate) if candidate in row else NEW for row in free}
        if len(firsts) >= 3:
            return candidate
    pytest.fail("no token ends the free continuations at three different steps; choose other prompts")


def test_the_loop_writes_transformers_tokens_with_and_without_compaction(pair):
    model, tok, prompts = pair
    end = an_end_token_rows_reach_at_different_steps(model, tok, prompts)
    reference = hf_rows(model, tok, prompts, end)
    assert len({len(r) for r in reference}) >= 3  # rows finish at different steps
    ids, mask = left_padded(prompts, tok.pad_token_id)
    for compact in (True, False):
        tokens, ended = decode(CachedSteps(model), ids, mask, max_new_tokens=NEW, ends=[end], compact=compact,
                               pad=tok.pad_token_id)
        assert tokens == reference, f"compact={compact}"
        assert ended == [row[-1] == end for row in reference]


def test_finished_rows_leave_the_batch(pair):
    model, tok, prompts = pair
    end = an_end_token_rows_reach_at_different_steps(model, tok, prompts)
    widths: list[int] = []

    class Counted(CachedSteps):
        def __call__(self, ids, mask, positions):
            widths.append(ids.shape[0])
            return super().__call__(ids, mask, positions)

    ids, mask = left_padded(prompts, tok.pad_token_id)
    tokens, _ = decode(Counted(model), ids, mask, max_new_tokens=NEW, ends=[end], compact=True)
    assert widths[0] == len(prompts)
    assert widths == sorted(widths, reverse=True) and widths[-1] < len(prompts)
    # Each step computes only the rows still writing: one row-step per token written (the prefill aside,
    # and the last token of each row, which needs no step after it).
    assert sum(widths[1:]) == sum(len(t) for t in tokens) - len(prompts)


def test_stop_strings_and_content_first_as_transformers_generate(pair):
    """generations() with stop strings: the texts transformers' generate (stop_strings) gives, cut the same way."""
    model, tok, prompts = pair
    free = [tok.decode(r, skip_special_tokens=True) for r in hf_rows(model, tok, prompts, end=-1)]
    stops = tuple(sorted({t[len(t) // 2: len(t) // 2 + 2] for t in free if len(t) > 6}))[:2]
    assert stops
    decoding = Decoding(NEW, stop=stops)
    ours = generations(model, tok, prompts, decoding, batch_size=3)
    ids, mask = left_padded(prompts, tok.pad_token_id)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=NEW,
                             pad_token_id=tok.pad_token_id, eos_token_id=[tok.eos_token_id],
                             stop_strings=list(stops), tokenizer=tok)[:, ids.shape[1]:]
    texts = tok.batch_decode(out, skip_special_tokens=True)
    expected = [t[: min((t.find(s) for s in stops if s in t), default=len(t))] for t in texts]
    assert [g.text for g in ours] == expected
    assert any(g.ended for g in ours) and any(g.text != f for g, f in zip(ours, free))  # some rows did stop


def test_the_cache_grows_in_place_and_holds_what_a_dynamic_cache_holds(pair, monkeypatch):
    """kv_cache's layers write each step into room set aside (a new buffer only when room runs out, doubling),
    and hold the very keys and values transformers' DynamicCache concatenates, also after rows leave."""
    from transformers.cache_utils import DynamicCache

    from harness.engine.generate import GrowingLayer, kv_cache

    model, tok, prompts = pair
    ids, mask = left_padded(prompts, tok.pad_token_id)
    ours, theirs = kv_cache(model), DynamicCache()
    assert all(isinstance(layer, GrowingLayer) for layer in ours.layers)
    rooms = []
    grown = GrowingLayer._grown
    monkeypatch.setattr(GrowingLayer, "_grown", lambda self, old, fresh, room: rooms.append(room) or
                        grown(self, old, fresh, room))
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    token = ids
    with torch.no_grad():
        for step in range(3 * ids.shape[1]):
            out = [model(input_ids=token, attention_mask=mask, position_ids=positions, past_key_values=cache,
                         use_cache=True) for cache in (ours, theirs)]
            torch.testing.assert_close(out[0].logits, out[1].logits, rtol=0, atol=0)
            token = out[0].logits[:, -1:].argmax(-1)
            if step == ids.shape[1]:  # rows 1 and 3 leave
                keep = torch.tensor([0, 2] + list(range(4, token.shape[0])))
                for cache in (ours, theirs):
                    cache.batch_select_indices(keep)
                token, mask, positions = token[keep], mask[keep], positions[keep]
            mask = torch.cat([mask, torch.ones_like(token)], dim=1)
            positions = positions[:, -1:] + 1
    for a, b in zip(ours.layers, theirs.layers):
        assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)
    # 4W tokens in each layer's keys and values: room for W (the prompt), then 2W, then 4W; not one per step
    width = ids.shape[1]
    assert rooms == [width] * 2 * len(ours.layers) + [2 * width] * 2 * len(ours.layers) \
        + [4 * width] * 2 * len(ours.layers)


def test_lm_eval_generation_through_the_loop_gives_generates_texts(pair, monkeypatch):
    """Benchmarks decode through lm-eval's HFLM; ours (harness.engine.evaluation) runs greedy generation through
    the loop. With a task's stop sequences, the texts lm-eval keeps (cut at the first stop) are HFLM's own."""
    import copy

    from lm_eval.models.huggingface import HFLM

    from harness.engine import evaluation
    from harness.engine.evaluation import _LmEval

    calls = []
    monkeypatch.setattr(evaluation, "generate_ids", lambda *a, **k: calls.append(1) or generate_ids(*a, **k))
    model, tok, prompts = pair
    free = [tok.decode(r, skip_special_tokens=True) for r in hf_rows(model, tok, prompts, end=-1)]
    ids, mask = left_padded(prompts, tok.pad_token_id)
    lms = {"ours": _LmEval(model, tok, batch_size=8).lm,
           "HFLM": HFLM(pretrained=model, tokenizer=copy.deepcopy(tok), batch_size=8)}
    # Several sets of stop sequences, cut from the free texts at several places: byte-level tokens of the tiny
    # tokenizer split characters (U+FFFD in a partial decode), which a stop check on the newest tokens must survive.
    for at in (2, 3, 4, 5, 7):
        stops = sorted({t[len(t) // at: len(t) // at + 2] for t in free if len(t) > 6})[:3]
        texts = {}
        for name, lm in lms.items():
            out = lm._model_generate(ids, max_length=ids.shape[1] + NEW, stop=stops, attention_mask=mask,
                                     do_sample=False)
            rows = tok.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
            texts[name] = [t[: min((t.find(s) for s in stops if s in t), default=len(t))] for t in rows]
        assert texts["ours"] == texts["HFLM"], stops
        assert any(t != f for t, f in zip(texts["ours"], free)), stops  # stop sequences did cut
    assert len(calls) == 5  # ours went through the loop


def test_frozen_weights_cast_once_under_bf16_write_the_same_tokens(pair, monkeypatch):
    """Under bf16 autocast, frozen weights are cast once per generation (weights_cast_once), which must give the
    tokens a cast at every step gives, and leave every weight frozen as it was (also when decoding fails)."""
    import contextlib

    from harness.engine import generate as gen

    model, tok, prompts = pair
    model.requires_grad_(False)
    model.lm_head.weight.requires_grad_(True)  # a trainable weight keeps its flag too
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    decoding = Decoding(NEW)
    once = generations(model, tok, prompts, decoding, batch_size=3, precision="bf16")
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    with monkeypatch.context() as m:
        m.setattr(gen, "weights_cast_once", lambda model: contextlib.nullcontext())
        every_step = generations(model, tok, prompts, decoding, batch_size=3, precision="bf16")
    assert once == every_step
    with monkeypatch.context() as m:
        m.setattr(gen, "decode", lambda *a, **k: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            generations(model, tok, prompts, decoding, batch_size=3, precision="bf16")
    assert {name: p.requires_grad for name, p in model.named_parameters()} == flags
    model.requires_grad_(True)


def _byte_tokens(tok, text: str) -> list[int]:
    """One token per UTF-8 byte of ``text`` (the byte-level alphabet every tiny tokenizer holds)."""
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = [b for b in range(256) if b not in visible]
    alphabet = {**{b: chr(b) for b in visible}, **{b: chr(256 + i) for i, b in enumerate(shifted)}}
    ids = [tok.convert_tokens_to_ids(alphabet[b]) for b in text.encode("utf-8")]
    assert tok.unk_token_id not in ids
    return ids


class Scripted:
    """Decoding steps that write a given token sequence (one row), whatever the model."""

    def __init__(self, script: list[int], vocab: int):
        self.script, self.vocab, self.step = script, vocab, 0

    def __call__(self, ids, mask, positions):
        logits = torch.full((ids.shape[0], self.vocab), float("-inf"))
        logits[:, self.script[min(self.step, len(self.script) - 1)]] = 0.0
        self.step += 1
        return logits

    def keep(self, rows):
        pass


@pytest.mark.parametrize("text, stop, written", [
    ("ab€cd", "€", "ab€"),  # one character of three byte tokens: seen when its last byte comes
    ("a€x€xyz", "\ufffdx", "a€x€xyz"),  # a window starting inside "€" decodes U+FFFD; the text never holds it
])
def test_stop_strings_are_read_on_the_whole_text_when_tokens_split_characters(pair, text, stop, written):
    _, tok, _ = pair
    script = _byte_tokens(tok, text)
    ids, mask = left_padded([[5, 6, 7]], tok.pad_token_id)
    tokens, ended = decode(Scripted(script, len(tok)), ids, mask, max_new_tokens=len(script), ends=[], stop=(stop,),
                           tokenizer=tok)
    assert tok.decode(tokens[0]) == written
    assert ended == [written != text]
