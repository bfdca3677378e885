"""The benchmark registry: one :class:`BenchmarkSpec` per name, pointing at its data and its kind.

A spec says *what* is scored (a dataset, an optional level filter, how a micro subsample is
stratified); its kind (:mod:`benchmarks.kind`, one module per kind) says *how*: documents, prompt,
scoring, protocol version and the lm-eval task. A benchmark of an existing kind is one line here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache

from harness.data import MMLU_GROUPS, dataset_hash, load_dataset
from harness.registry import Registry

# Importing the kind modules registers them (each ends in register_kind(...)).
from benchmarks import gsm8k, humaneval, math, mmlu  # noqa: F401
from benchmarks.kind import KINDS, BenchmarkKind

BENCHMARKS: Registry = Registry("benchmark", "harness.benchmarks")


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    kind: str  # a registered benchmark kind: humaneval, math, gsm8k, mmlu, ...
    dataset: str  # a harness.data dataset
    task: str  # the lm-eval task name its inline config gets
    description: str
    stratify_by: str | None = None  # field a micro-scale subsample is stratified by
    level: int | None = None  # keep only MATH items of this level

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"benchmark {self.name!r}: kind must be one of {KINDS.names()}, got {self.kind!r}")

    @property
    def kind_impl(self) -> BenchmarkKind:
        return KINDS.get(self.kind)

    @property
    def version(self) -> str:
        """The protocol version of the benchmark's kind (recorded with every score)."""
        return self.kind_impl.version

    @property
    def metric(self) -> str:
        return self.kind_impl.metric

    def prompt_format(self, fewshot: int = 0) -> str:
        return self.kind_impl.prompt_format(fewshot)

    def rows(self) -> list[dict]:
        rows = load_dataset(self.dataset)
        if self.level is not None:
            rows = [r for r in rows if r["level"] == self.level]
        return rows

    def data_hash(self) -> str:
        """sha256 of the benchmark's records (the dataset's own hash when no filter applies)."""
        return _data_hash(self.dataset, self.level)

    def documents(self, *, fewshot: int = 0, seed: int = 0, **options) -> tuple[list[dict], dict]:
        """The scored documents, each with its ``prompt``, and notes on how they were built."""
        self.kind_impl.check_fewshot(fewshot)
        return self.kind_impl.documents(self, fewshot=fewshot, seed=seed, **options)

    def item_id(self, doc: dict) -> str:
        return self.kind_impl.item_id(doc)


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
    BenchmarkSpec("humaneval", "humaneval", "humaneval", "humaneval_offline",
                  "HumanEval, 164 problems, greedy pass@1 by executing the tests in the sandbox"),
    BenchmarkSpec("math-l5", "math", "math-l5", "math_l5_offline",
                  "MATH test, Level 5 (1,324), final answer graded by math-verify", stratify_by="type"),
    BenchmarkSpec("math-500-l5", "math", "math-500", "math_500_l5_offline",
                  "MATH-500's Level 5 subset (faster MATH option)", stratify_by="type", level=5),
    BenchmarkSpec("gsm8k", "gsm8k", "gsm8k-test", "gsm8k_offline",
                  "GSM8K test, 1,319 word problems, final number graded by math-verify"),
    BenchmarkSpec("mmlu", "mmlu", "mmlu", "mmlu_offline", "MMLU, all 57 subjects, micro-averaged",
                  stratify_by="subject"),
    *[BenchmarkSpec(f"mmlu-{group}", "mmlu", f"mmlu-{group}", f"mmlu_offline_{group}",
                    f"MMLU {group} group ({', '.join(subjects)}), micro-averaged", stratify_by="subject")
      for group, subjects in MMLU_GROUPS.items()],
]

_ALIASES = {"math-l5": ("math", "math-level5"), "math-500-l5": ("math-500",), "mmlu-cs": ("mmlu-computer-science",),
            "mmlu-mathematics": ("mmlu-math",), "gsm8k": ("gsm8k-test",)}

for _spec in _SPECS:
    BENCHMARKS.register(_spec.name, _spec, aliases=_ALIASES.get(_spec.name, ()))


def get_benchmark(name: str) -> BenchmarkSpec:
    return BENCHMARKS.get(name)
