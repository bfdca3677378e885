"""The one generation path: batched, KV-cached, greedy or sampled, with stop sequences.

Validation ROUGE (:func:`harness.engine.validation.generate_responses`) and pseudo-labels
(:mod:`methods.pseudolabels`) decode through :func:`generate`; benchmarks decode through lm-eval's
``HFLM``, the benchmark engine. Prompts arrive as token ids (each caller encodes them by its own
rule, e.g. the training prompt budget); batches are formed from prompts of similar length (left
padded, so every sequence ends at the same position) and the outputs come back in prompt order.

Two switches serve answers that must start and end (pseudo-labels, :mod:`methods.pseudolabels`):
``stop_at_bos`` ends a text at a BOS as at an EOS, and ``content_first`` keeps the first token from
being EOS, another special token or whitespace only.

The loop is our own (:func:`decode`), not ``transformers``' ``generate``: the same greedy tokens (tested
against ``generate`` and against a bare loop), with each model's KV cache (:func:`kv_cache`) written in
place where ``transformers``' default concatenates the whole cache at every step. Finished rows stay in the
batch, as in ``generate``: dropping them (``decode(compact=True)``) changes the batch's shape mid-decoding,
and under bf16 a batch's shape can flip a near-tied greedy token (measured for the decoding batch size: one
validation text of 1,100), so it is opt-in. A model with
decoding steps of its own (``model.decoding_steps()``: :class:`methods.proxytuning.ProxyTuned`'s three
models and caches) decodes through the same loop.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer

from harness.data.batches import pad_id
from harness.precision import autocast_for


@dataclass(frozen=True)
class Decoding:
    max_new_tokens: int
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()  # generation ends at the first of these (removed from the text)
    # A BOS ends the text like an EOS: the family pretrains on documents packed as BOS text EOS, so a model
    # that writes BOS has begun another document (the micro math expert writes "Answer:" then BOS forever).
    stop_at_bos: bool = False
    # The first token may not be EOS, another special token or whitespace only, so a text cannot be empty by
    # its first choice (the micro experts' most likely first token after the response marker is a newline,
    # and a greedy run of newlines follows). Greedy decoding only.
    content_first: bool = False

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ValueError(f"sampling needs temperature > 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")
        if self.content_first and self.do_sample:
            raise ValueError("content_first chooses the first token greedily; it cannot be combined with do_sample")

    def to_dict(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample, "temperature": self.temperature,
                "top_p": self.top_p, "stop": list(self.stop), "stop_at_bos": self.stop_at_bos,
                "content_first": self.content_first}


@dataclass(frozen=True)
class Generation:
    """One continuation: its text (special tokens dropped, cut at a stop) and whether it ended by itself."""

    text: str
    ended: bool  # an end token (EOS, or BOS with stop_at_bos) or a stop sequence came before the budget ran out


def stop_position(text: str, stop: Sequence[str]) -> int | None:
    """Where the first stop sequence in ``text`` begins (None: there is none)."""
    return min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=None)


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = stop_position(text, stop)
    return text if cut is None else text[:cut]


def end_token_ids(tokenizer, decoding: Decoding) -> list[int]:
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if decoding.stop_at_bos and tokenizer.bos_token_id is not None and tokenizer.bos_token_id not in ids:
        ids.append(tokenizer.bos_token_id)
    return ids


def contentless_token_ids(tokenizer) -> list[int]:
    """Ids that cannot start an answer: special tokens (EOS among them) and tokens that are whitespace only."""
    special = set(tokenizer.all_special_ids)
    return [i for i in range(len(tokenizer))
            if i in special or not tokenizer.decode([i], skip_special_tokens=True).strip()]


def generate(model, tokenizer, prompts: Sequence[Sequence[int]], decoding: Decoding, *, batch_size: int = 16,
             precision: str = "fp32", progress=None) -> list[str]:
    """The continuation of each prompt (token ids), decoded without special tokens, cut at a stop.

    ``progress`` (optional) is called with the number of prompts finished after each batch."""
    return [g.text for g in generations(model, tokenizer, prompts, decoding, batch_size=batch_size,
                                        precision=precision, progress=progress)]


@torch.no_grad()
def generations(model, tokenizer, prompts: Sequence[Sequence[int]], decoding: Decoding, *, batch_size: int = 16,
                precision: str = "fp32", progress=None) -> list[Generation]:
    """:func:`generate`, each text with whether it ended (an end token or a stop) within the token budget."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    device = next(model.parameters()).device
    pad = pad_id(tokenizer)
    ends = end_token_ids(tokenizer, decoding) or _model_end_ids(model)
    banned_first = torch.tensor(contentless_token_ids(tokenizer), dtype=torch.long, device=device) \
        if decoding.content_first else None
    choose = partial(choose_tokens, do_sample=decoding.do_sample, temperature=decoding.temperature,
                     top_p=decoding.top_p)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # similar lengths batch together
    outputs: list[Generation | None] = [None] * len(prompts)
    with autocast_for(precision, device), weights_cast_once(model):  # one block: each weight cast once
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, mask = left_padded([prompts[i] for i in chunk], pad, device)
            new_tokens, ended = decode(decoding_steps(model), ids, mask, max_new_tokens=decoding.max_new_tokens,
                                       ends=ends, choose=choose, banned_first=banned_first, stop=decoding.stop,
                                       tokenizer=tokenizer)
            texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for i, text, row_ended in zip(chunk, texts, ended):
                cut = stop_position(text, decoding.stop)
                outputs[i] = Generation(text if cut is None else text[:cut], row_ended)
            if progress is not None:
                progress(len(chunk))
    return outputs  # type: ignore[return-value]


