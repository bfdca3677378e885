"""Direct, batched log-likelihoods of continuations, tokenized and truncated as lm-eval's ``HFLM`` does.

Two uses: the choices of a multiple-choice item (:func:`choice_logliks`; when every choice is one
token after the prompt, one forward pass scores them all), and the reference text of any item
(:func:`continuation_logliks`), whose bits per byte is the continuous metric of every benchmark
(OLMES / DataDecide: where accuracy sits at chance, the likelihood of the right answer still moves).

Pairs are encoded the way lm-eval encodes a (context, continuation) request: trailing spaces of the
context move to the continuation, the whole text is encoded once (special tokens as the tokenizer
adds them) and the continuation is what follows the context's tokens; inputs are cut from the left
to the model's context length. Both engines therefore agree item by item (tested on tiny models).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

LN2 = math.log(2.0)


def model_max_length(model, tokenizer) -> int:
    """The context length lm-eval's HFLM uses for ``model`` (config attributes, then the tokenizer)."""
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        if hasattr(model.config, attr):
            return int(getattr(model.config, attr))
    limit = getattr(tokenizer, "model_max_length", None)
    if limit and limit < 10**12:
        return int(limit)
    return 2048


def _split_pair(context: str, continuation: str) -> tuple[str, str]:
    spaces = len(context) - len(context.rstrip())
    if spaces:
        return context[:-spaces], context[-spaces:] + continuation
    return context, continuation


def choice_logliks(model, tokenizer, prompts: Sequence[str], choices: Sequence[str], *,
                   batch_size: int = 16) -> tuple[list[list[float]], dict]:
    """Log-likelihood of ``" " + choice`` after each prompt: a ``len(prompts) x len(choices)`` list.

    Returns the matrix and ``{"single_token_prompts", "full_continuation_prompts", "forward_sequences"}``.
    """
    max_len = model_max_length(model, tokenizer)
    requests = []  # (row, column or None for all choices at once, input ids, continuation ids)
    single = 0
    contexts = tokenizer(list(prompts))["input_ids"]  # as lm-eval's tok_encode: special tokens included
    wholes = [tokenizer([p + " " + choice for p in prompts])["input_ids"] for choice in choices]
    for row, context in enumerate(contexts):
        conts = [whole[row][len(context):] for whole in wholes]
        if all(len(c) == 1 for c in conts):
            single += 1
            requests.append((row, None, context[-max_len:], [c[0] for c in conts]))
        else:
            for col, cont in enumerate(conts):
                requests.append((row, col, (context + cont)[-(max_len + 1):][:-1], cont))
    scores = [[0.0] * len(choices) for _ in prompts]
    for (row, col, _, cont), logprobs in _score_requests(model, tokenizer, requests, batch_size):
        if col is None:
            for j, token in enumerate(cont):
                scores[row][j] = float(logprobs[-1, token])
        else:  # the last len(cont) kept positions predict the continuation's tokens
            scores[row][col] = float(sum(logprobs[i, t] for i, t in enumerate(cont)))
    return scores, {"single_token_prompts": single, "full_continuation_prompts": len(prompts) - single,
                    "forward_sequences": len(requests)}


@dataclass(frozen=True)
class ContinuationScore:
    logprob: float  # natural-log likelihood of the scored continuation tokens
    tokens: int  # continuation tokens scored
    bytes: int  # UTF-8 bytes of the text those tokens spell
    truncated: bool  # the continuation was longer than the model's context: only its start was scored

    @property
    def bits(self) -> float:
        return -self.logprob / LN2

    @property
    def bits_per_byte(self) -> float | None:
        return self.bits / self.bytes if self.bytes else None


def continuation_logliks(model, tokenizer, pairs: Sequence[tuple[str, str]], *,
                         batch_size: int = 16) -> list[ContinuationScore]:
    """Log-likelihood of each continuation given its context (lm-eval's ``loglikelihood`` request).

    A continuation longer than the context window keeps its first ``max_len - 1`` tokens (the
    bytes then count only the text those tokens spell), so no token is scored without context.
    """
    max_len = model_max_length(model, tokenizer)
    split = [_split_pair(c, x) for c, x in pairs]
    contexts = tokenizer([c for c, _ in split])["input_ids"]
    wholes = tokenizer([c + x for c, x in split])["input_ids"]
    requests, meta = [], []
    for row, ((_, text), context, whole) in enumerate(zip(split, contexts, wholes)):
        cont = whole[len(context):]
        truncated = len(cont) >= max_len
        if truncated:
            cont = cont[: max_len - 1]
            text = tokenizer.decode(cont)
        if not cont:
            raise ValueError(f"pair {row}: the continuation adds no tokens to its context")
        requests.append((row, 0, (context + cont)[-(max_len + 1):][:-1], cont))
        meta.append((len(text.encode("utf-8")), truncated))
    out: list[ContinuationScore | None] = [None] * len(pairs)
    for (row, _, _, cont), logprobs in _score_requests(model, tokenizer, requests, batch_size):
        logprob = float(sum(logprobs[i, t] for i, t in enumerate(cont)))
        out[row] = ContinuationScore(logprob, len(cont), meta[row][0], meta[row][1])
    return out  # type: ignore[return-value]


def _score_requests(model, tokenizer, requests: list, batch_size: int):
    """Yield ``(request, logprobs)`` where ``logprobs`` holds the log-softmax at the positions that
    predict the request's continuation (one row per continuation token; one row for a ``None`` column)."""
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i][2]))  # similar lengths together
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for batch in _length_batches([requests[i] for i in order], batch_size):
                width = max(len(r[2]) for r in batch)
                keep = max(1 if col is None else len(cont) for _, col, _, cont in batch)
                ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                positions = torch.zeros((len(batch), keep), dtype=torch.long)
                for b, (_, _, inp, _) in enumerate(batch):
                    ids[b, : len(inp)] = torch.tensor(inp, dtype=torch.long)
                    positions[b] = torch.arange(len(inp) - keep, len(inp)).clamp(min=0)
                logprobs = _logprobs_at(model, ids, positions)  # (batch, keep, vocab)
                for b, request in enumerate(batch):
                    _, col, _, cont = request
                    used = 1 if col is None else len(cont)
                    yield request, logprobs[b, keep - used:]
    finally:
        model.train(was_training)


def _length_batches(requests: list, batch_size: int, min_fill: float = 0.75) -> list[list]:
    """Consecutive batches of requests sorted longest first, at most ``batch_size`` each, cut early
    when a sequence would be shorter than ``min_fill`` of the batch's width (bounding padding)."""
    batches: list[list] = []
    for request in requests:
        if not batches or len(batches[-1]) == batch_size or len(request[2]) < min_fill * len(batches[-1][0][2]):
            batches.append([])
        batches[-1].append(request)
    return batches


def _logprobs_at(model, ids, positions):
    """Log-probabilities at ``positions`` (batch x k) only: the vocabulary projection is skipped
    elsewhere (``logits_to_keep``), with a full forward as the fallback for models without it."""
    import torch

    device = next(model.parameters()).device
    # Right padding and no attention mask, as lm-eval does: causal attention never looks right.
    try:
        logits = model(ids.to(device), logits_to_keep=positions.to(device)).logits
    except TypeError:
        logits = None
    if logits is None or logits.shape[1] != positions.shape[1]:
        logits = model(ids.to(device)).logits
        logits = torch.gather(logits, 1, positions.to(device)[..., None].expand(-1, -1, logits.shape[-1]))
    return torch.log_softmax(logits.float(), dim=-1).cpu()
