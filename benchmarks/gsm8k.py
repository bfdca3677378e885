"""GSM8K (Cobbe et al. 2021): grade-school word problems, the final number graded by math-verify.

Prompt (lm-eval's gsm8k layout; k shots from GSM8K *train*, seeded, the same for every item)::

    Question: {shot question}
    Answer: {shot solution}
    The answer is: {shot answer}

    ... (k shots) ...

    Question: {question}
    Answer:

Greedy generation stops at the next "Question:". The prediction is, in this order, the last
``\\boxed{}``, "The final answer is X", "The answer is X" (how the math suite's training data ends)
or GSM8K's own "#### X"; thousands separators, ``$`` and a trailing period are dropped before
math-verify compares it with the reference number. The continuous metric is the bits per byte of
the reference solution written the same way (``" {solution}\\nThe answer is: {answer}"``).

Few-shot: ``eval.fewshot.gsm8k=k`` (0-8). Adding this benchmark took this module (the kind and its one
benchmark, registered at the bottom) and the math suite's benchmark list (``docs/adding-a-benchmark.md``
walks through it).
"""

from __future__ import annotations

import random
import re

from harness.benchmark import BenchmarkSpec, register_benchmark, register_kind
from harness.data import load_dataset
from harness.data.sampling import ids_sha256

from benchmarks.math import MathKind
from benchmarks.math import extract_answer as extract_math_answer

QUESTION = "Question: {question}\nAnswer:"
PROMPT_FORMAT = "{shots: Question: {q}\\nAnswer: {solution}\\nThe answer is: {answer}\\n\\n}" + QUESTION
STOP_SEQUENCES: tuple[str, ...] = ("\n\nQuestion:", "Question:")
EXTRACTION = "last \\boxed{}, else 'The final answer is X', else 'The answer is X', else '#### X'"
MAX_FEWSHOT = 8
_HASHES = re.compile(r"####\s*([^\n]+)")


def target(row: dict) -> str:
    """A worked solution in the math suite's training format."""
    return f"{row['solution']}\nThe answer is: {row['answer']}"


def format_prompt(question: str, shots: list[dict] = ()) -> str:
    head = "".join(QUESTION.format(question=s["question"].strip()) + f" {target(s)}\n\n" for s in shots)
    return head + QUESTION.format(question=question.strip())


def _normalize(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip().rstrip(".").strip().replace("$", "")
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000 -> 1000
    return text.strip() or None


def extract_answer(output: str) -> str | None:
    """The final answer of a GSM8K completion (see the module docstring), normalised; None if absent."""
    found = extract_math_answer(output)
    if found is None:
        hashes = list(_HASHES.finditer(output))
        found = hashes[-1].group(1) if hashes else None
    return _normalize(found)


class GSM8KKind(MathKind):
    name = "gsm8k"
    version = "1.0"
    stop_sequences = STOP_SEQUENCES
    problem_field = "question"

    def check_fewshot(self, fewshot: int) -> None:
        if not 0 <= fewshot <= MAX_FEWSHOT:
            raise ValueError(f"GSM8K few-shot must be 0..{MAX_FEWSHOT} (shots from its train split), got {fewshot}")

    def stops(self, fewshot: int = 0) -> tuple[str, ...]:
        return STOP_SEQUENCES

    def prompt_format(self, fewshot: int = 0) -> str:
        return PROMPT_FORMAT

    def protocol_details(self, fewshot: int, **_) -> dict:
        return {"extraction": EXTRACTION, "grader": "math-verify equivalence",
                "shots": f"{fewshot} from GSM8K train, seeded" if fewshot else None,
                "stop_sequences": list(STOP_SEQUENCES),
                "continuous": {"bits_per_byte": "' {solution}\\nThe answer is: {answer}' after the prompt"}}

    def documents(self, spec, *, fewshot: int = 0, seed: int = 0, **_):
        shots = random.Random(f"{seed}:gsm8k-shots").sample(load_dataset("gsm8k-train"), fewshot) if fewshot else []
        notes: dict = {"fewshot": fewshot}
        if fewshot:
            notes.update(fewshot_source="GSM8K train split (never the scored test items)", fewshot_seed=seed,
                         fewshot_ids_sha256=ids_sha256([f"train:{s['id']}" for s in shots]))
        docs = [{**r, "prompt": format_prompt(r["question"], shots), "shots": [f"train:{s['id']}" for s in shots]}
                for r in spec.rows()]
        return docs, notes

    def reference(self, doc: dict) -> tuple[str, str]:
        return doc["prompt"], " " + target(doc)

    def extractor(self):
        return extract_answer


KIND = register_kind(GSM8KKind())

register_benchmark(BenchmarkSpec("gsm8k", "gsm8k", "gsm8k-test", "gsm8k_offline",
                                 "GSM8K test, 1,319 word problems, final number graded by math-verify"),
                   aliases=("gsm8k-test",))
