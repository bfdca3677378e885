"""The one generation path: batched, KV-cached, greedy or sampled, with stop sequences.

Validation ROUGE (:func:`harness.engine.validation.generate_responses`) and pseudo-labels
(:mod:`methods.pseudolabels`) decode through :func:`generate`; benchmarks decode through lm-eval's
``HFLM``, the benchmark engine. Prompts arrive as token ids (each caller encodes them by its own
rule, e.g. the training prompt budget); batches are formed from prompts of similar length (left
padded, so every sequence ends at the same position) and the outputs come back in prompt order.

Two switches serve answers that must start and end (pseudo-labels, :mod:`methods.pseudolabels`):
``stop_at_bos`` ends a text at a BOS as at an EOS, and ``content_first`` keeps the first token from
being EOS, another special token or whitespace only. Both work with any model whose ``generate`` takes
``eos_token_id`` lists (``transformers``', and :class:`methods.proxytuning.ProxyTuned`'s): the first
token is chosen by one forward pass of its own, not by a logits processor a model may ignore.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

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
    ends = end_token_ids(tokenizer, decoding)
    banned_first = torch.tensor(contentless_token_ids(tokenizer), dtype=torch.long) if decoding.content_first else None
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # similar lengths batch together
    outputs: list[Generation | None] = [None] * len(prompts)
    extra = {"stop_strings": list(decoding.stop), "tokenizer": tokenizer} if decoding.stop else {}
    sampling = {"do_sample": True, "temperature": decoding.temperature, "top_p": decoding.top_p} \
        if decoding.do_sample else {"do_sample": False}
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(prompts[i]) for i in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, i in enumerate(chunk):
            ids[row, width - len(prompts[i]):] = torch.tensor(list(prompts[i]), dtype=torch.long)
            mask[row, width - len(prompts[i]):] = 1
        ids, mask = ids.to(device), mask.to(device)
        first = None
        with autocast_for(precision, device):
            if banned_first is not None:
                first = _first_tokens_with_content(model, ids, mask, banned_first.to(device))
                ids = torch.cat([ids, first[:, None]], dim=1)
                mask = torch.cat([mask, torch.ones_like(first)[:, None]], dim=1)
            remaining = decoding.max_new_tokens - (first is not None)
            if remaining > 0:
                out = model.generate(input_ids=ids, attention_mask=mask, use_cache=True, max_new_tokens=remaining,
                                     pad_token_id=pad, eos_token_id=ends or None, **sampling, **extra)
            else:
                out = ids
        new_tokens = out[:, width:].cpu()
        texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        for row, (i, text) in enumerate(zip(chunk, texts)):
            cut = stop_position(text, decoding.stop)
            ended = cut is not None or any(int(t) in ends for t in new_tokens[row])
            outputs[i] = Generation(text if cut is None else text[:cut], ended)
        if progress is not None:
            progress(len(chunk))
    return outputs  # type: ignore[return-value]


def _first_tokens_with_content(model, ids: torch.Tensor, mask: torch.Tensor, banned: torch.Tensor) -> torch.Tensor:
    """The greedy first token of each left-padded prompt, among the tokens that are not ``banned``."""
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # as generate numbers a left-padded row
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits[:, -1].float()
    logits[:, banned] = float("-inf")
    return logits.argmax(-1)
