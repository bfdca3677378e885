"""MMLU (Hendrycks et al. 2020): log-likelihood of the answer letter, per subject, group and overall.

Prompt (lm-eval's MMLU format; 0-shot by default)::

    The following are multiple choice questions (with answers) about {subject}.

    {shots}{question}
    A. {choice A}
    B. {choice B}
    C. {choice C}
    D. {choice D}
    Answer:

scored by the log-likelihood of the continuations " A", " B", " C", " D"; the prediction is the
most likely letter (the first on ties). The headline is the **micro** average (the share of all items
answered right, as the paper reports it); the macro average over subjects is recorded beside it.

The packaged MMLU copy has no dev split, so ``fewshot=k`` draws k shots per subject from that
subject's own test items (seeded), removes them from the scored items and says so in the result.

:func:`letter_logliks` is the direct, batched path: when each letter is a single token after the
prompt (true for common tokenizers), one forward pass over the prompt scores all four letters;
otherwise each continuation is scored in full. Its tokenization and truncation follow lm-eval's
``HFLM`` exactly, so both engines agree (tested on a tiny model).
"""

from __future__ import annotations

import random
from typing import Sequence

from harness.data import MMLU_GROUPS

from benchmarks.sampling import ids_sha256

LETTERS: tuple[str, ...] = ("A", "B", "C", "D")
HEADER = "The following are multiple choice questions (with answers) about {subject}.\n\n"
QUESTION = "{question}\nA. {A}\nB. {B}\nC. {C}\nD. {D}\nAnswer:"
PROMPT_FORMAT = HEADER + "{shots}" + QUESTION + "  → scored continuations ' A' | ' B' | ' C' | ' D'"
FEWSHOT_SOURCE = "held-out MMLU test items of the same subject (the packaged copy has no dev split), not scored"


def subject_title(subject: str) -> str:
    return subject.replace("_", " ")


def _question_block(row: dict) -> str:
    a, b, c, d = row["choices"]
    return QUESTION.format(question=row["question"].strip(), A=a, B=b, C=c, D=d)


def format_prompt(row: dict, shots: Sequence[dict] = ()) -> str:
    shot_text = "".join(f"{_question_block(s)} {s['answer']}\n\n" for s in shots)
    return HEADER.format(subject=subject_title(row["subject"])) + shot_text + _question_block(row)


def prepare_documents(rows: Sequence[dict], *, fewshot: int = 0, seed: int = 0,
                      shot_pool: Sequence[dict] | None = None) -> tuple[list[dict], dict]:
    """Scored documents (rows plus ``prompt``) and a description of the few-shot choice.

    Shots for a subject come from ``shot_pool`` (default: ``rows``) items of that subject, chosen by
    ``seed`` and the subject's name, so every benchmark holding that subject uses the same shots.
    """
    shots: dict[str, list[dict]] = {}
    if fewshot:
        pool: dict[str, list[dict]] = {}
        for r in shot_pool if shot_pool is not None else rows:
            pool.setdefault(r["subject"], []).append(r)
        for subject in sorted({r["subject"] for r in rows}):
            members = pool.get(subject, [])
            if len(members) <= fewshot:
                raise ValueError(f"MMLU subject {subject!r} has {len(members)} items; cannot hold out {fewshot} shots")
            shots[subject] = random.Random(f"{seed}:fewshot:{subject}").sample(members, fewshot)
    held_out = {s["id"] for group in shots.values() for s in group}
    docs = [{**r, "prompt": format_prompt(r, shots.get(r["subject"], ()))} for r in rows if r["id"] not in held_out]
    info = {"fewshot": fewshot}
    if fewshot:
        shot_ids = [s["id"] for subject in sorted(shots) for s in shots[subject]]
        info.update({"fewshot_source": FEWSHOT_SOURCE, "fewshot_seed": seed, "n_held_out": len(held_out),
                     "fewshot_ids_sha256": ids_sha256(shot_ids)})
    return docs, info


# --- the direct, batched log-likelihood path -------------------------------------------------------

