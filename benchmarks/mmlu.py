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

Few-shot (``eval.fewshot.mmlu=k``, 0-5; HELM runs MMLU 5-shot): k shots per subject, from MMLU's dev
split where the hub is reachable (option ``shots_from="dev"``, which a run with ``data.source=hub``
sets), else from that subject's own test items (seeded), which are then removed from the scored
items; the result says which.

Continuous metrics (protocol 2): the probability mass on the correct letter (softmax over the four
letter log-likelihoods) and the bits per byte of the correct answer's *text* in cloze form (the
same header and shots, each shot's answer written out, then ``{question}\nAnswer: {answer text}``),
which move while a small model's accuracy sits at chance.

:func:`letter_logliks` is the direct, batched path: when each letter is a single token after the
prompt (true for common tokenizers), one forward pass over the prompt scores all four letters;
otherwise each continuation is scored in full. Its tokenization and truncation follow lm-eval's
``HFLM`` exactly, so both engines agree (tested on a tiny model).
"""

from __future__ import annotations

import math as _math
import random
from typing import Sequence

from harness.benchmark import BenchmarkKind, BenchmarkSpec, Scored, register_benchmark, register_kind
from harness.data import MMLU_GROUPS
from harness.data.sampling import ids_sha256
from harness.engine.loglik import choice_logliks

LETTERS: tuple[str, ...] = ("A", "B", "C", "D")
HEADER = "The following are multiple choice questions (with answers) about {subject}.\n\n"
QUESTION = "{question}\nA. {A}\nB. {B}\nC. {C}\nD. {D}\nAnswer:"
PROMPT_FORMAT = HEADER + "{shots}" + QUESTION + "  → scored continuations ' A' | ' B' | ' C' | ' D'"
CLOZE_FORMAT = HEADER + "{shots}" + "{question}\nAnswer:" + "  → bits per byte of ' {correct choice text}'"
FEWSHOT_SOURCES = {
    "test": "held-out MMLU test items of the same subject (the packaged copy has no dev split), not scored",
    "dev": "MMLU dev split of the same subject (cais/mmlu from the hub)",
}


def subject_title(subject: str) -> str:
    return subject.replace("_", " ")


def _question_block(row: dict) -> str:
    a, b, c, d = row["choices"]
    return QUESTION.format(question=row["question"].strip(), A=a, B=b, C=c, D=d)


def format_prompt(row: dict, shots: Sequence[dict] = ()) -> str:
    shot_text = "".join(f"{_question_block(s)} {s['answer']}\n\n" for s in shots)
    return HEADER.format(subject=subject_title(row["subject"])) + shot_text + _question_block(row)


def answer_text(row: dict) -> str:
    return row["choices"]["ABCD".index(row["answer"])]


def cloze_context(row: dict, shots: Sequence[dict] = ()) -> str:
    """The cloze form of the prompt: no listed choices, each shot's answer written out."""
    shot_text = "".join(f"{s['question'].strip()}\nAnswer: {answer_text(s)}\n\n" for s in shots)
    return HEADER.format(subject=subject_title(row["subject"])) + shot_text + f"{row['question'].strip()}\nAnswer:"


def prepare_documents(rows: Sequence[dict], *, fewshot: int = 0, seed: int = 0,
                      shot_pool: Sequence[dict] | None = None, shots_from: str = "test") -> tuple[list[dict], dict]:
    """Scored documents (rows plus ``prompt``) and a description of the few-shot choice.

    Shots for a subject come from ``shot_pool`` (default: ``rows``) items of that subject, chosen by
    ``seed`` and the subject's name, so every benchmark holding that subject uses the same shots.
    Shots drawn from ``rows`` themselves are held out: a scored item is never its own shot.
    Each document also carries ``shots`` (the ids of its shots) and ``cloze_context``.
    """
    shots: dict[str, list[dict]] = {}
    if fewshot:
        pool: dict[str, list[dict]] = {}
        for r in shot_pool if shot_pool is not None else rows:
            pool.setdefault(r["subject"], []).append(r)
        for subject in sorted({r["subject"] for r in rows}):
            members = pool.get(subject, [])
            need = fewshot + (1 if shot_pool is None else 0)  # held-out shots must leave an item to score
            if len(members) < need:
                raise ValueError(f"MMLU subject {subject!r} has {len(members)} {shots_from} items; "
                                 f"cannot take {fewshot} shots from them")
            shots[subject] = random.Random(f"{seed}:fewshot:{subject}").sample(members, fewshot)
    held_out = {s["id"] for group in shots.values() for s in group} if shot_pool is None else set()
    docs = []
    for r in rows:
        if r["id"] in held_out:
            continue
        own = shots.get(r["subject"], ())
        docs.append({**r, "prompt": format_prompt(r, own), "cloze_context": cloze_context(r, own),
                     "shots": [f"{shots_from}:{s['id']}" for s in own]})
    info = {"fewshot": fewshot}
    if fewshot:
        shot_ids = [f"{shots_from}:{s['id']}" for subject in sorted(shots) for s in shots[subject]]
        info.update({"fewshot_source": FEWSHOT_SOURCES[shots_from], "fewshot_seed": seed,
                     "n_held_out": len(held_out), "fewshot_ids_sha256": ids_sha256(shot_ids)})
    return docs, info


# --- the direct, batched log-likelihood path -------------------------------------------------------

