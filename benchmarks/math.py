"""MATH level 5 (Hendrycks et al. 2021): the final answer extracted, equivalence by math-verify.

Two prompts (the protocol, with its shots, is recorded with every score):

- 0-shot (the default)::

    Solve the following problem. Put the final answer in \\boxed{}.

    Problem:
    {problem}

    Solution:

- Minerva 4-shot chain of thought (``eval.fewshot.math=4``; Lewkowycz et al. 2022, the four worked examples
  lm-eval's ``minerva_math`` uses, taken from lm-eval itself)::

    Problem:
    {shot problem}

    Solution: {shot solution ... Final Answer: The final answer is $X$. I hope it is correct.}

    ... (4 shots) ...

    Problem:
    {problem}

    Solution:

Greedy generation stops at a new "Problem:" block. The prediction is, in this order, the content of
the last ``\\boxed{...}`` (or ``\\fbox``), Minerva's "The final answer is X", or "The answer is X"
(the way the math training data ends); an output with none of them is wrong ("no final answer").
Prediction and reference answer are both parsed by math-verify as ``\\boxed{...}`` LaTeX and compared
with ``verify(gold, pred)``. math-verify times out through SIGALRM, which only works in the main
thread: elsewhere the batch is graded in a spawned helper process, so a pathological expression can
never hang the caller.
"""

from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Sequence

from harness.benchmark import (BenchmarkKind, BenchmarkSpec, Scored, package_version, register_benchmark,
                               register_kind)
from harness.data import last_boxed

PROMPT_FORMAT = ("Solve the following problem. Put the final answer in \\boxed{}.\n\n"
                 "Problem:\n{problem}\n\nSolution:")
STOP_SEQUENCES: tuple[str, ...] = ("\n\nProblem:", "\n\nSolve the following problem.")
MINERVA_FORMAT = "{4 shots: Problem:\\n{problem}\\n\\nSolution: {solution}\\n\\n}Problem:\n{problem}\n\nSolution:"
MINERVA_STOP_SEQUENCES: tuple[str, ...] = ("Problem:",)
EXTRACTION = "last \\boxed{}, else 'The final answer is X', else 'The answer is X'"
_FINAL_ANSWER = re.compile(r"[Tt]he final answer is\s*([^\n]+?)\s*(?:I hope it is correct\.?)?\s*$", re.M)
_THE_ANSWER = re.compile(r"[Tt]he answer is:?\s*(.+?)\s*$", re.M)
TIMEOUT_S = 5  # per parse and per comparison (math-verify's unit: whole seconds)


def format_prompt(problem: str) -> str:
    return PROMPT_FORMAT.replace("{problem}", problem)


def minerva_shots() -> list[dict]:
    """The four Minerva worked examples, from lm-eval's ``minerva_math`` task (the library, not a copy)."""
    from lm_eval.tasks.minerva_math.utils import list_fewshot_samples

    return [{"problem": s["problem"], "solution": s["solution"]} for s in list_fewshot_samples()]


def format_minerva_prompt(problem: str, shots: list[dict]) -> str:
    """lm-eval's minerva_math layout: shots joined by a blank line, target after ``"Solution: "``."""
    head = "".join(f"Problem:\n{s['problem']}\n\nSolution: {s['solution']}\n\n" for s in shots)
    return head + f"Problem:\n{problem}\n\nSolution:"


def _strip_answer(text: str) -> str | None:
    text = text.strip().rstrip(".").strip()
    if len(text) >= 2 and text.startswith("$") and text.endswith("$"):
        text = text[1:-1].strip()
    return text or None


def extract_answer(output: str) -> str | None:
    """The final answer in a model's output: the last ``\\boxed{}``, else Minerva's "The final answer
    is X", else the last "The answer is X" line; None when there is none."""
    boxed = last_boxed(output)
    if boxed is not None:
        return boxed
    final = list(_FINAL_ANSWER.finditer(output))
    if final:
        return _strip_answer(final[-1].group(1))
    plain = list(_THE_ANSWER.finditer(output))
    if plain:
        return _strip_answer(plain[-1].group(1))
    return None


