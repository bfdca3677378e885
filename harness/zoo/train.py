"""Pretraining, continued pretraining and instruction tuning of the family's models, and held-out scoring.

A plain torch loop on CPU: AdamW, linear warm-up then cosine decay, gradient clipping, fp32 or bf16
autocast (the recipe's precision as resolved for this machine by :mod:`harness.precision`), rows of
``seq_len`` tokens packed from a shuffled stream of documents (or instruction examples, loss on the
response only). Which source fills each row is drawn from the step's mix with a seeded generator, so
a step is a pure function of (parent weights, data, recipe, seed, resolved precision).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from harness.data.batches import IGNORE, encode_example
from harness.zoo.recipe import Recipe, Shape, Step


@dataclass
class Packed:
    """Token ids and labels of a source's examples in a fixed order (labels -100 where unscored)."""

    examples: list[tuple[np.ndarray, np.ndarray]]

    def stream(self, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.examples)
        order = range(n) if seed is None else np.random.default_rng(seed).permutation(n)
        ids = np.concatenate([self.examples[i][0] for i in order])
        labels = np.concatenate([self.examples[i][1] for i in order])
        return ids, labels


def pack_documents(tokenizer, texts: list[str]) -> Packed:
    """Each document as BOS + tokens + EOS, every token a target."""
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    out = []
    for ids in encoded:
        arr = np.asarray([tokenizer.bos_token_id, *ids, tokenizer.eos_token_id], dtype=np.int64)
        out.append((arr, arr))
    return Packed(out)


def pack_pairs(tokenizer, pairs: list[dict], max_len: int) -> Packed:
    """Instruction pairs in the project's prompt format (harness.prompts), loss on the response only."""
    out = []
    for p in pairs:
        e = encode_example(tokenizer, p["instruction"], p["response"], max_len)
        out.append((np.asarray(e.input_ids, dtype=np.int64), np.asarray(e.labels, dtype=np.int64)))
    return Packed(out)


class RowSource:
    """Consecutive ``seq_len`` rows of one source's stream; reshuffled with a new seed on each pass."""

    def __init__(self, packed: Packed, seq_len: int, seed: int):
        self.packed, self.seq_len, self.seed = packed, seq_len, seed
        self.epoch, self.cursor = 0, 0
        self.ids, self.labels = packed.stream(seed)
        if len(self.ids) < seq_len:
            raise ValueError(f"a training source holds {len(self.ids)} tokens, fewer than one row of {seq_len}")

    def next_row(self) -> tuple[np.ndarray, np.ndarray]:
        if self.cursor + self.seq_len > len(self.ids):
            self.epoch += 1
            self.cursor = 0
            self.ids, self.labels = self.packed.stream(self.seed * 1000 + self.epoch)
        row = slice(self.cursor, self.cursor + self.seq_len)
        self.cursor += self.seq_len
        return self.ids[row], self.labels[row]


class ThreadGovernor:
    """Uses only the cores other processes leave free, re-checked every few seconds.

    On a shared 2-core machine two torch threads run 5-10x slower than one while another process
    holds a core. The thread count does not change the numbers (checked bit for bit), only the speed.
    """

    def __init__(self, every_s: float = 5.0):
        import psutil

        self._psutil, self.every_s = psutil, every_s
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.used: dict[int, int] = {}
        self._mark = self._sample()
        time.sleep(0.25)
        self.adjust(force=True)
        self.used.clear()  # count optimizer steps only

    def _sample(self) -> tuple[float, float, float]:
        t = self._psutil.cpu_times()
        busy = sum(getattr(t, f, 0.0) for f in ("user", "nice", "system", "irq", "softirq", "steal"))
        own = self._psutil.Process().cpu_times()
        return time.monotonic(), busy, own.user + own.system

    def adjust(self, force: bool = False) -> int:
        now = self._sample()
        elapsed = now[0] - self._mark[0]
        if force or elapsed >= self.every_s:
            others = max(0.0, (now[1] - self._mark[1]) - (now[2] - self._mark[2])) / max(elapsed, 1e-3)
            threads = max(1, min(self.cores, int(self.cores - others + 0.5)))
            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)
            self._mark = now
        n = torch.get_num_threads()
        self.used[n] = self.used.get(n, 0) + 1
        return n


def max_positions(seq_len: int) -> int:
    """Context length of the family's models (and their tokenizers): at least the paper's 512."""
    return max(seq_len, 512)


