"""Evaluate a model on benchmarks: lm-eval runs the model, the benchmark's kind scores, everything is recorded.

lm-eval (0.4.13) is the engine: each benchmark's kind (:class:`harness.benchmark.BenchmarkKind`, one
module per kind) builds an inline task config over the pinned documents, and lm-eval generates or
scores the choices' log-likelihoods with its ``HFLM`` wrapped around the in-memory model. For
multiple-choice kinds the direct batched path (:func:`harness.engine.loglik.choice_logliks`,
``choice_engine="direct"``) agrees with lm-eval item by item. Evaluation never branches on a kind's
name: the kind gives its options, documents, generation kwargs, scores, protocol and reference text.

Beside each headline score, every benchmark reports continuous metrics that move while a small
model's accuracy sits at chance (OLMES; DataDecide): the bits per byte of the item's reference text
(the correct answer, the canonical solution, the worked solution) and whatever per-item values the
kind adds (MMLU: the probability mass on the correct choice). Every metric carries its standard error and n.

The subsample of a micro-scale evaluation is drawn with ``subsample_seed`` (the run's
``eval.subsample_seed``, not its training seed), so every run of a comparison scores the same items.

Every :class:`BenchmarkResult` records the protocol (kind, version, shots, prompt, extraction), the
data hash, the number of items, any subsample (seed, stratification, sha256 of the chosen ids) and
the timing; per-item outputs go to ``out_dir/<benchmark>.jsonl``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.benchmark import (BenchmarkKind, BenchmarkSpec, Scored, mean_and_stderr, metric_entry,
                               package_version, ratio_and_stderr)
from harness.data.sampling import ids_sha256, stratified_sample
from harness.engine.generate import generate_ids
from harness.engine.loglik import choice_logliks, continuation_logliks, model_max_length
from harness.io import atomic_write_text
from harness.precision import autocast_dtype, autocast_for
from harness.registry import BENCHMARK_KINDS, BENCHMARKS

CHOICE_ENGINES = ("lm-eval", "direct")  # how multiple-choice kinds are scored
CONTINUOUS_METRICS = ("bits_per_byte", "p_correct")
EVAL_PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class BenchmarkResult:
    name: str
    version: str  # the protocol version of the benchmark's kind
    metric: str  # "pass@1" or "accuracy"
    score: float | None
    n_items: int  # items scored
    n_total: int  # items the benchmark has (after any few-shot hold-out)
    subsample: dict | None  # None, or {"seed", "stratified_by", "n", "ids_sha256"}
    data_hash: str
    prompt_format: str
    seconds: float
    stderr: float | None = None  # standard error of ``score`` over the scored items
    metrics: dict = field(default_factory=dict)  # name -> {"value", "stderr", "n", ...}: headline + continuous
    protocol: dict = field(default_factory=dict)  # harness.benchmark.Protocol as a dict
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def select_items(spec: BenchmarkSpec, docs: Sequence[dict], limit: int | None, seed: int) -> tuple[list[int], dict | None]:
    """Indices of the documents to score and the subsample record (None when all are scored)."""
    if limit is None or limit >= len(docs):
        return list(range(len(docs))), None
    if limit < 1:
        raise ValueError(f"limit must be a positive number of items, got {limit}")
    key = (lambda d: str(d[spec.stratify_by])) if spec.stratify_by else None
    indices = stratified_sample(docs, limit, seed=seed, stratum=key)
    return indices, {"seed": seed, "stratified_by": spec.stratify_by, "n": len(indices),
                     "ids_sha256": ids_sha256([spec.item_id(docs[i]) for i in indices])}


@contextlib.contextmanager
def _quiet(*loggers: str):
    saved = {name: logging.getLogger(name).level for name in loggers}
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _rng_preserved():
    """lm-eval reseeds python, numpy and torch; give the caller (a training run) its RNG state back."""
    import random

    import numpy as np
    import torch

    states = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
              torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if states[3] is not None:
            torch.cuda.set_rng_state_all(states[3])


class _LmEval:
    """One HFLM around the model, reused for every benchmark of an evaluation."""

    def __init__(self, model, tokenizer, batch_size: int, precision: str = "fp32"):
        from lm_eval.models.huggingface import HFLM

        class GreedyDecodedHere(HFLM):
            """lm-eval's HFLM whose greedy generation runs the harness's decoding loop
            (:func:`harness.engine.generate.generate_ids`): the tokens ``transformers``' ``generate`` writes, a
            row stopping at an end token or at one of the task's stop sequences, and the KV cache growing in
            place. lm-eval cuts each text at its first stop sequence either way, so the
            scored texts are the same. Sampling stays with ``generate`` (its random draws are the reference)."""

            def _model_generate(self, context, max_length: int, stop: list[str], **generation_kwargs):
                import torch

                settings = dict(generation_kwargs)
                mask = settings.pop("attention_mask", None)
                do_sample, temperature = settings.pop("do_sample", None), settings.pop("temperature", 0.0)
                greedy = do_sample is False or (do_sample is None and temperature == 0.0)  # as HFLM reads them
                if not greedy or settings:
                    return super()._model_generate(context, max_length, stop, **generation_kwargs)
                with torch.autocast(device_type=self.device.type, dtype=self.mixed_precision_dtype,
                                    enabled=self.mixed_precision_dtype is not None):
                    return generate_ids(self.model, context, mask, max_length=max_length,
                                        pad_token_id=self.tokenizer.pad_token_id, stop_strings=stop,
                                        tokenizer=self.tokenizer)

        with _quiet("lm_eval"):
            # A copy: HFLM may set a pad token, which must not leak into the caller's tokenizer.
            # HFLM runs each model call in an autocast block of its own (disabled when it has no dtype), which
            # would switch off the caller's: it is given the evaluation's precision.
            self.lm = GreedyDecodedHere(pretrained=model, tokenizer=copy.deepcopy(tokenizer), batch_size=batch_size,
                                        mixed_precision_dtype=autocast_dtype(precision))

    def run(self, spec: BenchmarkSpec, docs: list[dict], *, fewshot: int = 0, gen_kwargs: dict | None = None,
            repeats: int = 1) -> tuple[list[dict], dict]:
        """lm-eval's logged samples (in document order) and its metric values, scoring exactly ``docs``."""
        from lm_eval import simple_evaluate
        from lm_eval.tasks import TaskManager

        config = spec.kind_impl.lm_eval_task(spec, docs, fewshot=fewshot, generation=gen_kwargs, repeats=repeats)
        with _quiet("lm_eval"), _rng_preserved():
            manager = TaskManager(include_defaults=False)
            task = manager.load([config])["tasks"][spec.task]
            out = simple_evaluate(model=self.lm, tasks=[task], task_manager=manager,
                                  confirm_run_unsafe_code=True, bootstrap_iters=0, log_samples=True)
        samples = sorted(out["samples"][spec.task], key=lambda s: int(s["doc_id"]))
        metrics = {k: v for k, v in out["results"][spec.task].items() if "," in k and "stderr" not in k}
        return samples, {"task": spec.task, "version": str(out["versions"][spec.task]), "metrics": metrics}


