"""The benchmark interface: a benchmark kind (how to score), a benchmark spec (what is scored), their registration.

A kind (:class:`BenchmarkKind`) is everything about one kind of benchmark, in one module: its documents
(with any few-shot examples) and prompts, its few-shot protocols (:meth:`~BenchmarkKind.check_fewshot`),
its evaluation options, the generation it asks for, how it scores the model's outputs, which reference
text the continuous metric (bits per byte) scores, how ``harness score`` reads completions made
elsewhere, and how lm-eval runs it. Evaluation (:mod:`harness.engine.evaluation`) only calls the kind,
so a new kind is one module that ends in ``register_kind(MyKind())`` and registers its benchmarks
with ``register_benchmark(BenchmarkSpec(...))`` (``docs/adding-a-benchmark.md``). The built-in kinds
live in the ``benchmarks`` package, found through the ``harness.benchmark_kinds`` and
``harness.benchmarks`` entry points as a third-party package's would be.

Every score a kind produces carries its protocol (:class:`Protocol`): the kind's version, the shots,
where they came from, the answer extraction and the metric, so two scores are only compared when
their protocols agree.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any, Mapping, Sequence

from harness.data import dataset_hash, load_dataset
from harness.registry import BENCHMARK_KINDS, BENCHMARKS

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
    """Base class of a benchmark kind; subclasses set the attributes and override the methods.

    Evaluation calls, per benchmark: :meth:`check_fewshot`, :meth:`resolve_options`, :meth:`documents`,
    :meth:`generation` (generation kinds), :meth:`score`, :meth:`reference` (bits per byte) and
    :meth:`protocol`; the kind's options reach ``documents``, ``generation``, ``score`` and
    ``protocol_details`` as keyword arguments.
    """

    name: str = ""
    version: str = ""
    metric: str = "accuracy"
    output_type: str = "generate_until"  # or "multiple_choice"
    id_field: str = "id"
    choices: tuple[str, ...] = ()  # multiple_choice: the scored continuations (after a space)
    stop_sequences: tuple[str, ...] = ()  # generate_until: where generation stops
    # The kind's evaluation options and their defaults (``harness eval --option KIND.NAME=VALUE``); a run
    # sets them from its config through :meth:`eval_options`.
    options: Mapping[str, Any] = {}

    # --- protocol and options --------------------------------------------------------------------
    def check_fewshot(self, fewshot: int) -> None:
        """Raise ValueError when this kind has no ``fewshot``-shot protocol (``eval.fewshot.<kind>``)."""
        if fewshot != 0:
            raise ValueError(f"{self.name} has a 0-shot protocol only, got fewshot={fewshot}")

    def check_options(self, options: dict) -> None:
        """Raise ValueError for an option value this kind cannot run with."""

    def resolve_options(self, given: Mapping[str, Any] | None = None) -> dict:
        """The defaults with ``given`` on top; an option the kind does not declare is an error."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            raise ValueError(f"benchmark kind {self.name!r} has no option {', '.join(map(repr, unknown))} "
                             f"(its options: {', '.join(sorted(self.options)) or 'none'})")
        options = {**self.options, **given}
        self.check_options(options)
        return options

    def eval_options(self, config: Any) -> dict:
        """The options a run evaluates with, from its resolved ``RunConfig``."""
        return {}

    # --- documents and prompts -------------------------------------------------------------------
    def documents(self, spec: BenchmarkSpec, *, fewshot: int = 0, seed: int = 0, **options: Any) -> tuple[list[dict], dict]:
        """The scored documents of ``spec``, each with its ``prompt``, and notes on the shots."""
        raise NotImplementedError

    def prompt_format(self, fewshot: int = 0) -> str:
        raise NotImplementedError

    def protocol(self, fewshot: int = 0, **options: Any) -> Protocol:
        return Protocol(kind=self.name, version=self.version, fewshot=fewshot,
                        prompt_format=self.prompt_format(fewshot), metric=self.metric,
                        details=self.protocol_details(fewshot, **options))

    def protocol_details(self, fewshot: int, **options: Any) -> dict:
        return {}

    def stops(self, fewshot: int = 0) -> tuple[str, ...]:
        """Where generation stops under the ``fewshot`` protocol."""
        return self.stop_sequences

    def generation(self, max_new_tokens: int, **options: Any) -> tuple[dict | None, int]:
        """lm-eval's generation kwargs (None for multiple choice) and the samples drawn per document."""
        if self.output_type == "multiple_choice":
            return None, 1
        return {"do_sample": False, "max_gen_toks": max_new_tokens}, 1

    def item_id(self, doc: dict) -> str:
        return str(doc[self.id_field])

    def reference(self, doc: dict) -> tuple[str, str]:
        """(context, continuation) whose bits per byte is the continuous metric of ``doc``."""
        raise NotImplementedError

    # --- scoring ---------------------------------------------------------------------------------
    def score(self, spec: BenchmarkSpec, docs: list[dict], outputs: list, extra: dict, **options: Any) -> Scored:
        """Score ``outputs`` (per document: the choices' log-likelihoods, or the completion(s))."""
        raise NotImplementedError

    def score_completions(self, spec: BenchmarkSpec, rows: Sequence[dict], *, workers: int | None = None) -> dict:
        """``harness score``: validate rows produced elsewhere and score them (see benchmarks.score)."""
        raise NotImplementedError(f"benchmark kind {self.name!r} does not score completions made elsewhere")

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
    """Register ``kind`` under ``kind.name`` (checked: output type, choices, a protocol version)."""
    if kind.output_type not in OUTPUT_TYPES:
        raise ValueError(f"benchmark kind {kind.name!r}: output_type must be one of {OUTPUT_TYPES}, "
                         f"got {kind.output_type!r}")
    if kind.output_type == "multiple_choice" and not kind.choices:
        raise ValueError(f"benchmark kind {kind.name!r} is multiple_choice but names no choices")
    if not kind.version:
        raise ValueError(f"benchmark kind {kind.name!r} needs a protocol version")
    return BENCHMARK_KINDS.register(kind.name, kind)


