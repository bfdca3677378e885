"""One run, end to end: resolve → run directory → prepare (the method) → train → benchmarks → status.

The run directory is the unit of truth; a completed config is skipped unless forced, and an
interrupted one resumes from its latest checkpoint (``resume="auto"``).
"""

from __future__ import annotations

import shutil
import sys
import time
import traceback
from pathlib import Path

import torch
import transformers

from harness.catalog import load_builtins
from harness.config import ConfigError, RunConfig
from harness.data import dataset_hash, load_dataset, train_validation_split
from harness.engine import checkpoint as ckpt
from harness.engine.adapters import apply_adapters, quantize_for_qlora, trainable_summary
from harness.engine.context import MethodContext, Prepared
from harness.engine.profiler import Profiler
from harness.engine.trainer import Trainer, evaluate_validation, make_accelerator
from harness.io import atomic_write_json, read_json
from harness.provenance import collect
from harness.registry import METHODS, SUITES
from harness.runstore import RunDir
from harness.suites import suite_benchmarks


def say(message: str) -> None:
    print(f"[harness] {message}", file=sys.stderr, flush=True)


def benchmark_steps(config: RunConfig, best_step: int | None, trains: bool) -> list[int]:
    """Table 4's step-wise checkpoints that the run reached, then the best one by ROUGE-1."""
    if not trains:
        return [0]
    steps = [s for s in config.training.checkpoint_steps if s <= config.training.max_steps]
    if best_step is not None and best_step not in steps:
        steps.append(best_step)
    return steps


def _build_context(config: RunConfig, run: RunDir, profiler: Profiler) -> MethodContext:
    from harness import models

    def resolve(name: str):
        # Its own phase (nested inside the method's): a first run builds zoo models here, which
        # must not count as transfer or preparation time.
        with profiler.phase("resolve_model"):
            return models.resolve_model(name, scale=config.scale)

    suite = SUITES.get(config.suite)
    records = load_dataset(suite.train_dataset, config.data.source)
    split = train_validation_split(records, config.data.n_validation, config.data.split_seed)
    train = split.train[: config.data.max_train_samples] if config.data.max_train_samples else split.train
    return MethodContext(
        config=config, suite=suite, train_records=train, validation_records=split.validation,
        work_dir=run.path / "work",
        resolve_model=resolve,
        load_model=models.load_model, load_tokenizer=models.load_tokenizer)