def model_max_length(model, tokenizer) -> int:
    """The context length lm-eval's HFLM uses for ``model`` (config attributes, then the tokenizer)."""
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        if hasattr(model.config, attr):
            return int(getattr(model.config, attr))
    limit = getattr(tokenizer, "model_max_length", None)
    if limit and limit < 10**12:
        return int(limit)
    return 2048


def letter_logliks(model, tokenizer, prompts: Sequence[str], *, batch_size: int = 16,
                   letters: Sequence[str] = LETTERS) -> tuple[list[list[float]], dict]:
    """Log-likelihood of ``" " + letter`` after each prompt: a ``len(prompts) x len(letters)`` list.

    Returns the matrix and ``{"single_token_prompts", "full_continuation_prompts", "forward_sequences"}``.
    """
    import torch

    max_len = model_max_length(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    requests = []  # (row, column or None for all letters at once, input ids, continuation ids)
    single = 0
    contexts = tokenizer(list(prompts))["input_ids"]  # as lm-eval's tok_encode: special tokens included
    wholes = [tokenizer([p + " " + letter for p in prompts])["input_ids"] for letter in letters]
    for row, context in enumerate(contexts):
        conts = [whole[row][len(context):] for whole in wholes]
        if all(len(c) == 1 for c in conts):
            single += 1
            requests.append((row, None, context[-max_len:], [c[0] for c in conts]))
        else:
            for col, cont in enumerate(conts):
                requests.append((row, col, (context + cont)[-(max_len + 1):][:-1], cont))
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i][2]))  # similar lengths together
    scores = [[0.0] * len(letters) for _ in prompts]
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
                for b, (row, col, inp, cont) in enumerate(batch):
                    if col is None:
                        for j, token in enumerate(cont):
                            scores[row][j] = float(logprobs[b, keep - 1, token])
                    else:  # the last len(cont) kept positions predict the continuation's tokens
                        first = keep - len(cont)
                        scores[row][col] = float(sum(logprobs[b, first + i, t] for i, t in enumerate(cont)))
    finally:
        model.train(was_training)
    return scores, {"single_token_prompts": single, "full_continuation_prompts": len(prompts) - single,
                    "forward_sequences": len(requests)}


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


def predict(logliks: Sequence[float]) -> str:
    """The letter with the highest log-likelihood (the first on ties, as numpy's argmax)."""
    best = max(range(len(logliks)), key=lambda j: (logliks[j], -j))
    return LETTERS[best]


# --- scoring ------------------------------------------------------------------------------------

def group_of(subject: str) -> str | None:
    return next((g for g, subjects in MMLU_GROUPS.items() if subject in subjects), None)


def summarize(docs: Sequence[dict], predictions: Sequence[str]) -> dict:
    """Micro accuracy (headline), macro over subjects, and per-subject and per-group accuracies."""
    if len(docs) != len(predictions):
        raise ValueError(f"{len(docs)} MMLU items but {len(predictions)} predictions")
    per_subject: dict[str, list[int]] = {}
    per_group: dict[str, list[int]] = {}
    for doc, pred in zip(docs, predictions):
        hit = int(pred == doc["answer"])
        per_subject.setdefault(doc["subject"], []).append(hit)
        if (group := group_of(doc["subject"])) is not None:
            per_group.setdefault(group, []).append(hit)
    total = sum(sum(v) for v in per_subject.values())
    n = sum(len(v) for v in per_subject.values())
    return {
        "accuracy": total / n if n else None,
        "average": "micro (share of all scored items); macro = mean of per-subject accuracies",
        "macro_accuracy": sum(sum(v) / len(v) for v in per_subject.values()) / len(per_subject) if per_subject else None,
        "per_subject": {s: {"accuracy": sum(v) / len(v), "n": len(v)} for s, v in sorted(per_subject.items())},
        "per_group": {g: {"accuracy": sum(v) / len(v), "n": len(v)} for g, v in sorted(per_group.items())},
    }
