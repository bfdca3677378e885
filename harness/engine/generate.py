"""The one generation path: batched, KV-cached, greedy or sampled, with stop sequences.

Validation ROUGE (:func:`harness.engine.rouge.generate_responses`) and pseudo-labels
(:mod:`methods.pseudolabels`) decode through :func:`generate`; benchmarks decode through lm-eval's
``HFLM``, the benchmark engine. Prompts arrive as token ids (each caller encodes them by its own
rule, e.g. the training prompt budget); batches are formed from prompts of similar length (left
padded, so every sequence ends at the same position) and the outputs come back in prompt order.
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

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.do_sample and not (self.temperature > 0 and 0 < self.top_p <= 1):
            raise ValueError(f"sampling needs temperature > 0 and 0 < top_p <= 1, got {self.temperature}, {self.top_p}")

    def to_dict(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample, "temperature": self.temperature,
                "top_p": self.top_p, "stop": list(self.stop)}


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut]


@torch.no_grad()
def generate(model, tokenizer, prompts: Sequence[Sequence[int]], decoding: Decoding, *, batch_size: int = 16,
             precision: str = "fp32", progress=None) -> list[str]:
    """The continuation of each prompt (token ids), decoded without special tokens, cut at a stop.

    ``progress`` (optional) is called with the number of prompts finished after each batch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    device = next(model.parameters()).device
    pad = pad_id(tokenizer)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # similar lengths batch together
    outputs: list[str | None] = [None] * len(prompts)
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
        with autocast_for(precision, device):
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=True,
                                 max_new_tokens=decoding.max_new_tokens, pad_token_id=pad,
                                 eos_token_id=tokenizer.eos_token_id, **sampling, **extra)
        texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        for i, text in zip(chunk, texts):
            outputs[i] = cut_at_stop(text, decoding.stop) if decoding.stop else text
        if progress is not None:
            progress(len(chunk))
    return outputs  # type: ignore[return-value]
