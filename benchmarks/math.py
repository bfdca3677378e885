"""MATH level 5 (Hendrycks et al. 2021): answer from the last ``\\boxed{}``, equivalence by math-verify.

Prompt (0-shot, stated in every result)::

    Solve the following problem. Put the final answer in \\boxed{}.

    Problem:
    {problem}

    Solution:

Greedy generation stops at a new "Problem:" block. The prediction is the content of the last
``\\boxed{...}`` (or ``\\fbox``) in the output; an output without one is wrong ("no \\boxed{} answer").
Prediction and reference answer are both parsed by math-verify as ``\\boxed{...}`` LaTeX and compared
with ``verify(gold, pred)``. math-verify times out through SIGALRM, which only works in the main
thread: elsewhere the batch is graded in a spawned helper process, so a pathological expression can
never hang the caller.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Sequence

from harness.data import last_boxed

PROMPT_FORMAT = ("Solve the following problem. Put the final answer in \\boxed{}.\n\n"
                 "Problem:\n{problem}\n\nSolution:")
STOP_SEQUENCES: tuple[str, ...] = ("\n\nProblem:", "\n\nSolve the following problem.")
TIMEOUT_S = 5  # per parse and per comparison (math-verify's unit: whole seconds)


def format_prompt(problem: str) -> str:
    return PROMPT_FORMAT.replace("{problem}", problem)


def extract_answer(output: str) -> str | None:
    """The content of the last ``\\boxed{}`` in a model's output, or None."""
    return last_boxed(output)


def _parse(latex: str, timeout_s: int | None):
    from math_verify import parse
    from math_verify.parser import LatexExtractionConfig

    return parse("\\boxed{" + latex + "}", extraction_config=[LatexExtractionConfig()], parsing_timeout=timeout_s)


def _grade_one(output: str, gold: str, timeout_s: int | None) -> dict:
    from math_verify import verify

    extracted = extract_answer(output)
    if extracted is None:
        return {"extracted": None, "correct": False, "error": "no \\boxed{} answer"}
    try:
        gold_parsed = _parse(gold, timeout_s)
        pred_parsed = _parse(extracted, timeout_s)
        correct = bool(gold_parsed) and bool(pred_parsed) and verify(gold_parsed, pred_parsed,
                                                                     timeout_seconds=timeout_s)
        error = None if gold_parsed else "math-verify could not parse the reference answer"
    except Exception as exc:  # noqa: BLE001 - a grading failure marks the item wrong, with the reason
        correct, error = False, f"{type(exc).__name__}: {exc}"[:300]
    return {"extracted": extracted, "correct": bool(correct), "error": error}


def _grade_batch(outputs: Sequence[str], golds: Sequence[str], timeout_s: int | None) -> list[dict]:
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    return [_grade_one(o, g, timeout_s) for o, g in zip(outputs, golds)]


def grade_outputs(outputs: Sequence[str], golds: Sequence[str], *, timeout_s: int = TIMEOUT_S) -> list[dict]:
    """Grade each output against its reference answer: ``{"extracted", "correct", "error"}`` per item."""
    if len(outputs) != len(golds):
        raise ValueError(f"{len(outputs)} outputs but {len(golds)} reference answers")
    if threading.current_thread() is threading.main_thread():
        return _grade_batch(outputs, golds, timeout_s)
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(_grade_batch, list(outputs), list(golds), timeout_s).result()


def is_equivalent(prediction: str, gold: str, *, timeout_s: int = TIMEOUT_S) -> bool:
    """Whether the answer ``prediction`` (bare LaTeX, no ``\\boxed``) equals ``gold`` per math-verify."""
    return grade_outputs(["\\boxed{" + prediction + "}"], [gold], timeout_s=timeout_s)[0]["correct"]