@contextmanager
def weights_cast_once(model):
    """Inside an autocast block, let autocast cast each frozen weight once, not at every decoding step.

    Autocast casts a matmul's fp32 weight to the lower precision at each call, and keeps the cast for the rest of
    the block only for a leaf tensor that requires grad; a frozen weight (a labeller's, a LoRA's base layer) is
    cast again at every step. For the block such weights are marked as requiring grad (nothing is recorded:
    decoding runs under no_grad), so autocast's own cast runs once: the same values."""
    device_type = next(model.parameters()).device.type
    if not torch.is_autocast_enabled(device_type) or torch.is_grad_enabled():
        yield
        return
    frozen = [p for p in model.parameters() if not p.requires_grad and p.is_floating_point()]
    for p in frozen:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(False)


def left_padded(prompts: Sequence[Sequence[int]], pad: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of ``prompts``, left padded so that every row ends at the same position."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt):] = torch.tensor(list(prompt), dtype=torch.long)
        mask[row, width - len(prompt):] = 1
    return ids.to(device), mask.to(device)


def _model_end_ids(model) -> list[int]:
    """The model's own end token(s), where the tokenizer names none (what ``transformers``' generate falls back to)."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)


@torch.no_grad()
def generate_ids(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 max_new_tokens: int | None = None, max_length: int | None = None, do_sample: bool = False,
                 temperature: float = 1.0, top_p: float = 1.0, pad_token_id: int | None = None,
                 eos_token_id: int | list[int] | None = None, stop_strings: Sequence[str] | None = None,
                 tokenizer=None, stopping_criteria=None, steps=None) -> torch.Tensor:
    """``transformers``' ``generate`` as callers such as lm-eval's ``HFLM`` use it, through :func:`decode`:
    left-padded ``input_ids`` in, prompt + continuation out, a finished row padded with ``pad_token_id``.

    Rows stop at an end token (``eos_token_id``, else the model's) or at one of ``stop_strings``; finished
    rows stay in the batch, as in ``generate``. ``steps``: the
    decoding steps to use (default :func:`decoding_steps` of ``model``)."""
    if max_new_tokens is None:
        max_new_tokens = (max_length or input_ids.shape[1] + 1) - input_ids.shape[1]
    if max_new_tokens <= 0:
        return input_ids
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    ends = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or []) or _model_end_ids(model)
    pad = pad_token_id if pad_token_id is not None else next(iter(ends), 0)
    stop = tuple(s for s in (stop_strings or ()) if s) if tokenizer is not None else ()
    with weights_cast_once(model):
        new, _ = decode(steps or decoding_steps(model), input_ids, mask, max_new_tokens=max_new_tokens, ends=ends,
                        choose=partial(choose_tokens, do_sample=do_sample, temperature=temperature, top_p=top_p),
                        stop=stop, tokenizer=tokenizer, pad=pad,
                        stopping_criteria=stopping_criteria)
    width = max(map(len, new))
    continuation = torch.full((input_ids.shape[0], width), pad, dtype=input_ids.dtype, device=input_ids.device)
    for row, tokens in enumerate(new):
        continuation[row, : len(tokens)] = torch.tensor(tokens, dtype=input_ids.dtype)
    return torch.cat([input_ids, continuation], dim=1)


# --- the decoding loop -----------------------------------------------------------------------------------------

class GrowingLayer(DynamicLayer):
    """A KV cache layer that writes each step's keys and values into room set aside for them, where
    ``transformers``' :class:`DynamicLayer` concatenates: a concatenation copies the whole cache at every step
    (O(length²) over a decoding), which on a CPU is most of a step's time at a batch of 64 (measured at micro:
    two thirds of validation's time went to ``torch.cat``). Room doubles when it runs out, so copies are
    O(length) in all. ``keys``/``values`` are views of the filled part, which attention reads as it reads a
    concatenated tensor (the same values, so the same logits)."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self._keys = self._values = None
        self._length = 0

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        if self._keys is None or self._length + new > self._keys.shape[-2]:
            room = max(self._length + new, 2 * (0 if self._keys is None else self._keys.shape[-2]))
            self._keys, self._values = (self._grown(old, fresh, room)
                                        for old, fresh in ((self._keys, key_states), (self._values, value_states)))
        self._keys[..., self._length: self._length + new, :] = key_states
        self._values[..., self._length: self._length + new, :] = value_states
        self._length += new
        self.keys, self.values = self._keys[..., : self._length, :], self._values[..., : self._length, :]
        return self.keys, self.values

    def _grown(self, old: torch.Tensor | None, fresh: torch.Tensor, room: int) -> torch.Tensor:
        shape = (*fresh.shape[:-2], room, fresh.shape[-1])
        grown = torch.empty(shape, dtype=fresh.dtype, device=fresh.device)
        if old is not None:
            grown[..., : self._length, :] = old[..., : self._length, :]
        return grown

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self.get_seq_length() > 0:
            self._keys, self._values = self._keys[indices], self._values[indices]
            self.keys, self.values = self._keys[..., : self._length, :], self._values[..., : self._length, :]

    def crop(self, tokens_to_remove: int) -> None:
        raise NotImplementedError("the decoding loop never crops its cache")


def kv_cache(model):
    """A fresh KV cache for ``model``: :class:`GrowingLayer` for each layer where ``transformers`` would give a
    plain :class:`DynamicLayer` (full attention), its own layers elsewhere (sliding windows, linear attention)."""
    cache = DynamicCache(config=model.config)
    if cache.layers and all(type(layer) is DynamicLayer for layer in cache.layers):
        cache.layers = [GrowingLayer() for _ in cache.layers]
    return cache


class CachedSteps:
    """One causal LM's decoding steps over a batch, with one KV cache: each call feeds the newest tokens and
    returns the logits at each row's last position; :meth:`keep` drops the rows that have finished."""

    def __init__(self, model):
        self.model, self.cache = model, kv_cache(model)

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        # logits_to_keep=1: the prompt's pass needs the last position only, not batch x prompt x vocabulary
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=self.cache,
                         use_cache=True, logits_to_keep=1)
        self.cache = out.past_key_values
        return out.logits[:, -1]

    def keep(self, rows: torch.Tensor) -> None:
        self.cache.batch_select_indices(rows)


class RecomputedSteps:
    """:class:`CachedSteps` without a cache: every call runs the model over the whole sequence so far (the
    reference a cached path must match)."""

    def __init__(self, model):
        self.model, self.sequence = model, None

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        self.sequence = ids if self.sequence is None else torch.cat([self.sequence, ids], dim=1)
        full_positions = (mask.cumsum(-1) - 1).clamp(min=0)
        return self.model(input_ids=self.sequence, attention_mask=mask, position_ids=full_positions).logits[:, -1]

    def keep(self, rows: torch.Tensor) -> None:
        self.sequence = self.sequence[rows]


def decoding_steps(model):
    """``model``'s decoding steps: its own where it has them (``model.decoding_steps()``: ProxyTuning's three
    models and caches), else :class:`CachedSteps`."""
    own = getattr(model, "decoding_steps", None)
    return own() if callable(own) else CachedSteps(model)


def choose_tokens(scores: torch.Tensor, do_sample: bool = False, temperature: float = 1.0,
                  top_p: float = 1.0) -> torch.Tensor:
    """The next token of each row: the argmax, or a sample at ``temperature`` from the nucleus ``top_p``."""
    if not do_sample:
        return scores.argmax(-1)
    probs = torch.softmax(scores.float() / max(temperature, 1e-6), dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        keep = sorted_probs.cumsum(-1) - sorted_probs < top_p
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs * keep)
    return torch.multinomial(probs / probs.sum(-1, keepdim=True), 1).squeeze(-1)


@torch.no_grad()
def decode(steps, ids: torch.Tensor, mask: torch.Tensor, *, max_new_tokens: int, ends: Sequence[int],
           choose=choose_tokens, banned_first: torch.Tensor | None = None, stop: Sequence[str] = (), tokenizer=None,
           compact: bool = False, pad: int = 0, stopping_criteria=None) -> tuple[list[list[int]], list[bool]]:
    """Decode a left-padded batch: the prompt is prefilled once, then one step per token, each row's newest
    token against the cache. Returns each row's new tokens (through the end token, if one came) and whether
    it ended (an end token or a stop string within ``max_new_tokens``).

    By default finished rows stay and are fed ``pad`` (what ``transformers``' ``generate`` does, and what a
    ``stopping_criteria`` over whole sequences, lm-eval's, needs: it is called as ``generate`` calls it, with
    the prompt and the continuation so far). ``compact=True`` drops a finished row from the batch (and every
    cache) at once, so the rows still writing do not pay for the ones that are done; the same tokens in fp32,
    but under bf16 a changed batch shape can flip a near-tied token, so no generation path uses it yet."""
    if stopping_criteria is not None and compact:
        raise ValueError("a stopping_criteria sees the whole batch; decode it with compact=False")
    if stop and tokenizer is None:
        raise ValueError("stop strings need the tokenizer to read the text")
    ends = set(ends)
    # A stop string first shows when the newest token completes it, so only the newest tokens need decoding at
    # each step (the whole continuation at every step costs O(length²)): as many as the longest stop string has
    # UTF-8 bytes (a token writes at least one byte of text; several tokens can make one character), plus one so
    # that the window's first token (whose decoding may drop a leading space) never holds part of it. A window can
    # also start inside a character, whose bytes then decode as U+FFFD; a hit is therefore confirmed on the whole
    # continuation (rare, so cheap), and a row stops exactly when its whole text first holds a stop string.
    window = 1 + max((len(s.encode("utf-8")) for s in stop), default=0)
    tokens: list[list[int]] = [[] for _ in range(ids.shape[0])]
    ended = [False] * ids.shape[0]
    rows = list(range(ids.shape[0]))  # prompt row of each batch row
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    sequence = ids if stopping_criteria is not None else None
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = steps(ids, mask, positions)
    position = positions[:, -1:]
    for step in range(max_new_tokens):
        if step == 0 and banned_first is not None:
            logits = logits.float()
            logits[:, banned_first] = float("-inf")
        token = choose(logits)
        if not compact:
            token = torch.where(done, torch.full_like(token, pad), token)
        finished = []
        was_done = done.tolist()
        for j, t in enumerate(token.tolist()):
            if was_done[j]:
                continue
            tokens[rows[j]].append(t)
            if t in ends:
                finished.append(j)
        if stop:
            live = [j for j in range(len(rows)) if not was_done[j] and j not in finished]
            texts = tokenizer.batch_decode([tokens[rows[j]][-window:] for j in live], skip_special_tokens=True)
            hits = [j for j, text in zip(live, texts) if any(s in text for s in stop)]
            if hits:
                whole = tokenizer.batch_decode([tokens[rows[j]] for j in hits], skip_special_tokens=True)
                finished += [j for j, text in zip(hits, whole) if any(s in text for s in stop)]
        for j in finished:
            ended[rows[j]] = True
        if sequence is not None:
            sequence = torch.cat([sequence, token[:, None]], dim=1)
            stopped = stopping_criteria(sequence, logits)
            newly = (stopped if isinstance(stopped, torch.Tensor) else torch.full_like(done, bool(stopped))) & ~done
            finished += [j for j in newly.nonzero().flatten().tolist() if j not in finished]
        if step == max_new_tokens - 1:
            break
        if compact and finished:
            gone = set(finished)
            keep = [j for j in range(len(rows)) if j not in gone]
            if not keep:
                break
            index = torch.tensor(keep, device=ids.device)
            steps.keep(index)
            rows, token, mask, position = [rows[j] for j in keep], token[index], mask[index], position[index]
            done = done[index]
        elif finished:
            done[finished] = True
            if bool(done.all()):
                break
        mask = torch.cat([mask, (~done).to(mask.dtype)[:, None]], dim=1)
        position = position + 1
        logits = steps(token[:, None], mask, position)
    return tokens, ended
