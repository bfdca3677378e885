"""Glue between lm-eval and our benchmarks: data loaders, prompts and metrics the task YAMLs call.

The YAMLs in ``benchmarks/tasks/`` reach these through ``tasks/harness_tasks.py`` (lm-eval imports
``!function`` modules by file path, so that file only re-exports from here). HumanEval's metric runs
in our sandbox (:mod:`benchmarks.sandbox`), never in lm-eval's ``code_eval``.
"""

from __future__ import annotations

from benchmarks import humaneval, math
from benchmarks.registry import get_benchmark


def load_benchmark(benchmark: str, fewshot: int = 0, fewshot_seed: int = 0, **_metadata):
    """``custom_dataset`` for every task: the benchmark's scored documents as a one-split DatasetDict.

    lm-eval calls it with the task's metadata and ``dataset_kwargs`` (``benchmark: <name>``);
    ``fewshot``/``fewshot_seed`` arrive through ``TaskManager(metadata=...)`` and apply to MMLU only.
    """
    import datasets

    spec = get_benchmark(benchmark)
    docs, _ = spec.documents(fewshot=fewshot if spec.kind == "mmlu" else 0, seed=fewshot_seed)
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def doc_prompt(doc: dict) -> str:
    return doc["prompt"]


def keep_all_samples(resps: list[list[str]], docs: list[dict]) -> list[list[str]]:
    """Filter that keeps every sampled completion (lm-eval's default keeps only the first)."""
    return resps


def humaneval_process_results(doc: dict, results: list) -> dict:
    completions = results[0] if isinstance(results[0], list) else [results[0]]
    return {"pass@1": (doc["task_id"], tuple(completions))}


def humaneval_pass_at_1(items: list[tuple[str, tuple[str, ...]]]) -> float:
    """Aggregation: run every completion in the sandbox, then average the unbiased pass@1."""
    problems = {p["task_id"]: p for p in get_benchmark("humaneval").rows()}
    rows = [{"task_id": task_id, "completion": c} for task_id, completions in items for c in completions]
    return humaneval.score_humaneval(rows, problems, ks=(1,))["score"]


def math_process_results(doc: dict, results: list) -> dict:
    graded = math.grade_outputs([results[0]], [doc["answer"]])[0]
    return {"exact_match": float(graded["correct"])}