def _parse(latex: str, timeout_s: int | None):
    from math_verify import parse
    from math_verify.parser import LatexExtractionConfig

    return parse("\\boxed{" + latex + "}", extraction_config=[LatexExtractionConfig()], parsing_timeout=timeout_s)


def _grade_one(output: str, gold: str, timeout_s: int | None, extract=None) -> dict:
    from math_verify import verify

    extracted = (extract or extract_answer)(output)
    if extracted is None:
        return {"extracted": None, "correct": False, "error": "no final answer"}
    try:
        gold_parsed = _parse(gold, timeout_s)
        pred_parsed = _parse(extracted, timeout_s)
        correct = bool(gold_parsed) and bool(pred_parsed) and verify(gold_parsed, pred_parsed,
                                                                     timeout_seconds=timeout_s)
        error = None if gold_parsed else "math-verify could not parse the reference answer"
    except Exception as exc:  # noqa: BLE001 - a grading failure marks the item wrong, with the reason
        correct, error = False, f"{type(exc).__name__}: {exc}"[:300]
    return {"extracted": extracted, "correct": bool(correct), "error": error}


def _grade_batch(outputs: Sequence[str], golds: Sequence[str], timeout_s: int | None, extract=None) -> list[dict]:
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    return [_grade_one(o, g, timeout_s, extract) for o, g in zip(outputs, golds)]


def grade_outputs(outputs: Sequence[str], golds: Sequence[str], *, timeout_s: int = TIMEOUT_S,
                  extract=None) -> list[dict]:
    """Grade each output against its reference answer: ``{"extracted", "correct", "error"}`` per item.

    ``extract`` (a module-level function, so a helper process can import it) replaces
    :func:`extract_answer`."""
    if len(outputs) != len(golds):
        raise ValueError(f"{len(outputs)} outputs but {len(golds)} reference answers")
    if threading.current_thread() is threading.main_thread():
        return _grade_batch(outputs, golds, timeout_s, extract)
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_grade_batch, list(outputs), list(golds), timeout_s, extract).result()


def is_equivalent(prediction: str, gold: str, *, timeout_s: int = TIMEOUT_S) -> bool:
    """Whether the answer ``prediction`` (bare LaTeX, no ``\\boxed``) equals ``gold`` per math-verify."""
    return grade_outputs(["\\boxed{" + prediction + "}"], [gold], timeout_s=timeout_s)[0]["correct"]


# --- the kind (shared with GSM8K, which differs in prompt, shots and answer format) ----------------