def evaluate_model(model, tokenizer, benchmarks: Sequence[str], *, limit: int | None = None,
                   subsample_seed: int = 0, batch_size: int = 16, max_new_tokens: int = 512,
                   out_dir: Path | str | None = None, fewshot: Mapping[str, int] | None = None,
                   options: Mapping[str, Mapping[str, Any]] | None = None, choice_engine: str = "lm-eval",
                   continuous: bool = True, precision: str = "fp32") -> dict[str, BenchmarkResult]:
    """Score ``model`` on each benchmark (registered names or aliases); results by canonical name.

    ``limit`` scores a fixed stratified subsample of that many items per benchmark, drawn with
    ``subsample_seed`` (the ``micro`` scale); ``None`` scores everything (``paper``). ``fewshot``
    maps a benchmark kind to its shots (``{"mmlu": 5, "math": 4}``), drawn with ``subsample_seed``
    too; ``options`` maps a kind to its options (``{"humaneval": {"samples": 10}}``, see each kind's
    ``options``). ``choice_engine="direct"`` scores multiple-choice kinds with the batched
    log-likelihood path instead of lm-eval. ``continuous`` adds the bits per byte of each item's
    reference text.

    ``precision`` (a resolved one: "fp32", "bf16", "fp16"; a run passes its own) is the autocast every model call
    of the evaluation runs under: log-likelihoods, greedy and sampled generation, reference bits. One block
    around all of them, because the model's own wrapper does not reach every call: accelerate's mixed-precision
    wrapper patches a model's ``forward``, and a peft model's ``generate`` runs its base model's, so a LoRA
    run's sampled HumanEval (and, before our decoding loop, its greedy one) decoded in fp32 while a full
    fine-tuning run's decoded in bf16.
    """
    if choice_engine not in CHOICE_ENGINES:
        raise ValueError(f"choice_engine must be one of {CHOICE_ENGINES}, got {choice_engine!r}")
    if precision not in EVAL_PRECISIONS:
        raise ValueError(f"precision must be one of {EVAL_PRECISIONS} (a resolved precision), got {precision!r}")
    shots = {BENCHMARK_KINDS.canonical(kind): k for kind, k in (fewshot or {}).items()}
    given = {BENCHMARK_KINDS.canonical(kind): o for kind, o in (options or {}).items()}
    for kind_name, k in shots.items():  # bad options fail before any model work
        BENCHMARK_KINDS.get(kind_name).check_fewshot(k)
    kind_options = {name: BENCHMARK_KINDS.get(name).resolve_options(o) for name, o in given.items()}
    names = list(dict.fromkeys(BENCHMARKS.canonical(b) for b in benchmarks))
    specs: list[BenchmarkSpec] = [BENCHMARKS.get(name) for name in names]
    for spec in specs:
        if spec.kind not in kind_options:
            kind_options[spec.kind] = spec.kind_impl.resolve_options()
    max_new = min(max_new_tokens, model_max_length(model, tokenizer) // 2)
    engine: _LmEval | None = None
    results: dict[str, BenchmarkResult] = {}
    with autocast_for(precision, next(model.parameters()).device):  # every model call below, lm-eval's too
        for spec in specs:
            kind: BenchmarkKind = spec.kind_impl
            opts = kind_options[spec.kind]
            start = time.perf_counter()
            k = shots.get(spec.kind, 0)
            docs, notes = kind.documents(spec, fewshot=k, seed=subsample_seed, **opts)
            indices, subsample = select_items(spec, docs, limit, subsample_seed)
            chosen = [docs[i] for i in indices]
            extra: dict = {**notes, "precision": precision}
            if kind.output_type == "multiple_choice" and choice_engine == "direct":
                outputs, path = choice_logliks(model, tokenizer, [d["prompt"] for d in chosen], kind.choices,
                                               batch_size=batch_size)
                extra.update(engine="direct", batch_size=batch_size, loglik_path=path)
            else:
                if engine is None:
                    engine = _LmEval(model, tokenizer, batch_size, precision)
                gen_kwargs, repeats = kind.generation(max_new, **opts)
                samples, lm_eval_info = engine.run(spec, chosen, fewshot=k, gen_kwargs=gen_kwargs, repeats=repeats)
                if [kind.item_id(s["doc"]) for s in samples] != [kind.item_id(d) for d in chosen]:
                    raise RuntimeError(f"lm-eval scored other {spec.name} items than were selected")
                extra.update(engine=f"lm-eval {package_version('lm_eval')}", batch_size=batch_size, lm_eval=lm_eval_info)
                if gen_kwargs:
                    extra["generation"] = gen_kwargs
                if kind.output_type == "multiple_choice":
                    outputs = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
                else:
                    outputs = [s["filtered_resps"][0] for s in samples]
            scored: Scored = kind.score(spec, chosen, outputs, extra, **opts)
            value, stderr = mean_and_stderr(scored.item_scores)
            metrics = {kind.metric: metric_entry(scored.score, stderr, len(scored.item_scores))}
            for name, values in scored.continuous.items():
                metrics[name] = metric_entry(*mean_and_stderr(values), len(values))
            if continuous and chosen:
                metrics["bits_per_byte"] = _reference_bits(model, tokenizer, kind, chosen, scored, batch_size)
            seconds = time.perf_counter() - start
            protocol = kind.protocol(k, **opts)
            result = BenchmarkResult(name=spec.name, version=kind.version, metric=kind.metric, score=scored.score,
                                     n_items=len(chosen), n_total=len(docs), subsample=subsample,
                                     data_hash=spec.data_hash(), prompt_format=protocol.prompt_format,
                                     seconds=round(seconds, 3), stderr=stderr, metrics=metrics,
                                     protocol=protocol.to_dict(), extra=extra)
            results[spec.name] = result
            if out_dir is not None:
                atomic_write_text(Path(out_dir) / f"{spec.name}.jsonl",
                                  "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n"
                                          for r in scored.per_item))
        return results


def _reference_bits(model, tokenizer, kind, docs: list[dict], scored: Scored, batch_size: int) -> dict:
    """Bits per byte of each document's reference text; per-item values join the item rows."""
    refs = continuation_logliks(model, tokenizer, [kind.reference(d) for d in docs], batch_size=batch_size)
    by_id = {kind.item_id(d): r for d, r in zip(docs, refs)}
    for row in scored.per_item:
        ref = by_id.get(str(row.get(kind.id_field)))
        if ref is not None:
            row["reference_bits_per_byte"] = ref.bits_per_byte
    value, stderr = ratio_and_stderr([r.bits for r in refs], [r.bytes for r in refs])
    return metric_entry(value, stderr, len(refs), lower_is_better=True,
                        mean_tokens=sum(r.tokens for r in refs) / len(refs),
                        truncated=sum(r.truncated for r in refs))