def letter_logliks(model, tokenizer, prompts: Sequence[str], *, batch_size: int = 16,
                   letters: Sequence[str] = LETTERS) -> tuple[list[list[float]], dict]:
    """Log-likelihood of ``" " + letter`` after each prompt (see :func:`harness.engine.loglik.choice_logliks`)."""
    return choice_logliks(model, tokenizer, prompts, letters, batch_size=batch_size)


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


def p_correct(logliks: Sequence[float], answer: str) -> float:
    """Probability mass on the correct letter, normalised over the four letters."""
    top = max(logliks)
    weights = [_math.exp(x - top) for x in logliks]
    return weights[LETTERS.index(answer)] / sum(weights)


# --- the kind ------------------------------------------------------------------------------------

class MMLUKind(BenchmarkKind):
    """Letter log-likelihood over A-D; continuous: p(correct letter) and cloze bits per byte."""

    name = "mmlu"
    version = "2.0"  # 1.0: accuracy only; 2.0: + p_correct, cloze bits per byte, dev-split shots
    metric = "accuracy"
    output_type = "multiple_choice"
    choices = LETTERS
    options = {"shots_from": "test"}  # where few-shot examples come from: "test" (held out) or "dev" (the hub)

    def check_fewshot(self, fewshot: int) -> None:
        if fewshot < 0 or fewshot > 5:
            raise ValueError(f"MMLU few-shot must be 0..5 (its dev split has 5 items per subject), got {fewshot}")

    def check_options(self, options: dict) -> None:
        if options["shots_from"] not in FEWSHOT_SOURCES:
            raise ValueError(f"MMLU shots_from must be one of {sorted(FEWSHOT_SOURCES)}, got {options['shots_from']!r}")

    def eval_options(self, config) -> dict:
        # MMLU's dev split exists on the hub only: used where the run reads the hub
        return {"shots_from": "dev" if config.data.source == "hub" else "test"}

    def prompt_format(self, fewshot: int = 0) -> str:
        return PROMPT_FORMAT

    def protocol_details(self, fewshot: int, shots_from: str = "test", **_) -> dict:
        return {"continuous": {"p_correct": "softmax over the letters' log-likelihoods, mass on the answer",
                               "bits_per_byte": CLOZE_FORMAT},
                "average": "micro (share of all scored items)", **({"shots_from": shots_from} if fewshot else {})}

    def documents(self, spec, *, fewshot: int = 0, seed: int = 0, shots_from: str = "test", **_):
        self.check_options({"shots_from": shots_from})
        pool = None
        if fewshot and shots_from == "dev":
            from harness.data.datasets import load_mmlu_dev_from_hub

            pool = load_mmlu_dev_from_hub()
        return prepare_documents(spec.rows(), fewshot=fewshot, seed=seed, shot_pool=pool, shots_from=shots_from)

    def reference(self, doc: dict) -> tuple[str, str]:
        return doc.get("cloze_context") or cloze_context(doc), " " + answer_text(doc)

    def score(self, spec, docs: list[dict], outputs: list, extra: dict, **_) -> Scored:
        preds = [predict(ll) for ll in outputs]
        summary = summarize(docs, preds)
        extra.update({k: v for k, v in summary.items() if k != "accuracy"})
        probs = [p_correct(ll, d["answer"]) for d, ll in zip(docs, outputs)]
        rows = [{"id": d["id"], "subject": d["subject"], "answer": d["answer"], "prediction": p,
                 "correct": p == d["answer"], "logliks": ll, "p_correct": q}
                for d, p, ll, q in zip(docs, preds, outputs, probs)]
        return Scored(summary["accuracy"], rows, [float(p == d["answer"]) for d, p in zip(docs, preds)],
                      continuous={"p_correct": probs})

    def score_completions(self, spec, rows, *, workers=None) -> dict:
        from benchmarks.score import CompletionsError, field_of, unique

        items = {r["id"]: r for r in spec.rows()}
        chosen, preds, seen = [], [], {}
        for i, row in enumerate(rows):
            item_id = field_of(row, i, "id", str)
            if item_id not in items:
                raise CompletionsError(f"row {i}: field 'id' is {item_id!r}, not an item of {spec.name} "
                                       "(ids look like 'college_physics/0')")
            unique(item_id, i, seen, "id")
            answer = field_of(row, i, "answer", str).strip().upper()
            if answer not in LETTERS:
                raise CompletionsError(f"row {i}: field 'answer' is {row['answer']!r}; expected one of A, B, C, D")
            chosen.append(items[item_id])
            preds.append(answer)
        summary = summarize(chosen, preds)
        return {"score": summary.pop("accuracy"), "n_items": len(chosen), "n_total": len(items),
                "complete": len(chosen) == len(items), **summary,
                "item_scores": [float(p == d["answer"]) for d, p in zip(chosen, preds)],
                "per_item": [{"id": d["id"], "answer": d["answer"], "prediction": p, "correct": p == d["answer"]}
                             for d, p in zip(chosen, preds)]}


KIND = register_kind(MMLUKind())

register_benchmark(BenchmarkSpec("mmlu", "mmlu", "mmlu", "mmlu_offline", "MMLU, all 57 subjects, micro-averaged",
                                 stratify_by="subject"))
_GROUP_ALIASES = {"cs": ("mmlu-computer-science",), "mathematics": ("mmlu-math",)}
for _group, _subjects in MMLU_GROUPS.items():
    register_benchmark(BenchmarkSpec(f"mmlu-{_group}", "mmlu", f"mmlu-{_group}", f"mmlu_offline_{_group}",
                                     f"MMLU {_group} group ({', '.join(_subjects)}), micro-averaged",
                                     stratify_by="subject"), aliases=_GROUP_ALIASES.get(_group, ()))