def _as_dataset(docs: list[dict], **_metadata):
    import datasets

    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def _doc_prompt(doc: dict) -> str:
    return doc["prompt"]


# --- benchmarks ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchmarkSpec:
    """What is scored: a dataset, an optional level filter, how a micro subsample is stratified; its kind
    (a registered :class:`BenchmarkKind`) says how."""

    name: str
    kind: str  # a registered benchmark kind: humaneval, math, gsm8k, mmlu, ...
    dataset: str  # a harness.data dataset
    task: str  # the lm-eval task name its inline config gets
    description: str
    stratify_by: str | None = None  # field a micro-scale subsample is stratified by
    level: int | None = None  # keep only items of this level (MATH)

    def __post_init__(self) -> None:
        if self.kind not in BENCHMARK_KINDS:
            raise ValueError(f"benchmark {self.name!r}: kind must be one of {BENCHMARK_KINDS.names()}, "
                             f"got {self.kind!r}")

    @property
    def kind_impl(self) -> BenchmarkKind:
        return BENCHMARK_KINDS.get(self.kind)

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
        kind = self.kind_impl
        kind.check_fewshot(fewshot)
        return kind.documents(self, fewshot=fewshot, seed=seed, **kind.resolve_options(options))

    def item_id(self, doc: dict) -> str:
        return self.kind_impl.item_id(doc)


def register_benchmark(spec: BenchmarkSpec, aliases: tuple[str, ...] = ()) -> BenchmarkSpec:
    """Register ``spec`` under ``spec.name`` (and ``aliases``) in :data:`harness.registry.BENCHMARKS`."""
    return BENCHMARKS.register(spec.name, spec, aliases=aliases)


@lru_cache(maxsize=None)
def _data_hash(dataset: str, level: int | None) -> str:
    if level is None:
        return dataset_hash(dataset)
    digest = hashlib.sha256()
    for row in load_dataset(dataset):
        if row["level"] == level:
            digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n")
    return digest.hexdigest()


def package_version(dist: str) -> str:
    """The installed version of ``dist`` (a kind names its grader with it), or "unknown"."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


# --- standard errors -------------------------------------------------------------------------------

def mean_and_stderr(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and its standard error (sample standard deviation / sqrt(n)): lm-eval's ``mean`` and
    ``mean_stderr``; kept as a wrapper only for n < 2, where lm-eval divides by zero."""
    from lm_eval.api.metrics import mean, mean_stderr

    values = list(values)
    if not values:
        return None, None
    return mean(values), (mean_stderr(values) if len(values) > 1 else None)


def ratio_and_stderr(numerators: Sequence[float], denominators: Sequence[float]) -> tuple[float | None, float | None]:
    """sum(num) / sum(den) and its delta-method standard error (items of different lengths weigh by length).

    Ours: lm-eval's ``bits_per_byte`` aggregation is this ratio (``weighted_mean``) but has no standard error."""
    n = len(numerators)
    total = sum(denominators)
    if n == 0 or total <= 0:
        return None, None
    ratio = sum(numerators) / total
    if n == 1:
        return ratio, None
    mean_den = total / n
    residual = sum((a - ratio * b) ** 2 for a, b in zip(numerators, denominators))
    return ratio, math.sqrt(residual / (n * (n - 1))) / mean_den


def metric_entry(value: float | None, stderr: float | None, n: int, **extra: Any) -> dict:
    return {"value": value, "stderr": stderr, "n": n, **extra}
