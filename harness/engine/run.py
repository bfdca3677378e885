"""One run, end to end: plan (resolve, check) → run directory → build missing models → prepare (the
method) → adapters → train → benchmarks → status.

The run directory is the unit of truth; a completed config is skipped unless forced, and an
interrupted one resumes from its latest checkpoint (``resume="auto"``). Nothing is created before
:func:`harness.engine.plan.plan_run` has checked every model, path and data source.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import torch
import transformers

from harness.config import RunConfig
from harness.data import (dataset_hash, load_dataset, records_hash, sample_train, train_part,
                          train_validation_split)
from harness.engine import checkpoint as ckpt
from harness.engine.adapters import apply_adapters, load_trainable_state, quantize_for_qlora, trainable_summary
from harness.method import MethodContext, Prepared
from harness.engine.profiler import Profiler
from harness.engine.sharding import gathered
from harness.engine.trackers import close_trackers, log_rows, open_trackers
from harness.engine.trainer import Trainer, evaluate_validation, make_accelerator
from harness.io import atomic_write_json, read_json
from harness.engine.plan import RunPlan, plan_run
from harness.provenance import collect
from harness.runstore import INTERRUPTED, RunDir, RunOwnedError
from harness.suites import suite_benchmarks


# Runs this process started before the current one. A run that is not its process's first shares the memory the
# earlier ones left behind (freed, yet kept by the allocator): its peak RSS is not its own. Reports read it.
_runs_started_here = 0
SUB_RUN_POLL_S = 15.0  # how often a run waiting for a sub-run that another process trains looks again


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


def resolve_planned_models(plan: RunPlan, profiler: Profiler) -> dict:
    """role → ResolvedModel; built-in roles this machine lacks are built here, in a phase of their own."""
    import torch.distributed as dist

    from harness import models

    resolved = {role: m.resolved for role, m in plan.models.items() if not m.to_build}
    missing = {role: m.name for role, m in plan.models.items() if m.to_build}
    if not missing:
        return resolved
    # In a run of several processes the first builds them, the others wait: transformers writes a model on
    # rank 0 only once torch.distributed is up, so a build on another rank would save nothing.
    several = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    builds = not several or dist.get_rank() == 0
    if builds:
        say(f"first run: building {', '.join(sorted(set(missing.values())))} of the {plan.config.scale} model family")
        with profiler.phase("build_models"):
            for role, name in missing.items():
                resolved[role] = models.resolve_model(name, scale=plan.config.scale, build=True)
    if several:
        dist.barrier()  # (gloo's default timeout, 30 minutes, is longer than a micro family's build)
    if not builds:
        resolved.update({role: models.resolve_model(name, scale=plan.config.scale, build=False)
                         for role, name in missing.items()})
    return resolved


def derived_config(parent: RunConfig, method: str, overrides: dict) -> RunConfig:
    """``parent`` with another method (and that method's own overrides) and ``overrides`` on top."""
    from harness.config import config_from_dict, deep_merge, parse_override
    from harness.method import method_overrides

    data = {**parent.to_dict(), "method": method}
    for key, value in {**method_overrides(method), **overrides}.items():
        data = deep_merge(data, parse_override(f"{key}={json.dumps(value)}"))
    return config_from_dict(data)


def _sub_runner(plan: RunPlan, profiler: Profiler, progress: bool, record: list):
    """ctx.sub_run: the engine runs a helper (e.g. the weak supervisor's fine-tuning) as a run of its
    own next to the parent's, skipped when already completed; the parent's provenance lists it."""
    results_root = plan.run.path.parents[2]

    def sub_run(method: str, overrides: dict, purpose: str) -> RunDir:
        config = derived_config(plan.config, method, overrides)
        say(f"sub-run for {purpose}: {method} ({config.run_id()})")
        with profiler.phase("sub_run"):
            while True:
                try:
                    run = execute(plan_run(config, results_root), progress=progress)
                    break
                except RunOwnedError as err:  # another job trains this very sub-run: wait for it, then reuse it
                    say(f"waiting for the sub-run another process is training ({err})")
                    time.sleep(SUB_RUN_POLL_S)
        record.append({"purpose": purpose, "method": method, "run_dir": str(run.path), "run_id": config.run_id(),
                       "state": run.state()})
        if not run.is_completed():
            raise RuntimeError(f"sub-run for {purpose} did not complete: {run.path}")
        return run

    return sub_run


def _prepare(plan: RunPlan, work_dir: Path, profiler: Profiler, sub_run, on_context=None) -> tuple[Prepared,
                                                                                                   MethodContext]:
    """The method's ``prepare`` for ``plan``: its models resolved (a selection such as DPF ranked first), the
    data split, then ``on_context(ctx)`` and the method. Seeded from the config, so a replay prepares the same."""
    config, spec = plan.config, plan.method
    if plan.selections:  # e.g. DPF: build and rank the candidates, then plan with the chosen model
        resolve_planned_models(plan, profiler)
        with profiler.phase("selection"):
            say(", ".join(f"{s['role']}: {s['by']} ranks {len(s['candidates'])} candidates" for s in plan.selections))
            spec.models(config, plan.suite)
        plan = plan_run(config, plan.run.path.parents[2])
    resolved = resolve_planned_models(plan, profiler)
    ctx = _build_context(plan, work_dir, profiler, resolved, sub_run)
    if on_context is not None:
        on_context(ctx)
    # Seeded before the method and again before adapters (:func:`_with_adapters`): whatever prepare consumes
    # (a first run's zoo build, transfer's resize) leaves every method the same LoRA init and dropout stream.
    transformers.set_seed(config.seed)
    with profiler.phase(spec.prepare_phase):
        return spec.prepare(ctx), ctx


def _with_adapters(prepared: Prepared, config: RunConfig, work_dir: Path):
    """The prepared model with exactly the configured parameters trainable (4-bit first for QLoRA)."""
    transformers.set_seed(config.seed)
    model = prepared.model
    if config.training.peft == "qlora":
        model = quantize_for_qlora(model, prepared.tokenizer, work_dir)
    return apply_adapters(model, config.training, new_token_ids=prepared.new_token_ids)


def load_run_model(run_path: str | Path, step: int | str = "best") -> tuple[object, object, dict]:
    """The model a completed run holds at a checkpoint, rebuilt: the method's ``prepare`` replayed from the
    run's own config (same seeds, same caches: Pen2Sword's transferred base and extended tokenizer come back
    as they were), its adapters, and the trainable tensors saved at ``step`` ("best": the best step by
    ROUGE-1, else the latest; "latest"; or a step number). Returns (model, tokenizer, info); a method that
    does not train gives its prepared model at step 0."""
    from harness.config import config_from_dict

    run = RunDir(Path(run_path))
    if not run.is_completed():
        raise ValueError(f"run {run.path} is {run.state()}: only a completed run can be rebuilt "
                         "(finish it with `harness run` first)")
    config = config_from_dict(read_json(run.config_path))
    plan = plan_run(config, run.path.parents[2])
    checkpoint = _checkpoint_for(run, step) if plan.method.trains else None  # a wrong step fails before the work
    # A scratch work directory: the run directory stays as the run left it.
    with tempfile.TemporaryDirectory(prefix="harness-rebuild-") as work, Profiler(lambda rows: None) as profiler:
        prepared, _ = _prepare(plan, Path(work), profiler, _sub_runner(plan, profiler, False, []))
        info = {"run_dir": str(run.path.resolve()), "run_id": run.path.name, "method": config.method,
                "suite": config.suite, "precision": config.training.precision}  # the run's, resolved
        if not plan.method.trains:
            if prepared.decode_model is not None:
                raise ValueError(f"method {config.method!r} decodes with several models at once; there is no "
                                 "single model to rebuild")
            return prepared.model.eval(), prepared.tokenizer, {**info, "step": 0}
        model = _with_adapters(prepared, config, Path(work))
    load_trainable_state(model, ckpt.load_trainable(checkpoint))
    return model.eval(), prepared.tokenizer, {**info, "step": int(checkpoint.name.removeprefix("step-"))}


def _checkpoint_for(run: RunDir, step: int | str) -> Path:
    """The checkpoint directory of ``step`` ("best", "latest" or a number), or an error naming those kept."""
    kept = sorted(int(p.name.removeprefix("step-")) for p in run.checkpoints_dir.glob("step-*") if ckpt.is_complete(p))
    if not kept:
        raise ValueError(f"run {run.path} kept no checkpoint")
    if step == "best":
        best = (run.status() or {}).get("best_step")
        step = best if best in kept else kept[-1]
    elif step == "latest":
        step = kept[-1]
    if int(step) not in kept:
        raise ValueError(f"run {run.path} kept no checkpoint at step {step}; it kept steps {kept}")
    return run.checkpoint_dir(int(step))


def _build_context(plan: RunPlan, work_dir: Path, profiler: Profiler, resolved: dict, sub_run=None) -> MethodContext:
    from harness import models

    config, suite = plan.config, plan.suite

    def resolve(name: str):
        with profiler.phase("build_models"):  # another model a method asks for: built here if missing
            return models.resolve_model(name, scale=config.scale)

    def load_model(*args, **kwargs):
        with profiler.phase("load_model"):
            return models.load_model(*args, **kwargs)

    with profiler.phase("load_data"):
        records = load_dataset(suite.train_dataset, config.data.source)
        split = train_validation_split(records, config.data.n_validation, config.data.split_seed)
    train = sample_train(split.train, config.data.max_train_samples, config.data.split_seed)
    train = train_part(train, config.data.train_part)  # halves of what a whole run would train on
    return MethodContext(
        config=config, suite=suite, train_records=train, validation_records=split.validation,
        work_dir=work_dir, models=resolved, resolve_model=resolve,
        load_model=load_model, load_tokenizer=models.load_tokenizer, phase=profiler.phase, sub_run=sub_run,
        load_trained_model=load_run_model)


def execute(plan: RunPlan, *, force: bool = False, resume: str = "auto", progress: bool = True) -> RunDir:
    """Run ``plan`` (from :func:`harness.engine.plan.plan_run`, which checked everything once) to completion,
    or skip it if already complete, and return the run directory."""
    if not isinstance(plan, RunPlan):
        raise TypeError(f"execute takes a plan from harness.engine.plan.plan_run(config, results_root), "
                        f"not a {type(plan).__name__}")
    config, spec, suite, run = plan.config, plan.method, plan.suite, plan.run
    accelerator = make_accelerator(config.training.precision)
    main = accelerator.is_main_process
    if plan.state == "completed" and not force:
        if main:
            say(f"already completed: {run.path} (pass --force to run it again)")
        return run
    # One owner per run directory: a second process of the same run (or --force on a live one) is refused here,
    # naming the owner, before it touches the directory.
    with run.claim(say) if main else contextlib.nullcontext():
        if main and run.is_completed() and not force:  # it completed while this one was being planned
            say(f"already completed: {run.path} (pass --force to run it again)")
            return run
        return _execute_claimed(plan, accelerator, force=force, resume=resume, progress=progress)


def _execute_claimed(plan: RunPlan, accelerator, *, force: bool, resume: str, progress: bool) -> RunDir:
    """:func:`execute` once this process owns the run directory."""
    config, spec, suite, run = plan.config, plan.method, plan.suite, plan.run
    main = accelerator.is_main_process
    if main and run.path.exists() and (force or resume == "never"):
        shutil.rmtree(run.path)
    elif main and plan.state == "interrupted":
        say(f"resuming an interrupted run (its process died): {run.path}")
    accelerator.wait_for_everyone()
    for warning in plan.warnings:
        say(f"warning: {warning}")

    started = time.time()
    global _runs_started_here
    runs_before, _runs_started_here = _runs_started_here, _runs_started_here + 1

    trackers: list = []  # TensorBoard / W&B / MLflow, where chosen (harness.engine.trackers)

    def emit(rows: list[dict]) -> None:
        if main:
            now = time.time() - started
            attempt = (run.status() or {}).get("attempts", 1)
            run.log([{**row, "time": round(now, 3), "attempt": attempt} for row in rows])
            log_rows(trackers, rows)

    profiler = Profiler(emit)
    if main:
        provenance = collect(seed=config.seed, datasets={})
        provenance.update(precision=plan.precision.to_dict(), training_data=plan.data,
                          planned_models={r: m.to_dict() for r, m in plan.models.items()})
        run.create(config.to_dict(), provenance)
        say(f"run directory: {run.path}")
        trackers = open_trackers(run.path, f"{config.suite}/{config.method}/{run.path.name}", config.to_dict())
    try:
        sub_runs: list[dict] = []

        def on_context(ctx: MethodContext) -> None:  # before prepare, which may run long (labels, a sub-run)
            if main:
                provenance = read_json(run.provenance_path)
                provenance["datasets"] = {suite.train_dataset: dataset_hash(suite.train_dataset, config.data.source)}
                atomic_write_json(run.provenance_path, provenance)
                atomic_write_json(run.path / "split.json", {"dataset": suite.train_dataset,
                                                            "seed": config.data.split_seed,
                                                            "validation_ids": [r["id"] for r in ctx.validation_records],
                                                            "n_train": len(ctx.train_records)})

        prepared, ctx = _prepare(plan, run.path / "work", profiler, _sub_runner(plan, profiler, progress, sub_runs),
                                 on_context)
        if sub_runs:  # a sub-run's engine reset accelerate's process-wide state: take it again
            accelerator = make_accelerator(config.training.precision)
        if spec.trains and prepared.decode_model is not None:
            raise ValueError(f"method {spec.name!r} returned a decode_model but trains: a decode model is "
                             "for methods evaluated as prepared (trains=False)")
        train_records = prepared.train_records if prepared.train_records is not None else ctx.train_records
        if main:
            provenance = read_json(run.provenance_path)
            provenance["models"] = prepared.models_used
            provenance["sub_runs"] = sub_runs
            # What the model actually trains on: the ground-truth split, or what the method made of it.
            provenance["trained_on"] = {"source": prepared.train_records_source or (
                                            f"{suite.train_dataset} (ground truth)" if prepared.train_records is None
                                            else "records supplied by the method"),
                                        "n": len(train_records), "sha256": records_hash(train_records)}
            atomic_write_json(run.provenance_path, provenance)
            atomic_write_json(run.path / "prepare.json", prepared.info)
        tokenizer, best_step = prepared.tokenizer, None
        if spec.trains:
            model = _with_adapters(prepared, config, ctx.work_dir)
            summary = trainable_summary(model)
            emit([{"step": 0, "phase": "setup", "metric": k, "value": v} for k, v in
                  (("trainable_params", summary.trainable), ("total_params", summary.total),
                   ("trainable_percent", summary.percent))])
            trainer = Trainer(model, tokenizer, config, train_records,
                              ctx.validation_records, checkpoints_dir=run.checkpoints_dir, emit=emit,
                              samples_dir=run.samples_dir, accelerator=accelerator, progress=progress,
                              profiler=profiler)
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
            model = prepared.decode_model if prepared.decode_model is not None else prepared.model
            with profiler.phase("validation"):
                scores = evaluate_validation(model, tokenizer, config, ctx.validation_records,
                                             run.samples_dir / "validation-step-0.jsonl")
            emit([{"step": 0, "phase": "eval", "metric": k, "value": v} for k, v in scores.items()])
        sharded = spec.trains and config.training.fsdp  # every rank takes part in loading and gathering
        if config.eval.benchmarks and (main or sharded):
            run_benchmarks(run, config, model, tokenizer, benchmark_steps(config, best_step, spec.trains),
                           emit, profiler, from_checkpoints=spec.trains, evaluate_here=main)
        accelerator.wait_for_everyone()
        across = profiler.across_processes(accelerator.num_processes)  # every process takes part
        if main:
            run.complete(best_step=best_step, phase_seconds=profiler.phase_seconds,
                         wall_seconds=profiler.wall_seconds(), profile={**profiler.summary(), **across},
                         runs_before_in_process=runs_before)
            say(f"completed: {run.path}")
        return run
    except (KeyboardInterrupt, SystemExit) as err:
        # Told to stop (Ctrl-C; a job's time limit or preemption, where submitit requeues it and exits): not a
        # failure of the run, which resumes from its latest checkpoint when started again.
        if main:
            run.set_status(INTERRUPTED, stopped=time.time(), reason=f"{type(err).__name__} {err}".strip())
        raise
    except BaseException as err:
        if main:
            run.fail(f"{type(err).__name__}: {err}\n{traceback.format_exc()[-4000:]}")
        raise
    finally:
        profiler.close()
        close_trackers(trackers)


def run_benchmarks(run: RunDir, config: RunConfig, model, tokenizer, steps: list[int], emit, profiler,
                   from_checkpoints: bool, evaluate_here: bool = True) -> None:
    """Score each listed checkpoint on the suite's benchmarks (+ the ones every fine-tuned run gets).

    A sharded model (``training.fsdp``) is loaded and gathered by every rank, and scored by the one with
    ``evaluate_here`` alone."""
    from harness.engine.adapters import load_trainable_state
    from harness.engine.evaluation import evaluate_model
    from harness.registry import BENCHMARKS

    done = {(r["step"], r["metric"]) for r in run.metrics() if r.get("phase") == "benchmark"}
    names = list(suite_benchmarks(config.suite, fine_tuned=True))
    kinds = {BENCHMARKS.get(name).kind_impl for name in names}
    options = {kind.name: kind.eval_options(config) for kind in kinds}  # e.g. MMLU's shots from the hub's dev split
    for step in steps:
        if all((step, f"{name}/score") in done for name in names):
            continue  # already scored before an interruption
        if from_checkpoints:
            load_trainable_state(model, ckpt.load_trainable(run.checkpoint_dir(step)))
        if not evaluate_here:
            with gathered(model):  # the all-gather the evaluating rank's needs
                continue
        model.eval()
        say(f"benchmarks at step {step}: {', '.join(names)}")
        with profiler.phase("benchmarks", step=step), gathered(model), torch.no_grad():
            results = evaluate_model(model, tokenizer, names, limit=config.eval.benchmark_limit,
                                     subsample_seed=config.eval.subsample_seed,
                                     batch_size=config.eval.eval_batch_size,
                                     max_new_tokens=config.eval.benchmark_max_new_tokens,
                                     fewshot=config.eval.fewshot, options=options,
                                     continuous=config.eval.continuous_metrics,
                                     precision=config.training.precision,  # resolved by the plan
                                     out_dir=run.samples_dir / f"benchmarks-step-{step}")
        rows = []
        for name, result in results.items():
            record = result.to_dict()
            rows.append({"step": step, "phase": "benchmark", "metric": f"{name}/score", "value": record["score"],
                         "stderr": record["stderr"], "n": record["n_items"], "benchmark": record})
            for metric, entry in record["metrics"].items():
                if metric != record["metric"]:  # the headline is the /score row
                    rows.append({"step": step, "phase": "benchmark", "metric": f"{name}/{metric}",
                                 "value": entry["value"], "stderr": entry["stderr"], "n": entry["n"]})
        emit(rows)


def run_in_subprocess(config: RunConfig, results_root: str | Path | None, *, processes: int = 1,
                      started: Callable[[Any], None] | None = None) -> int:
    """:func:`execute` ``config`` in a Python process of its own; its exit code. ``harness reproduce`` runs each
    run so: a run's memory and threads are its own, not what the runs before it in one process left behind
    (peak RSS would otherwise climb run after run), and a run that crashes does not take the plan with it.
    With ``processes`` > 1, torchrun starts that many, each a rank of accelerate's DDP. ``started`` receives
    the process once it runs (a job stops it when it is requeued)."""
    import subprocess

    with tempfile.TemporaryDirectory(prefix="harness-run-") as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(config.to_dict()))
        python = [sys.executable] if processes == 1 else [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        command = [*python, "-m", "harness.engine", str(path)]
        if results_root is not None:
            command.append(str(results_root))
        with subprocess.Popen(command) as process:
            if started is not None:
                started(process)
            try:
                return process.wait()
            except BaseException:  # as subprocess.run: an interrupted wait takes the child with it
                process.kill()
                raise