class MathKind(BenchmarkKind):
    """Greedy generation, final answer extracted, math-verify equivalence; continuous: bits per byte
    of the reference solution after the prompt."""

    name = "math"
    version = "2.0"  # 1.0: 0-shot, \\boxed{} only; 2.0: + Minerva 4-shot, "The answer is", bits per byte
    metric = "accuracy"
    stop_sequences = STOP_SEQUENCES
    problem_field = "problem"

    def check_fewshot(self, fewshot: int) -> None:
        if fewshot not in (0, 4):
            raise ValueError(f"MATH has a 0-shot and a Minerva 4-shot protocol; fewshot must be 0 or 4, got {fewshot}")

    def prompt_format(self, fewshot: int = 0) -> str:
        return MINERVA_FORMAT if fewshot else PROMPT_FORMAT

    def protocol_details(self, fewshot: int, **_) -> dict:
        return {"extraction": EXTRACTION, "grader": "math-verify equivalence",
                "shots": "Minerva's 4 worked examples (lm-eval minerva_math)" if fewshot else None,
                "stop_sequences": list(self.stops(fewshot)),
                "continuous": {"bits_per_byte": "' ' + reference solution after the prompt"}}

    def stops(self, fewshot: int) -> tuple[str, ...]:
        return MINERVA_STOP_SEQUENCES if fewshot else STOP_SEQUENCES

    def documents(self, spec, *, fewshot: int = 0, seed: int = 0, **_):
        shots = minerva_shots() if fewshot else []
        prompt = (lambda p: format_minerva_prompt(p, shots)) if fewshot else format_prompt
        notes = {"fewshot": fewshot, "fewshot_source": "Minerva (lm-eval minerva_math)"} if fewshot else {"fewshot": 0}
        return [{**r, "prompt": prompt(r["problem"])} for r in spec.rows()], notes

    def reference(self, doc: dict) -> tuple[str, str]:
        return doc["prompt"], " " + doc["solution"]

    def extractor(self):
        return extract_answer

    def grader(self) -> str:
        return f"math-verify {package_version('math-verify')}"

    def score(self, spec, docs: list[dict], outputs: list, extra: dict, **_) -> Scored:
        graded = grade_outputs(outputs, [d["answer"] for d in docs], extract=self.extractor())
        per_type: dict[str, list[int]] = {}
        for d, g in zip(docs, graded):
            per_type.setdefault(d.get("type", "all"), []).append(int(g["correct"]))
        extra.update(grader=self.grader(), answer_extraction=self.protocol_details(0)["extraction"],
                     no_final_answer=sum(g["extracted"] is None for g in graded))
        if any("type" in d for d in docs):
            extra["per_type"] = {t: {"accuracy": sum(v) / len(v), "n": len(v)} for t, v in sorted(per_type.items())}
        rows = [{"id": d["id"], "type": d.get("type"), "answer": d["answer"], "output": o, **g}
                for d, o, g in zip(docs, outputs, graded)]
        item_scores = [float(g["correct"]) for g in graded]
        return Scored(sum(item_scores) / len(item_scores) if item_scores else None, rows, item_scores)

    def score_completions(self, spec, rows, *, workers=None) -> dict:
        from benchmarks.score import CompletionsError, field_of, unique

        items = spec.rows()
        field = self.problem_field
        by_id = {r["id"]: k for k, r in enumerate(items)}
        by_text = {r[field]: k for k, r in enumerate(items)}
        chosen, outputs, seen = [], [], {}
        for i, row in enumerate(rows):
            if "idx" in row:
                idx = field_of(row, i, "idx", (int, str))
                if isinstance(idx, int):
                    if not 0 <= idx < len(items):
                        raise CompletionsError(f"row {i}: field 'idx' is {idx}, outside 0..{len(items) - 1} for {spec.name}")
                    k = idx
                elif idx in by_id:
                    k = by_id[idx]
                else:
                    raise CompletionsError(f"row {i}: field 'idx' is {idx!r}, neither a position nor an id of {spec.name}")
            elif field in row:
                text = field_of(row, i, field, str)
                if text not in by_text:
                    raise CompletionsError(f"row {i}: field {field!r} matches no {spec.name} item exactly: {text[:80]!r}")
                k = by_text[text]
            else:
                raise CompletionsError(f"row {i}: needs field 'idx' (position or id) or {field!r} to name the item")
            unique(items[k]["id"], i, seen, "idx" if "idx" in row else field)
            chosen.append(items[k])
            outputs.append(field_of(row, i, "output", str))
        graded = grade_outputs(outputs, [d["answer"] for d in chosen], extract=self.extractor())
        correct = sum(g["correct"] for g in graded)
        return {"score": correct / len(graded), "n_items": len(graded), "n_total": len(items),
                "complete": len(graded) == len(items), "n_correct": correct,
                "no_final_answer": sum(g["extracted"] is None for g in graded),
                "item_scores": [float(g["correct"]) for g in graded],
                "per_item": [{"id": d["id"], "answer": d["answer"], **g} for d, g in zip(chosen, graded)]}

    def lm_eval_metric(self, spec) -> dict:
        import functools

        return {"process_results": functools.partial(_lm_eval_process_results, self.extractor()),
                "metric_list": [{"metric": "exact_match", "aggregation": "mean", "higher_is_better": True}]}


def _lm_eval_process_results(extract, doc: dict, results: list) -> dict:
    graded = grade_outputs([results[0]], [doc["answer"]], extract=extract)[0]
    return {"exact_match": float(graded["correct"])}


KIND = register_kind(MathKind())

register_benchmark(BenchmarkSpec("math-l5", "math", "math-l5", "math_l5_offline",
                                 "MATH test, Level 5 (1,324), final answer graded by math-verify", stratify_by="type"),
                   aliases=("math", "math-level5"))
register_benchmark(BenchmarkSpec("math-500-l5", "math", "math-500", "math_500_l5_offline",
                                 "MATH-500's Level 5 subset (faster MATH option)", stratify_by="type", level=5),
                   aliases=("math-500",))
