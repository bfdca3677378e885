"""Evaluate a model on benchmarks: lm-eval runs the model, our code scores, everything is recorded.

lm-eval (0.4.13) is the engine: our offline task YAMLs (``benchmarks/tasks``) feed it the pinned
data, and it generates (HumanEval, MATH) or scores letter log-likelihoods (MMLU) with its ``HFLM``
wrapped around the in-memory model. HumanEval completions are executed in :mod:`benchmarks.sandbox`
(inside lm-eval's metric too), MATH answers are graded by math-verify. For MMLU the direct batched
path (:func:`benchmarks.mmlu.letter_logliks`, ``mmlu_engine="direct"``) is an alternative that
agrees with lm-eval item by item.

Every :class:`BenchmarkResult` records the task version, the data hash, the prompt format, the number
of items, any subsample (seed, stratification, sha256 of the chosen ids) and the timing; per-item
outputs go to ``out_dir/<benchmark>.jsonl``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from harness.io import atomic_write_text

from benchmarks import humaneval, math, mmlu
from benchmarks.registry import BENCHMARKS, TASKS_DIR, BenchmarkSpec
from benchmarks.sampling import ids_sha256, stratified_sample

MMLU_ENGINES = ("lm-eval", "direct")


@dataclass(frozen=True)
class BenchmarkResult:
    name: str
    version: str
    metric: str  # "pass@1" or "accuracy"
    score: float | None
    n_items: int  # items scored
    n_total: int  # items the benchmark has (after any few-shot hold-out)
    subsample: dict | None  # None, or {"seed", "stratified_by", "n", "ids_sha256"}
    data_hash: str
    prompt_format: str
    seconds: float
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
                     "ids_sha256": ids_sha256([BenchmarkSpec.item_id(docs[i]) for i in indices])}


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

    def __init__(self, model, tokenizer, batch_size: int):
        from lm_eval.models.huggingface import HFLM

        with _quiet("lm_eval"):
            # A copy: HFLM may set a pad token, which must not leak into the caller's tokenizer.
            self.lm = HFLM(pretrained=model, tokenizer=copy.deepcopy(tokenizer), batch_size=batch_size)

    def run(self, spec: BenchmarkSpec, indices: list[int] | None, *, fewshot: int, seed: int,
            gen_kwargs: dict | None, repeats: int) -> tuple[list[dict], dict]:
        """lm-eval's logged samples (ordered by document) and its metric values for one benchmark."""
        from lm_eval import simple_evaluate
        from lm_eval.tasks import TaskManager

        with _quiet("lm_eval"), _rng_preserved():
            manager = TaskManager(include_path=str(TASKS_DIR), include_defaults=False,
                                  metadata={"fewshot": fewshot, "fewshot_seed": seed})
            task = manager.load([spec.task])["tasks"][spec.task]
            if gen_kwargs:
                task.set_config(key="generation_kwargs", value=gen_kwargs, update=True)
            if repeats != 1:
                task.set_config(key="repeats", value=repeats)
            out = simple_evaluate(model=self.lm, tasks=[task], task_manager=manager,
                                  samples=None if indices is None else {spec.task: indices},
                                  confirm_run_unsafe_code=True, bootstrap_iters=0, log_samples=True)
        samples = sorted(out["samples"][spec.task], key=lambda s: int(s["doc_id"]))
        metrics = {k: v for k, v in out["results"][spec.task].items() if "," in k and "stderr" not in k}
        return samples, {"task": spec.task, "version": str(out["versions"][spec.task]), "metrics": metrics}


