"""Instruction records → token ids and labels, and the deterministic order they are trained in.

Loss is on the response only by default (prompt tokens labelled -100); ``loss_on="full"`` gives the
official code's prompt+response loss. Sequences are BOS + prompt + response + EOS as the tokenizer
defines them. The prompt (BOS included) gets at most ``max_prompt_tokens``, by one rule shared by
training, eval loss and generation (:func:`encode_prompt`); the response fills the rest of ``seq_len``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.prompts import format_prompt

IGNORE = -100


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    prompt_len: int


def _ids(tokenizer, text: str) -> list[int]:
    # verbose=False: texts longer than the model are expected here; we truncate them ourselves
    return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]


def cut_middle(ids: list[int], budget: int) -> list[int]:
    """``ids`` if they fit in ``budget``, else its first and last halves: the instruction's start and
    its end with the response marker survive, whichever is long."""
    if len(ids) <= budget:
        return ids
    head = budget // 2
    return ids[:head] + ids[len(ids) - (budget - head):]


def encode_prompt(tokenizer, instruction: str, max_prompt_tokens: int) -> list[int]:
    """BOS + formatted prompt in at most ``max_prompt_tokens`` tokens (the middle is cut if longer)."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    return bos + cut_middle(_ids(tokenizer, format_prompt(instruction)), max_prompt_tokens - len(bos))


def encode_example(tokenizer, instruction: str, response: str, seq_len: int, loss_on: str = "response",
                   max_prompt_tokens: int | None = None) -> Encoded:
    """Prompt (see :func:`encode_prompt`; ``None`` = up to ``seq_len - 1``) + response + EOS, cut at ``seq_len``."""
    prompt_ids = encode_prompt(tokenizer, instruction, min(max_prompt_tokens or seq_len - 1, seq_len - 1))
    response_ids = _ids(tokenizer, response)
    if tokenizer.eos_token_id is not None:
        response_ids = [*response_ids, tokenizer.eos_token_id]
    ids = (prompt_ids + response_ids)[:seq_len]
    labels = list(ids) if loss_on == "full" else [IGNORE] * len(prompt_ids) + ids[len(prompt_ids):]
    return Encoded(ids, labels, len(prompt_ids))


def pad_id(tokenizer) -> int:
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0


def collate(examples: list[Encoded], pad: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example; padded positions are masked and unlabelled."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e.input_ids)
        ids[i, :n] = torch.tensor(e.input_ids)
        labels[i, :n] = torch.tensor(e.labels)
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class StepOrder:
    """Which training examples make up global step ``s``: a seeded permutation per epoch.

    The data position is a pure function of (seed, step), so resuming at step k continues exactly
    where a straight run would be, and data-parallel ranks take disjoint slices of the same batch.
    """

    def __init__(self, n_examples: int, batch_size: int, seed: int):
        if n_examples < batch_size:
            raise ValueError(f"{n_examples} training examples cannot fill a batch of {batch_size}; "
                             "lower training.batch_size or use more data")
        self.n, self.batch_size, self.seed = n_examples, batch_size, seed
        self.steps_per_epoch = n_examples // batch_size
        self._epoch, self._perm = -1, None

    def global_batch(self, step: int) -> list[int]:
        epoch, offset = divmod(step, self.steps_per_epoch)
        if epoch != self._epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm, self._epoch = torch.randperm(self.n, generator=gen).tolist(), epoch
        return self._perm[offset * self.batch_size : (offset + 1) * self.batch_size]

    def rank_batch(self, step: int, rank: int, world: int) -> list[int]:
        batch = self.global_batch(step)
        if len(batch) % world:
            raise ValueError(f"batch size {len(batch)} is not divisible by {world} processes")
        share = len(batch) // world
        return batch[rank * share : (rank + 1) * share]