def new_model(shape: Shape, vocab_size: int, seq_len: int, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    from harness.zoo.tokenizer import BOS, EOS, PAD, SPECIAL_TOKENS

    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=shape.hidden_size, intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.layers, num_attention_heads=shape.heads, num_key_value_heads=shape.heads,
        max_position_embeddings=max_positions(seq_len), rms_norm_eps=1e-5, tie_word_embeddings=False,
        bos_token_id=SPECIAL_TOKENS.index(BOS), eos_token_id=SPECIAL_TOKENS.index(EOS),
        pad_token_id=SPECIAL_TOKENS.index(PAD))
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def _schedule(total: int, warmup_fraction: float, min_ratio: float) -> Callable[[int], float]:
    warmup = max(1, int(total * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def cpu_autocast(precision: str) -> torch.autocast:
    """The CPU autocast for a *resolved* precision: bf16 autocast for "bf16", none for "fp32"."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"the zoo runs on CPU in fp32 or bf16, not {precision!r}; "
                         "resolve the recipe's precision with harness.precision.resolve_precision(..., cuda=False)")
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def train(model, step: Step, sources: dict[str, Packed], recipe: Recipe,
          on_progress: Callable[[int, float], None] | None = None, *, precision: str) -> dict:
    """Train ``model`` in place for ``step.tokens`` tokens of ``step.mix``; returns what happened.

    ``precision`` is the recipe's precision resolved for this machine: "fp32" or "bf16".
    """
    cpu_autocast(precision)  # an unresolved precision fails here, not after the data is prepared
    rows_per_step, seq = recipe.batch_size, recipe.seq_len
    total = max(1, step.tokens // (rows_per_step * seq))
    names = [name for name, _ in step.mix]
    weights = np.asarray([w for _, w in step.mix], dtype=np.float64)
    row_sources = {n: RowSource(sources[n], seq, step.seed * 100 + i) for i, n in enumerate(names)}
    pick = np.random.default_rng(step.seed)

    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=step.lr, betas=(0.9, 0.95), eps=1e-8)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(total, recipe.warmup, recipe.min_lr_ratio))
    torch.manual_seed(step.seed)
    model.train()
    losses: list[float] = []
    start = time.perf_counter()
    threads_before = torch.get_num_threads()
    governor = ThreadGovernor()
    try:
        for _ in range(total):
            governor.adjust()
            chosen = pick.choice(len(names), size=rows_per_step, p=weights / weights.sum())
            rows = [row_sources[names[c]].next_row() for c in chosen]
            ids = torch.from_numpy(np.stack([r[0] for r in rows]))
            labels = torch.from_numpy(np.stack([r[1] for r in rows]))
            with cpu_autocast(precision):
                loss = model(input_ids=ids, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            if on_progress:
                on_progress(rows_per_step * seq, losses[-1])
    finally:
        torch.set_num_threads(threads_before)
    model.eval()
    tail = losses[-max(1, total // 10):]
    return {"optimizer_steps": total, "tokens_trained": total * rows_per_step * seq,
            "train_loss_first": losses[0], "train_loss_last": sum(tail) / len(tail),
            "train_seconds": round(time.perf_counter() - start, 2),
            "optimizer_steps_by_torch_threads": {str(k): v for k, v in sorted(governor.used.items())},
            "load_average_after": [round(x, 2) for x in os.getloadavg()]}


@torch.no_grad()
def heldout_loss(model, packed: Packed, byte_lengths: list[int], seq_len: int, precision: str,
                 batch: int = 16) -> dict:
    """Loss on a held-out source: nats per scored token and bits per UTF-8 byte of the scored tokens.

    ``precision`` ("fp32" or "bf16") is the one the model was trained in.
    Bits per byte compare models whose tokenizers differ (the code expert's has 16 more tokens).
    """
    ids, labels = packed.stream(None)
    width = min(seq_len, len(ids))
    n_rows = len(ids) // width  # the tail shorter than a row is not scored
    ids = ids[: n_rows * width].reshape(n_rows, width)
    labels = labels[: n_rows * width].reshape(n_rows, width)
    lengths = torch.tensor(byte_lengths, dtype=torch.float64)
    nll, tokens, nbytes = 0.0, 0, 0.0
    model.eval()
    for i in range(0, n_rows, batch):
        x = torch.from_numpy(ids[i : i + batch])
        y = torch.from_numpy(labels[i : i + batch])[:, 1:]
        with cpu_autocast(precision):
            logits = model(input_ids=x).logits[:, :-1]
        scored = y != IGNORE
        nll += float(torch.nn.functional.cross_entropy(logits.float()[scored], y[scored], reduction="sum"))
        tokens += int(scored.sum())
        nbytes += float(lengths[y[scored]].sum())
    return {"loss": round(nll / max(1, tokens), 4), "bpb": round(nll / math.log(2) / max(1.0, nbytes), 4),
            "tokens": tokens, "bytes": int(nbytes)}
