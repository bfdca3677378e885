"""Pseudo-labels: the responses a labeller writes for the training prompts, which the target then
trains on in place of the ground truth (Weak2Strong; ProxyTuning as the paper uses it).

Two ways to label (``pseudo_labels.labels``):

- ``generate`` (the default; what Weak2Strong means): the labeller writes each response greedily,
  from the same prompt (same budget) training uses, up to ``pseudo_labels.max_new_tokens`` tokens
  (default: what training keeps, ``training.seq_len - data.max_prompt_tokens``), through the one
  generation path (:func:`harness.engine.generate.generate`), under ``pseudo_labels.label_rule``
  (:data:`LABEL_RULES`): ``eos`` takes what comes before EOS or the budget; ``answer`` makes a label start
  with content and also end where a model that has finished its answer goes on (a BOS, blank lines, the
  next instruction header), as lm-eval stops a base model's generation at the task's delimiters.
- ``teacher-forced`` (the official code's labels): one forward pass of the labeller over prompt +
  ground-truth response; the pseudo-response is its argmax at each response position, taken from the
  position *before* each token (the official code forgets that shift).

Only the records training will reach are labelled (the run's step order is a pure function of seed
and step, :class:`harness.data.batches.StepOrder`); the others keep an empty response and are never
trained on. Labels are cached under ``<cache>/pseudo-labels/<key>/`` where the key covers every
labeller model's identity, the records' hash, the seed and steps that decide which are reached, the
label mode, the decoding settings and the prompt budget: a second run with the same inputs reuses
them. The time spent labelling is the engine's ``pseudo_labels`` phase, so it counts in the method's
cost (the paper's Figure 2c counts it).

What the labels are like is reported with them (in the run's ``prepare.json``): how many are empty, how
many ended by themselves (not cut by the budget), how many are degenerate
(:mod:`harness.engine.degeneracy`: empty or a loop), and how many are one same text. A weak labeller can
write the same few words for every prompt; the target then learns those words, not the task.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from filelock import FileLock

from harness.config import ConfigSection, added_later, check_value as _check, one_of as _one_of
from harness.data import records_hash
from harness.data.batches import StepOrder, collate, encode_example, encode_prompt, pad_id
from harness.engine.degeneracy import is_degenerate, no_answer_reason
from harness.engine.generate import Decoding, Generation, generations
from harness.io import atomic_write_json, atomic_write_text, read_json
from harness.paths import cache_dir
from harness.prompts import PROMPT_TEMPLATE


@dataclass(frozen=True)
class PseudoLabelConfig:
    """How Weak2Strong / ProxyTuning write the responses the target trains on."""

    # "generate": the labeller writes each response (greedy), as the paper uses Weak2Strong;
    # "teacher-forced": the official code's labels, the labeller's argmax under the ground truth (shifted).
    labels: str = "generate"
    max_new_tokens: int | None = None  # None = what training keeps: training.seq_len - data.max_prompt_tokens
    batch_size: int = 64  # decoding batch (KV-cached): 64 labels 1.4x faster than 16 on a 2-core CPU
    # "as-is": the weak model labels as it is (the paper's use); "fine-tuned": Burns et al.'s recipe, the weak
    # model first LoRA-trained (a sub-run) on the ground truth of the first half, labelling the second half.
    weak_supervisor: str = "as-is"
    # How a generated label starts and ends (methods.pseudolabels.LABEL_RULES). "eos", the behaviour from before
    # the option: whatever comes before EOS or the token budget. "answer": the first token has content, and a
    # BOS, three blank lines or the next "### Instruction:" header also end it. The Weak2Strong methods choose
    # "answer": under "eos" the micro experts' greedy labels are blank lines.
    label_rule: str = added_later("eos")

    def __post_init__(self) -> None:
        _one_of("pseudo_labels.labels", self.labels, ("generate", "teacher-forced"))
        _one_of("pseudo_labels.label_rule", self.label_rule, ("eos", "answer"))
        _one_of("pseudo_labels.weak_supervisor", self.weak_supervisor, ("as-is", "fine-tuned"))
        _check(self.max_new_tokens is None or self.max_new_tokens >= 1, "pseudo_labels.max_new_tokens",
               self.max_new_tokens, "null or >= 1")
        _check(self.batch_size >= 1, "pseudo_labels.batch_size", self.batch_size, ">= 1")


# Weak2Strong's and ProxyTuning's labels (hashed into run ids even at its defaults, as before sections
# were registered).
SECTION = ConfigSection("pseudo_labels", PseudoLabelConfig, hashed_at_default=True)

# 2: each label records whether it ended; pseudo_labels.label_rule. Bump when the labelling rule changes: old
# caches are then ignored.
LABEL_FORMAT = 2

INSTRUCTION_HEADER = PROMPT_TEMPLATE.split("{instruction}")[0].strip()  # "### Instruction:"
# Decoding settings of each pseudo_labels.label_rule (harness.engine.generate.Decoding's fields).
LABEL_RULES: dict[str, dict] = {
    "eos": {},
    # Three blank lines in a row: no training response of the code or math suite holds them, and a model
    # that has run out of answer writes blank lines (every micro expert does, greedily). The instruction
    # header: a base model that has seen the format goes on with the next example.
    "answer": {"content_first": True, "stop_at_bos": True, "stop": ("\n\n\n\n", INSTRUCTION_HEADER)},
}


def label_decoding(rule: str, max_new_tokens: int) -> Decoding:
    """The greedy decoding that writes labels under ``rule`` (a :data:`LABEL_RULES` name)."""
    if rule not in LABEL_RULES:
        raise ValueError(f"unknown label rule {rule!r}; rules: {', '.join(LABEL_RULES)}")
    return Decoding(max_new_tokens, **LABEL_RULES[rule])


@dataclass(frozen=True)
class LabelPlan:
    labeller: dict  # role → model identity (every model whose outputs shape the labels)
    mode: str  # "generate" | "teacher-forced"
    decoding: Decoding
    max_prompt_tokens: int
    seq_len: int
    reached: tuple[int, ...]  # indices of the records training reaches

    def key(self, records: list[dict]) -> str:
        payload = {"format": LABEL_FORMAT, "labeller": self.labeller, "mode": self.mode,
                   "decoding": self.decoding.to_dict(), "max_prompt_tokens": self.max_prompt_tokens,
                   "seq_len": self.seq_len, "records": records_hash(records),
                   "reached": hashlib.sha256(json.dumps(self.reached).encode()).hexdigest()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def reached_indices(n_records: int, batch_size: int, max_steps: int, seed: int) -> tuple[int, ...]:
    """Indices of the records a run of ``max_steps`` steps trains on (in first-seen order)."""
    order = StepOrder(n_records, batch_size, seed)
    seen: dict[int, None] = {}
    for step in range(max_steps):
        for i in order.global_batch(step):
            seen.setdefault(i, None)
        if len(seen) == n_records:
            break
    return tuple(seen)


def plan_labels(ctx, labeller: dict, n_records: int) -> LabelPlan:
    c = ctx.config
    max_new = c.pseudo_labels.max_new_tokens or (c.training.seq_len - c.data.max_prompt_tokens)
    return LabelPlan(labeller=labeller, mode=c.pseudo_labels.labels,
                     decoding=label_decoding(c.pseudo_labels.label_rule, max_new),
                     max_prompt_tokens=c.data.max_prompt_tokens, seq_len=c.training.seq_len,
                     reached=reached_indices(n_records, c.training.batch_size, c.training.max_steps, c.seed))


def pseudo_label(ctx, plan: LabelPlan, write: Callable[[list[dict]], list[str | Generation]], source: str,
                 records: list[dict] | None = None) -> tuple[list[dict], dict]:
    """The training records (``records``, default ``ctx.train_records``) with pseudo-responses, and a
    report (cache key, hits, counts; see :func:`label_counts`).

    ``write(records)`` returns one response per record: a :class:`Generation` (its text and whether it
    ended) or a plain text, whose ending is unknown (teacher-forced labels). It is called only on a cache
    miss, inside the ``pseudo_labels`` phase."""
    records = ctx.train_records if records is None else records
    key = plan.key(records)
    folder = cache_dir() / "pseudo-labels" / key
    labels_path, meta_path = folder / "labels.jsonl", folder / "meta.json"
    folder.mkdir(parents=True, exist_ok=True)
    # One labeller per key, even when several jobs need the same labels at once: the others wait, then read.
    with FileLock(str(folder / ".lock")), ctx.phase("pseudo_labels"):
        cached = labels_path.exists() and meta_path.exists()
        if cached:
            rows = [json.loads(line) for line in labels_path.read_text().splitlines()]
        else:
            chosen = [records[i] for i in plan.reached]
            start = time.perf_counter()
            rows = [{"index": i, "id": records[i]["id"], "response": r.text if isinstance(r, Generation) else r,
                     "ended": r.ended if isinstance(r, Generation) else None}
                    for i, r in zip(plan.reached, write(chosen), strict=True)]
            atomic_write_text(labels_path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
            # What the labels cost to make, so a run that finds them cached still counts them in its method's
            # cost (reports.collect.run_values): Figure 2c's minutes include labelling.
            atomic_write_json(meta_path, {"labeller": plan.labeller, "mode": plan.mode,
                                          "decoding": plan.decoding.to_dict(), "n_labelled": len(rows),
                                          "n_records": len(records), "source": source, "format": LABEL_FORMAT,
                                          "labelling_seconds": time.perf_counter() - start})
    by_index = {row["index"]: row["response"] for row in rows}
    labelled = [{"id": r["id"], "instruction": r["instruction"], "response": by_index.get(i, ""),
                 "source": source if i in by_index else "not reached by training (unlabelled)"}
                for i, r in enumerate(records)]
    report = {"cache_key": key, "cache_dir": str(folder), "cached": cached, "mode": plan.mode,
              "labeller": plan.labeller, "decoding": plan.decoding.to_dict(), "n_labelled": len(by_index),
              "n_records": len(records), **label_counts(rows)}
    if cached:
        meta = read_json(meta_path)
        report["first_written_by"] = meta.get("source")
        report["labelling_seconds"] = meta.get("labelling_seconds")  # spent by the run that wrote them
    if warning := label_warning(report):
        report["warning"] = (f"{warning}: the labeller ({source}) writes no answer for most prompts, so the "
                             "target learns that instead of the task; check its outputs in the label cache "
                             f"({labels_path}) or label with another model")
        print(f"[harness] warning: {report['warning']}", file=sys.stderr, flush=True)
    return labelled, report


def label_counts(rows: list[dict]) -> dict:
    """What the labels are like: ``empty_labels`` (whitespace at most), ``ended_labels`` (ended by an end
    token or a stop within the budget; None when the labels do not say, as teacher-forced ones), and
    ``degenerate_labels`` (empty or a loop, :func:`harness.engine.degeneracy.is_degenerate`), with
    ``most_common_label`` and how many labels are that very text (``identical_labels``)."""
    texts = [row["response"] for row in rows]
    endings = [row.get("ended") for row in rows]
    common, count = Counter(texts).most_common(1)[0] if texts else ("", 0)
    return {"empty_labels": sum(1 for t in texts if not t.strip()),
            "ended_labels": None if None in endings else sum(endings),
            "degenerate_labels": sum(map(is_degenerate, texts)),
            "identical_labels": count, "most_common_label": common[:200]}


def label_warning(report: dict) -> str | None:
    """Why most labels of ``report`` are no answer (more than half empty, degenerate or one same text), or None."""
    return no_answer_reason({"n": report.get("n_labelled"), "empty": report.get("empty_labels"),
                             "degenerate": report.get("degenerate_labels"), "identical": report.get("identical_labels"),
                             "most_common": report.get("most_common_label")})


def model_writer(ctx, model, tokenizer, plan: LabelPlan) -> Callable[[list[dict]], list[str | Generation]]:
    """A ``write`` for :func:`pseudo_label` that labels with ``model`` in ``plan.mode``."""
    c = ctx.config

    def write(records: list[dict]) -> list[str | Generation]:
        from tqdm.auto import tqdm

        model.eval()
        with tqdm(total=len(records), desc="pseudo-labels", unit="rec", disable=None) as bar:
            if plan.mode == "teacher-forced":
                return teacher_forced_labels(model, tokenizer, records, plan, c.pseudo_labels.batch_size,
                                             c.training.precision, bar.update)
            prompts = [encode_prompt(tokenizer, r["instruction"], plan.max_prompt_tokens) for r in records]
            return generations(model, tokenizer, prompts, plan.decoding, batch_size=c.pseudo_labels.batch_size,
                               precision=c.training.precision, progress=bar.update)

    return write


def teacher_forced_labels(model, tokenizer, records: list[dict], plan: LabelPlan, batch_size: int,
                          precision: str, progress=None) -> list[str]:
    """The labeller's argmax at each response position under teacher forcing, correctly shifted:
    the token at position t is predicted by the logits at t - 1."""
    import torch

    from harness.precision import autocast_for

    device = next(model.parameters()).device
    out: list[str] = []
    with torch.no_grad():
        for start in range(0, len(records), batch_size):
            chunk = [encode_example(tokenizer, r["instruction"], r["response"], plan.seq_len, "response",
                                    plan.max_prompt_tokens) for r in records[start : start + batch_size]]
            batch = collate(chunk, pad_id(tokenizer))
            with autocast_for(precision, device):
                logits = model(input_ids=batch["input_ids"].to(device),
                               attention_mask=batch["attention_mask"].to(device)).logits
            predicted = logits[:, :-1].argmax(-1).cpu()  # predicted[t] is the guess for token t + 1
            for row, example in enumerate(chunk):
                positions = [t for t in range(1, len(example.input_ids)) if example.labels[t] != -100]
                ids = [int(predicted[row, t - 1]) for t in positions]
                out.append(tokenizer.decode(ids, skip_special_tokens=True))
            if progress is not None:
                progress(len(chunk))
    return out


def trained_on_labels(prepared, records: list[dict], report: dict):
    """``prepared`` set to train on ``records`` (the pseudo-labels ``report`` describes)."""
    prepared.train_records, prepared.train_records_source = records, report["source"]
    prepared.info["pseudo_labels"] = report
    return prepared