def execute(config: RunConfig, *, results_root: str | Path | None = None, force: bool = False,
            resume: str = "auto", progress: bool = True) -> RunDir:
    """Run ``config`` to completion (or skip it if already complete) and return its run directory."""
    load_builtins()
    spec = METHODS.get(config.method)
    suite = SUITES.get(config.suite)
    if not suite.trainable:  # every run, trained or not, is validated on its suite's held-out split
        raise ConfigError(f"suite {suite.name!r} is evaluation-only (no training data): run on a training suite "
                          f"({', '.join(n for n, s in SUITES.items() if s.trainable)}), or score a model on it "
                          f"with `harness eval --model M --suite {suite.name}`")
    accelerator = make_accelerator(config.training.precision)
    run = RunDir.for_config(config, results_root)
    main = accelerator.is_main_process
    if run.is_completed() and not force:
        if main:
            say(f"already completed: {run.path} (pass --force to run it again)")
        return run
    if main and run.path.exists() and (force or resume == "never"):
        shutil.rmtree(run.path)
    accelerator.wait_for_everyone()
    transformers.set_seed(config.seed)

    started = time.time()

    def emit(rows: list[dict]) -> None:
        if main:
            now = time.time() - started
            attempt = (run.status() or {}).get("attempts", 1)
            run.log([{**row, "time": round(now, 3), "attempt": attempt} for row in rows])

    profiler = Profiler(emit)
    ctx = _build_context(config, run, profiler)
    data_hashes = {suite.train_dataset: dataset_hash(suite.train_dataset, config.data.source)} if suite.trainable else {}

    if main:
        run.create(config.to_dict(), collect(seed=config.seed, datasets=data_hashes))
        atomic_write_json(run.path / "split.json", {"dataset": suite.train_dataset, "seed": config.data.split_seed,
                                                    "validation_ids": [r["id"] for r in ctx.validation_records],
                                                    "n_train": len(ctx.train_records)})
        say(f"run directory: {run.path}")
    try:
        with profiler.phase(spec.prepare_phase):
            prepared: Prepared = spec.prepare(ctx)
        if main:
            provenance = read_json(run.provenance_path)
            provenance["models"] = prepared.models_used
            atomic_write_json(run.provenance_path, provenance)
            atomic_write_json(run.path / "prepare.json", prepared.info)
        model, tokenizer = prepared.model, prepared.tokenizer
        best_step = None
        if spec.trains:
            if config.training.peft == "qlora":
                model = quantize_for_qlora(model, tokenizer, ctx.work_dir)
            model = apply_adapters(model, config.training)
            summary = trainable_summary(model)
            emit([{"step": 0, "phase": "setup", "metric": k, "value": v} for k, v in
                  (("trainable_params", summary.trainable), ("total_params", summary.total),
                   ("trainable_percent", summary.percent))])
            trainer = Trainer(model, tokenizer, config, prepared.train_records or ctx.train_records,
                              ctx.validation_records, checkpoints_dir=run.checkpoints_dir, emit=emit,
                              samples_dir=run.samples_dir, accelerator=accelerator, progress=progress)
            last = ckpt.latest(run.checkpoints_dir) if resume == "auto" else None
            if last is not None:
                trainer.resume_from(last)
                if main:
                    say(f"resuming from {last.name}")
            with profiler.phase("training", step=trainer.state.step):
                state = trainer.fit()
            best_step = state.best_step
            model = accelerator.unwrap_model(trainer.model)
        elif main:
            with profiler.phase("evaluation"):
                scores = evaluate_validation(model, tokenizer, config, ctx.validation_records,
                                             run.samples_dir / "validation-step-0.jsonl")
            emit([{"step": 0, "phase": "eval", "metric": k, "value": v} for k, v in scores.items()])
        if main and config.eval.benchmarks:
            run_benchmarks(run, config, model, tokenizer, benchmark_steps(config, best_step, spec.trains),
                           emit, profiler, from_checkpoints=spec.trains)
        accelerator.wait_for_everyone()
        if main:
            run.complete(best_step=best_step, phase_seconds=profiler.phase_seconds)
            say(f"completed: {run.path}")
        return run
    except BaseException as err:
        if main:
            run.fail(f"{type(err).__name__}: {err}\n{traceback.format_exc()[-4000:]}")
        raise
    finally:
        profiler.close()


def run_benchmarks(run: RunDir, config: RunConfig, model, tokenizer, steps: list[int], emit, profiler,
                   from_checkpoints: bool) -> None:
    """Score each listed checkpoint on the suite's benchmarks (+ the ones every fine-tuned run gets)."""
    from benchmarks.evaluate import evaluate_model

    from harness.engine.adapters import load_trainable_state

    done = {(r["step"], r["metric"]) for r in run.metrics() if r.get("phase") == "benchmark"}
    names = list(suite_benchmarks(config.suite, fine_tuned=True))
    for step in steps:
        if all((step, f"{name}/score") in done for name in names):
            continue  # already scored before an interruption
        if from_checkpoints:
            load_trainable_state(model, ckpt.load_trainable(run.checkpoint_dir(step)))
        model.eval()
        say(f"benchmarks at step {step}: {', '.join(names)}")
        with profiler.phase("benchmarks", step=step), torch.no_grad():
            results = evaluate_model(model, tokenizer, names, limit=config.eval.benchmark_limit,
                                     subsample_seed=config.seed, batch_size=config.eval.eval_batch_size,
                                     max_new_tokens=config.eval.benchmark_max_new_tokens,
                                     out_dir=run.samples_dir / f"benchmarks-step-{step}")
        rows = []
        for name, result in results.items():
            record = result.to_dict()
            rows.append({"step": step, "phase": "benchmark", "metric": f"{name}/score", "value": record["score"],
                         "benchmark": record})
        emit(rows)
