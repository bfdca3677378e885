"""Benchmark kinds: everything about one kind of benchmark (MMLU, HumanEval, MATH, GSM8K) in one module.

A kind says how to get its documents (with any few-shot examples), build a prompt, score the
model's outputs, name an item, read completions made elsewhere (``harness score``), which reference
text the continuous metric (bits per byte) scores, and how lm-eval runs it. Evaluation
(:mod:`benchmarks.evaluate`), ``harness score`` and the lm-eval task configs all go through the kind,
so adding a benchmark kind is one module ending in ``register_kind(MyKind())`` (see
``docs/adding-a-benchmark.md``); a benchmark of that kind is then one ``BenchmarkSpec`` line in
:mod:`benchmarks.registry`.

Every score a kind produces carries its protocol (:class:`Protocol`): the kind's version, the shots,
where they came from, the answer extraction and the metric, so two scores are only compared when
their protocols agree.
"""

from __future__ import annotations

import functools
import math as _math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from harness.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from benchmarks.registry import BenchmarkSpec

KINDS: Registry = Registry("benchmark kind", "harness.benchmark_kinds")
OUTPUT_TYPES = ("multiple_choice", "generate_until")


@dataclass(frozen=True)
class Protocol:
    """How a score was obtained; recorded with every score (``BenchmarkResult.protocol``)."""

    kind: str
    version: str  # the kind's protocol version: bump it when the prompt, shots, extraction or metric change
    fewshot: int
    prompt_format: str
    metric: str
    details: dict = field(default_factory=dict)  # shots source, extraction, grader, ...

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Scored:
    """A kind's verdict on the chosen documents."""

    score: float | None  # the headline (accuracy, pass@1)
    per_item: list[dict]  # one row per scored output (written to <benchmark>.jsonl)
    item_scores: list[float]  # one value per document, whose mean is ``score`` (for its standard error)
    extra: dict = field(default_factory=dict)  # breakdowns (per subject/type), outcomes, ...
    continuous: dict[str, list[float]] = field(default_factory=dict)  # per-document values, e.g. p_correct


class BenchmarkKind:
    """Base class of a benchmark kind; subclasses set the attributes and override the methods."""

    name: str = ""
    version: str = ""
    metric: str = "accuracy"
    output_type: str = "generate_until"  # or "multiple_choice"
    id_field: str = "id"
    choices: tuple[str, ...] = ()  # multiple_choice: the scored continuations (after a space)
    stop_sequences: tuple[str, ...] = ()  # generate_until: where generation stops

    # --- documents and prompts -------------------------------------------------------------------
    def check_fewshot(self, fewshot: int) -> None:
        """Raise ValueError when this kind has no ``fewshot``-shot protocol."""
        if fewshot != 0:
            raise ValueError(f"{self.name} has a 0-shot protocol only, got fewshot={fewshot}")

    def documents(self, spec: BenchmarkSpec, *, fewshot: int = 0, seed: int = 0) -> tuple[list[dict], dict]:
        """The scored documents of ``spec``, each with its ``prompt``, and notes on the shots."""
        raise NotImplementedError

    def prompt_format(self, fewshot: int = 0) -> str:
        raise NotImplementedError

    def protocol(self, fewshot: int = 0, **details: Any) -> Protocol:
        return Protocol(kind=self.name, version=self.version, fewshot=fewshot,
                        prompt_format=self.prompt_format(fewshot), metric=self.metric,
                        details={**self.protocol_details(fewshot), **details})

    def protocol_details(self, fewshot: int) -> dict:
        return {}

    def stops(self, fewshot: int = 0) -> tuple[str, ...]:
        """Where generation stops under the ``fewshot`` protocol."""
        return self.stop_sequences

    def item_id(self, doc: dict) -> str:
        return str(doc[self.id_field])

    def reference(self, doc: dict) -> tuple[str, str]:
        """(context, continuation) whose bits per byte is the continuous metric of ``doc``."""
        raise NotImplementedError

    # --- scoring ---------------------------------------------------------------------------------
    def score(self, spec: BenchmarkSpec, docs: list[dict], outputs: list, extra: dict) -> Scored:
        """Score ``outputs`` (per document: the choices' log-likelihoods, or the completion(s))."""
        raise NotImplementedError

    def score_completions(self, spec: BenchmarkSpec, rows: Sequence[dict], *, workers: int | None = None) -> dict:
        """``harness score``: validate rows produced elsewhere and score them (see benchmarks.score)."""
        raise NotImplementedError

    # --- lm-eval ---------------------------------------------------------------------------------
    def lm_eval_task(self, spec: BenchmarkSpec, docs: list[dict], *, fewshot: int = 0,
                     generation: dict | None = None, repeats: int = 1) -> dict:
        """An inline lm-eval task config over ``docs`` (their prompts are complete: num_fewshot 0)."""
        config: dict[str, Any] = {
            "task": spec.task,
            "custom_dataset": functools.partial(_as_dataset, docs),
            "test_split": "test",
            "doc_to_text": _doc_prompt,
            "num_fewshot": 0,
            "output_type": self.output_type,
            "metadata": {"version": self.version},
        }
        if self.output_type == "multiple_choice":
            config.update(doc_to_choice=list(self.choices), doc_to_target="answer",
                          metric_list=[{"metric": "acc", "aggregation": "mean", "higher_is_better": True}])
        else:
            config.update(doc_to_target=self.id_field, repeats=repeats,
                          generation_kwargs={"until": list(self.stops(fewshot)), **(generation or {})},
                          **self.lm_eval_metric(spec))
        return config

    def lm_eval_metric(self, spec: BenchmarkSpec) -> dict:
        """``process_results`` and ``metric_list`` (and any ``filter_list``) for a generation kind."""
        raise NotImplementedError


def register_kind(kind: BenchmarkKind) -> BenchmarkKind:
    if kind.output_type not in OUTPUT_TYPES:
        raise ValueError(f"benchmark kind {kind.name!r}: output_type must be one of {OUTPUT_TYPES}, "
                         f"got {kind.output_type!r}")
    if kind.output_type == "multiple_choice" and not kind.choices:
        raise ValueError(f"benchmark kind {kind.name!r} is multiple_choice but names no choices")
    if not kind.version:
        raise ValueError(f"benchmark kind {kind.name!r} needs a protocol version")
    return KINDS.register(kind.name, kind)


def _as_dataset(docs: list[dict], **_metadata):
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def _doc_prompt(doc: dict) -> str:
    return doc["prompt"]


# --- standard errors -------------------------------------------------------------------------------

def mean_and_stderr(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and its standard error (sample standard deviation / sqrt(n), as lm-eval's ``mean_stderr``)."""
    n = len(values)
    if n == 0:
        return None, None
    mean = sum(values) / n
    if n == 1:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, _math.sqrt(var / n)


def ratio_and_stderr(numerators: Sequence[float], denominators: Sequence[float]) -> tuple[float | None, float | None]:
    """sum(num) / sum(den) and its delta-method standard error (items of different lengths weigh by length)."""
    n = len(numerators)
    total = sum(denominators)
    if n == 0 or total <= 0:
        return None, None
    ratio = sum(numerators) / total
    if n == 1:
        return ratio, None
    mean_den = total / n
    residual = sum((a - ratio * b) ** 2 for a, b in zip(numerators, denominators))
    return ratio, _math.sqrt(residual / (n * (n - 1))) / mean_den


def metric_entry(value: float | None, stderr: float | None, n: int, **extra: Any) -> dict:
    return {"value": value, "stderr": stderr, "n": n, **extra}
