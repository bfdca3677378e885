"""Validation during training: ROUGE-1/2/L of greedy *generated* responses, and eval loss (nats per
token, and bits per UTF-8 byte of the reference text, which does not depend on the tokenizer, so methods
that extend the vocabulary stay comparable).

ROUGE tokenisation. rouge-score's default tokenizer lowercases and replaces every non-alphanumeric
character by a space, so code operators vanish ("x+1" vs "y-1" share all their tokens). The default
here, ``rouge_tokenizer="code"``, keeps case and splits text into identifiers/words, numbers, and
each operator or punctuation mark as its own token (multi-character operators such as ``==``,
``**``, ``//``, ``->``, ``<=`` stay whole); no stemming. ``rouge_tokenizer="default"`` is
rouge-score's own tokenizer with the Porter stemmer, as the official code uses.

``rouge_mode="teacher-forced"`` reproduces the official code's variant: the argmax of a
teacher-forced forward pass over prompt+response, *not* shifted against the labels, decoded and
compared with the decoded input. It flatters every model and is offered only for reproduction.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from rouge_score import rouge_scorer

from harness.data.batches import IGNORE, collate, encode_example, encode_prompt, pad_id
from harness.engine.generate import Decoding, generate
from harness.precision import autocast_for

ROUGE_KEYS = ("rouge1", "rouge2", "rougeL")


class CodeTokenizer:
    """Identifiers/words, numbers, and each operator or punctuation mark as a token; case kept."""

    _TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?|==|!=|<=|>=|\*\*|//|->|\+=|-=|[^\sA-Za-z0-9_]")

    def tokenize(self, text: str) -> list[str]:
        return self._TOKEN.findall(text)


def make_scorer(kind: str) -> rouge_scorer.RougeScorer:
    if kind == "code":
        return rouge_scorer.RougeScorer(list(ROUGE_KEYS), tokenizer=CodeTokenizer())
    return rouge_scorer.RougeScorer(list(ROUGE_KEYS), use_stemmer=True)


def rouge_f1(predictions: list[str], references: list[str], kind: str = "code") -> dict[str, float]:
    """Mean F1 of ROUGE-1/2/L over pairs."""
    scorer = make_scorer(kind)
    totals = dict.fromkeys(ROUGE_KEYS, 0.0)
    for pred, ref in zip(predictions, references, strict=True):
        scores = scorer.score(ref, pred)
        for key in ROUGE_KEYS:
            totals[key] += scores[key].fmeasure
    return {k: v / max(len(predictions), 1) for k, v in totals.items()}


def generate_responses(model, tokenizer, instructions: list[str], *, max_new_tokens: int, batch_size: int,
                       max_prompt_tokens: int, precision: str = "fp32") -> list[str]:
    """Greedy decoding of each instruction's response (stop at EOS), through the one generation path.

    Prompts and generations have budgets of their own: a prompt is encoded exactly as in training
    (at most ``max_prompt_tokens``), and up to ``max_new_tokens`` follow it."""
    prompts = [encode_prompt(tokenizer, text, max_prompt_tokens) for text in instructions]
    return generate(model, tokenizer, prompts, Decoding(max_new_tokens), batch_size=batch_size, precision=precision)


def scored_bytes(tokenizer, labels: list[int]) -> int:
    """UTF-8 bytes of the text whose tokens are scored (special tokens such as EOS have none)."""
    return len(tokenizer.decode([t for t in labels if t != IGNORE], skip_special_tokens=True).encode("utf-8"))


@torch.no_grad()
def eval_loss(model, tokenizer, records: list[dict], *, seq_len: int, batch_size: int, loss_on: str,
              max_prompt_tokens: int | None = None, precision: str = "fp32",
              per_item: list[tuple[float, int]] | None = None) -> dict[str, float]:
    """Teacher-forced loss on the validation responses: ``eval_loss`` (mean nats per scored token) and
    ``eval_bits_per_byte`` (total bits over the UTF-8 bytes of the scored reference text). ``per_item``, if
    given, receives each record's (bits, bytes) in order: the items a paired comparison of two runs needs."""
    device = next(model.parameters()).device
    total, count, n_bytes = 0.0, 0, 0
    for start in range(0, len(records), batch_size):
        chunk = [encode_example(tokenizer, r["instruction"], r["response"], seq_len, loss_on, max_prompt_tokens)
                 for r in records[start : start + batch_size]]
        batch = {k: v.to(device) for k, v in collate(chunk, pad_id(tokenizer)).items()}
        with autocast_for(precision, device):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        labels = batch["labels"][:, 1:]
        token_nats = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE,
                                     reduction="none").view(labels.shape)
        total += token_nats.sum().item()
        count += int((labels != IGNORE).sum())
        chunk_bytes = [scored_bytes(tokenizer, e.labels[1:]) for e in chunk]
        n_bytes += sum(chunk_bytes)
        if per_item is not None:
            per_item += [(nats / math.log(2), b) for nats, b in zip(token_nats.sum(dim=1).tolist(), chunk_bytes)]
    return {"eval_loss": total / max(count, 1), "eval_bits_per_byte": total / math.log(2) / max(n_bytes, 1)}


@torch.no_grad()
def teacher_forced_predictions(model, tokenizer, records: list[dict], *, seq_len: int, batch_size: int,
                               max_prompt_tokens: int | None = None,
                               precision: str = "fp32") -> tuple[list[str], list[str]]:
    """The official code's ROUGE inputs: unshifted argmax vs the input, both over prompt+response."""
    device = next(model.parameters()).device
    preds, refs = [], []
    for start in range(0, len(records), batch_size):
        chunk = [encode_example(tokenizer, r["instruction"], r["response"], seq_len, "full", max_prompt_tokens)
                 for r in records[start : start + batch_size]]
        batch = {k: v.to(device) for k, v in collate(chunk, pad_id(tokenizer)).items()}
        with autocast_for(precision, device):
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        argmax = logits.argmax(-1)
        for i, e in enumerate(chunk):
            n = len(e.input_ids)
            preds.append(tokenizer.decode(argmax[i, :n], skip_special_tokens=True))
            refs.append(tokenizer.decode(batch["input_ids"][i, :n], skip_special_tokens=True))
    return preds, refs
