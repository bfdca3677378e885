"""The benchmark registry: one :class:`BenchmarkSpec` per name, pointing at its data and its lm-eval task.

A benchmark's version lives in exactly one place, ``metadata.version`` of its task YAML in
``benchmarks/tasks/``; the spec reads it from there.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from harness.data import MMLU_GROUPS, dataset_hash, load_dataset
from harness.registry import Registry

from benchmarks import humaneval, math, mmlu

TASKS_DIR = Path(__file__).with_name("tasks")
KINDS = ("humaneval", "math", "mmlu")

BENCHMARKS: Registry = Registry("benchmark", "harness.benchmarks")


class _TaskYamlLoader(yaml.SafeLoader):
    """Reads lm-eval task YAML without running its ``!function`` tags."""


_TaskYamlLoader.add_multi_constructor("!", lambda loader, suffix, node: f"!{suffix}")


@lru_cache(maxsize=None)
def task_config(task: str) -> dict:
    path = TASKS_DIR / f"{task}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"lm-eval task {task!r} has no definition at {path}")
    config = yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskYamlLoader)
    if "include" in config:
        base = yaml.load((TASKS_DIR / config["include"]).read_text(encoding="utf-8"), Loader=_TaskYamlLoader)
        config = {**base, **config}
    return config


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    kind: str  # "humaneval" | "math" | "mmlu"
    dataset: str  # a harness.data dataset
    task: str  # lm-eval task defined in benchmarks/tasks/<task>.yaml
    metric: str  # what ``score`` means
    description: str
    stratify_by: str | None = None  # field a micro-scale subsample is stratified by
    level: int | None = None  # keep only MATH items of this level

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"benchmark kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def version(self) -> str:
        return str(task_config(self.task)["metadata"]["version"])

    @property
    def prompt_format(self) -> str:
        return {"humaneval": humaneval.PROMPT_FORMAT, "math": math.PROMPT_FORMAT, "mmlu": mmlu.PROMPT_FORMAT}[self.kind]

    def rows(self) -> list[dict]:
        rows = load_dataset(self.dataset)
        if self.level is not None:
            rows = [r for r in rows if r["level"] == self.level]
        return rows

    def data_hash(self) -> str:
        """sha256 of the benchmark's records (the dataset's own hash when no filter applies)."""
        return _data_hash(self.dataset, self.level)

    def documents(self, *, fewshot: int = 0, seed: int = 0) -> tuple[list[dict], dict]:
        """The scored documents, each with its ``prompt``, and notes on how they were built."""
        if fewshot and self.kind != "mmlu":
            raise ValueError(f"few-shot prompts exist for MMLU only, not for {self.name!r}")
        rows = self.rows()
        if self.kind == "mmlu":
            return mmlu.prepare_documents(rows, fewshot=fewshot, seed=seed)
        if self.kind == "math":
            return [{**r, "prompt": math.format_prompt(r["problem"])} for r in rows], {}
        return [dict(r) for r in rows], {}  # HumanEval rows carry their own prompt

    @staticmethod
    def item_id(doc: dict) -> str:
        return doc.get("task_id") or doc["id"]


@lru_cache(maxsize=None)
def _data_hash(dataset: str, level: int | None) -> str:
    if level is None:
        return dataset_hash(dataset)
    digest = hashlib.sha256()
    for row in load_dataset(dataset):
        if row["level"] == level:
            digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


_SPECS = [
    BenchmarkSpec("humaneval", "humaneval", "humaneval", "humaneval_offline", "pass@1",
                  "HumanEval, 164 problems, greedy pass@1 by executing the tests in the sandbox"),
    BenchmarkSpec("math-l5", "math", "math-l5", "math_l5_offline", "accuracy",
                  "MATH test, Level 5 (1,324), \\boxed{} answer, math-verify equivalence", stratify_by="type"),
    BenchmarkSpec("math-500-l5", "math", "math-500", "math_500_l5_offline", "accuracy",
                  "MATH-500's Level 5 subset (faster MATH option)", stratify_by="type", level=5),
    BenchmarkSpec("mmlu", "mmlu", "mmlu", "mmlu_offline", "accuracy",
                  "MMLU, all 57 subjects, micro-averaged", stratify_by="subject"),
    *[BenchmarkSpec(f"mmlu-{group}", "mmlu", f"mmlu-{group}", f"mmlu_offline_{group}", "accuracy",
                    f"MMLU {group} group ({', '.join(subjects)}), micro-averaged", stratify_by="subject")
      for group, subjects in MMLU_GROUPS.items()],
]

_ALIASES = {"math-l5": ("math", "math-level5"), "math-500-l5": ("math-500",), "mmlu-cs": ("mmlu-computer-science",),
            "mmlu-mathematics": ("mmlu-math",)}

for _spec in _SPECS:
    BENCHMARKS.register(_spec.name, _spec, aliases=_ALIASES.get(_spec.name, ()))


def get_benchmark(name: str) -> BenchmarkSpec:
    return BENCHMARKS.get(name)