def evaluate_model(model, tokenizer, benchmarks: Sequence[str], *, limit: int | None = None,
                   subsample_seed: int = 0, batch_size: int = 16, max_new_tokens: int = 512,
                   out_dir: Path | str | None = None, mmlu_engine: str = "lm-eval", mmlu_fewshot: int = 0,
                   humaneval_samples: int = 1, humaneval_temperature: float = 0.8,
                   humaneval_ks: Sequence[int] = (1, 10, 100)) -> dict[str, BenchmarkResult]:
    """Score ``model`` on each benchmark (registered names or aliases); results by canonical name.

    ``limit`` scores a fixed stratified subsample of that many items per benchmark (the ``micro``
    scale); ``None`` scores everything (``paper``). HumanEval is greedy pass@1 unless
    ``humaneval_samples`` > 1, which samples at ``humaneval_temperature`` (top-p 0.95) and reports
    pass@k for every k in ``humaneval_ks`` not above the sample count.
    """
    if mmlu_engine not in MMLU_ENGINES:
        raise ValueError(f"mmlu_engine must be one of {MMLU_ENGINES}, got {mmlu_engine!r}")
    if humaneval_samples < 1:
        raise ValueError(f"humaneval_samples must be at least 1, got {humaneval_samples}")
    names = list(dict.fromkeys(BENCHMARKS.canonical(b) for b in benchmarks))
    max_len = mmlu.model_max_length(model, tokenizer)
    max_new = min(max_new_tokens, max_len // 2)
    engine: _LmEval | None = None
    results: dict[str, BenchmarkResult] = {}
    for name in names:
        spec: BenchmarkSpec = BENCHMARKS.get(name)
        start = time.perf_counter()
        fewshot = mmlu_fewshot if spec.kind == "mmlu" else 0
        docs, notes = spec.documents(fewshot=fewshot, seed=subsample_seed)
        indices, subsample = select_items(spec, docs, limit, subsample_seed)
        chosen = [docs[i] for i in indices]
        extra: dict = dict(notes)
        if spec.kind == "mmlu" and mmlu_engine == "direct":
            logliks, path = mmlu.letter_logliks(model, tokenizer, [d["prompt"] for d in chosen], batch_size=batch_size)
            extra.update(engine="direct", batch_size=batch_size, loglik_path=path)
        else:
            if engine is None:
                engine = _LmEval(model, tokenizer, batch_size)
            repeats = humaneval_samples if spec.kind == "humaneval" else 1
            sampling = spec.kind == "humaneval" and humaneval_samples > 1
            gen_kwargs = None if spec.kind == "mmlu" else (
                {"do_sample": True, "temperature": humaneval_temperature, "top_p": 0.95, "max_gen_toks": max_new}
                if sampling else {"do_sample": False, "max_gen_toks": max_new})
            samples, lm_eval_info = engine.run(spec, None if subsample is None else indices, fewshot=fewshot,
                                               seed=subsample_seed, gen_kwargs=gen_kwargs, repeats=repeats)
            if [s["doc"][_id_field(spec)] for s in samples] != [BenchmarkSpec.item_id(d) for d in chosen]:
                raise RuntimeError(f"lm-eval scored other {spec.name} items than were selected; "
                                   "the task's data and the benchmark's documents disagree")
            extra.update(engine=f"lm-eval {_lm_eval_version()}", batch_size=batch_size, lm_eval=lm_eval_info)
            if gen_kwargs:
                extra["generation"] = gen_kwargs
            if spec.kind == "mmlu":
                logliks = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
        if spec.kind == "mmlu":
            score, rows = _score_mmlu(chosen, logliks, extra)
        elif spec.kind == "math":
            score, rows = _score_math(chosen, [s["filtered_resps"][0] for s in samples], extra)
        else:
            completions = [s["filtered_resps"][0] for s in samples]
            score, rows = _score_humaneval(spec, chosen, completions, humaneval_ks, extra)
        seconds = time.perf_counter() - start
        result = BenchmarkResult(name=spec.name, version=spec.version, metric=spec.metric, score=score,
                                 n_items=len(chosen), n_total=len(docs), subsample=subsample,
                                 data_hash=spec.data_hash(), prompt_format=spec.prompt_format,
                                 seconds=round(seconds, 3), extra=extra)
        results[name] = result
        if out_dir is not None:
            atomic_write_text(Path(out_dir) / f"{name}.jsonl",
                              "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows))
    return results


# --- scoring per kind ----------------------------------------------------------------------------

def _id_field(spec: BenchmarkSpec) -> str:
    return "task_id" if spec.kind == "humaneval" else "id"


def _score_mmlu(docs: list[dict], logliks: list[list[float]], extra: dict) -> tuple[float | None, list[dict]]:
    preds = [mmlu.predict(ll) for ll in logliks]
    summary = mmlu.summarize(docs, preds)
    extra.update({k: v for k, v in summary.items() if k != "accuracy"})
    rows = [{"id": d["id"], "subject": d["subject"], "answer": d["answer"], "prediction": p,
             "correct": p == d["answer"], "logliks": ll} for d, p, ll in zip(docs, preds, logliks)]
    return summary["accuracy"], rows


def _score_math(docs: list[dict], outputs: list[str], extra: dict) -> tuple[float | None, list[dict]]:
    graded = math.grade_outputs(outputs, [d["answer"] for d in docs])
    per_type: dict[str, list[int]] = {}
    for d, g in zip(docs, graded):
        per_type.setdefault(d["type"], []).append(int(g["correct"]))
    extra.update(grader=f"math-verify {_version('math-verify')}", answer_extraction="last \\boxed{} in the output",
                 no_boxed_answer=sum(g["extracted"] is None for g in graded),
                 per_type={t: {"accuracy": sum(v) / len(v), "n": len(v)} for t, v in sorted(per_type.items())})
    rows = [{"id": d["id"], "type": d["type"], "answer": d["answer"], "output": o, **g}
            for d, o, g in zip(docs, outputs, graded)]
    return (sum(g["correct"] for g in graded) / len(graded) if graded else None), rows


def _score_humaneval(spec: BenchmarkSpec, docs: list[dict], completions: list, ks: Sequence[int],
                     extra: dict) -> tuple[float | None, list[dict]]:
    from benchmarks.sandbox import isolation_report

    problems = {p["task_id"]: p for p in spec.rows()}
    rows = [{"task_id": d["task_id"], "completion": c} for d, cs in zip(docs, completions)
            for c in (cs if isinstance(cs, list) else [cs])]
    scored = humaneval.score_humaneval(rows, problems, ks=tuple(ks) + (1,))
    reasons: dict[str, int] = {}
    for item in scored["per_item"]:
        key = item["reason"].split(":", 1)[0]
        reasons[key] = reasons.get(key, 0) + 1
    extra.update({"pass@k": scored["pass@k"], "samples_per_problem": scored["n_samples"] // max(1, scored["n_problems"]),
                  "stop_sequences": list(humaneval.STOP_SEQUENCES), "sandbox": isolation_report(),
                  "sandbox_limits": humaneval.SANDBOX_LIMITS.__dict__, "outcomes": dict(sorted(reasons.items()))})
    return scored["score"], scored["per_item"]


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def _lm_eval_version() -> str:
    return _version("lm_eval")
