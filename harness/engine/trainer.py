"""The training loop every method shares (accelerate: single process, or data-parallel under
``accelerate launch`` / ``torchrun``; with ``training.fsdp``, the model sharded over those processes by
:mod:`harness.engine.sharding`).

Loss normalisation: each step's loss is the sum of token losses over the *global* batch divided by
the global number of label tokens; each rank backpropagates ``local_sum * world / global_tokens`` so
that DDP's gradient averaging (FSDP's reduce-scatter averages alike) yields exactly the single-process
gradient. One process and two processes therefore train the same model.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from tqdm import tqdm
from transformers import get_scheduler

from harness.config import RunConfig
from harness.engine import checkpoint as ckpt
from harness.engine.adapters import load_trainable_state, trainable_state
from harness.engine.degeneracy import degenerate_share
from harness.data.batches import IGNORE, Encoded, StepOrder, collate, encode_example, encode_prompt, pad_id
from harness.engine.profiler import memory_snapshot
from harness.engine.sharding import full, gathered, shard
from harness.engine.sharding import load_optimizer_state as load_sharded_optimizer_state
from harness.engine.sharding import optimizer_state as sharded_optimizer_state
from harness.io import append_jsonl
from harness.engine.validation import (eval_loss, generate_responses, rouge_f1,
                                  teacher_forced_predictions)

MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def make_accelerator(precision: str) -> Accelerator:
    """An accelerator for a *resolved* precision (harness.precision.resolve_precision turns "auto" into one)."""
    if precision not in MIXED_PRECISION:
        raise ValueError(f"precision {precision!r} is not resolved; resolve it with harness.precision first")
    if precision == "fp16" and not torch.cuda.is_available():
        raise ValueError("training.precision=fp16 needs a CUDA GPU; on CPU use auto, bf16 or fp32")
    # accelerate keeps one process-wide state; a run of another precision in the same process (tests, a
    # planned series of runs) starts its own. The distributed state (PartialState) is kept.
    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(mixed_precision=MIXED_PRECISION[precision], cpu=not torch.cuda.is_available())


def upcast_trainable(model) -> list[torch.nn.Parameter]:
    """Keep every trainable parameter in fp32 (master weights) whatever the storage dtype of the model.

    Under fp16/bf16 autocast the matmuls still run in half precision, but optimizer updates (and the
    GradScaler, which refuses to unscale fp16 gradients) act on fp32 weights: a float16 model with a
    trainable embedding otherwise stops at step 1. Tied weights are one Parameter, so they stay tied.
    """
    params, seen = [], set()
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            if p.dtype != torch.float32:
                p.data = p.data.float()
            params.append(p)
    return params


def evaluate_validation(model, tokenizer, config: RunConfig, records: list[dict],
                        samples_path: Path | None = None) -> dict[str, float]:
    """ROUGE-1/2/L of generated (or, officially, teacher-forced) responses, eval loss, and the share of generated
    responses that are degenerate (``degenerate_share``: empty or a loop, :mod:`harness.engine.degeneracy`)."""
    t, e = config.training, config.eval
    model.eval()
    if e.rouge_mode == "generate":
        preds = generate_responses(model, tokenizer, [r["instruction"] for r in records],
                                   max_new_tokens=e.max_new_tokens,
                                   batch_size=e.generation_batch_size or e.eval_batch_size,
                                   max_prompt_tokens=config.data.max_prompt_tokens, precision=t.precision)
        refs = [r["response"] for r in records]
    else:
        preds, refs = teacher_forced_predictions(model, tokenizer, records, seq_len=t.seq_len,
                                                 batch_size=e.eval_batch_size,
                                                 max_prompt_tokens=config.data.max_prompt_tokens,
                                                 precision=t.precision)
    scores = rouge_f1(preds, refs, e.rouge_tokenizer)
    if e.rouge_mode == "generate":  # teacher-forced "predictions" are argmaxes under the reference, never loops
        scores["degenerate_share"] = degenerate_share(preds)
    reference_bits: list[tuple[float, int]] = []
    scores.update(eval_loss(model, tokenizer, records, seq_len=t.seq_len, batch_size=e.eval_batch_size,
                            loss_on=t.loss_on, max_prompt_tokens=config.data.max_prompt_tokens,
                            precision=t.precision, per_item=reference_bits))
    if samples_path is not None:  # with each prompt's length, so a wrong budget shows in the run directory
        # Each reference's bits and bytes under the model: reports pair two runs' bits per byte item by item.
        append_jsonl(samples_path, [{"id": r["id"], "prompt_tokens": len(encode_prompt(
                                         tokenizer, r["instruction"], config.data.max_prompt_tokens)),
                                     "prediction": p, "reference": r["response"], "reference_bits": bits,
                                     "reference_bytes": n_bytes}
                                    for r, p, (bits, n_bytes) in zip(records, preds, reference_bits, strict=True)])
    return scores


@dataclass
class TrainState:
    step: int = 0
    best_step: int | None = None
    best_rouge1: float = -1.0
    evaluated: list[int] = field(default_factory=list)


class Trainer:
    """Trains ``model`` (adapters already applied) on encoded instruction data, for every method."""

    def __init__(self, model, tokenizer, config: RunConfig, train_records: list[dict],
                 validation_records: list[dict], *, checkpoints_dir: Path | None,
                 emit: Callable[[list[dict]], None], samples_dir: Path | None = None,
                 accelerator: Accelerator | None = None, progress: bool = True, profiler=None):
        if config.training.precision == "auto":  # a trainer built outside a planned run
            from harness.engine.plan import with_resolved_precision

            config = with_resolved_precision(config)[0]
        self.config, self.t, self.e = config, config.training, config.eval
        self.tokenizer = tokenizer
        self.accelerator = accelerator or make_accelerator(self.t.precision)
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process
        self.emit = emit if self.is_main else (lambda rows: None)
        self.checkpoints_dir, self.samples_dir = checkpoints_dir, samples_dir
        self.progress = progress and self.is_main
        # Validation and checkpointing are phases of their own, nested in training, so training's
        # self time is the optimizer steps alone (time per 1k steps in Table 5).
        self._phase = profiler.phase if profiler is not None else (lambda name, step=0: nullcontext())
        self.validation = validation_records
        self.examples: list[Encoded] = [
            encode_example(tokenizer, r["instruction"], r["response"], self.t.seq_len, self.t.loss_on,
                           config.data.max_prompt_tokens)
            for r in train_records]
        self.order = StepOrder(len(self.examples), self.t.batch_size, config.seed)
        if self.t.batch_size % (self.world * self.t.grad_accum):
            raise ValueError(f"training.batch_size={self.t.batch_size} must split evenly over {self.world} "
                             f"processes x grad_accum={self.t.grad_accum}")
        params = upcast_trainable(model)
        self.sharded = self.t.fsdp
        if self.sharded:
            if self.world < 2:
                raise ValueError("training.fsdp shards the model over the run's processes, and this run has one: "
                                 "start it with --processes-per-run N (N >= 2), or drop training.fsdp")
            model = shard(model, self.accelerator.device)
            params = [p for p in model.parameters() if p.requires_grad]  # sharding made new parameters
        self.optimizer = torch.optim.AdamW(params, lr=self.t.lr, weight_decay=self.t.weight_decay)
        self.scheduler = get_scheduler(self.t.scheduler, self.optimizer, num_warmup_steps=self.t.warmup_steps,
                                       num_training_steps=config.schedule_steps)
        if self.sharded:  # accelerate would wrap the sharded model in DDP too: it prepares the optimizer alone
            self.model, self.optimizer = model, self.accelerator.prepare(self.optimizer)
        else:
            self.model, self.optimizer = self.accelerator.prepare(model, self.optimizer)
        self.params = params
        self.pad = pad_id(tokenizer)
        self.state = TrainState()
        self._pending: list[dict] = []

    # --- one optimizer step ---------------------------------------------------------------------
    def _reduce(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.accelerator.device)
        dist.all_reduce(tensor)
        return float(tensor.item())

    def train_step(self, step: int) -> dict[str, float]:
        """Forward/backward over this rank's share of global batch ``step``, then one optimizer step."""
        indices = self.order.rank_batch(step, self.rank, self.world)
        micro = [indices[i::self.t.grad_accum] for i in range(self.t.grad_accum)]
        batches = [collate([self.examples[i] for i in chunk], self.pad) for chunk in micro]
        local_tokens = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in batches)
        global_tokens = max(self._reduce(local_tokens), 1.0)
        device = self.accelerator.device
        loss_sum = 0.0
        for i, batch in enumerate(batches):
            sync = self.accelerator.no_sync(self.model) if i < len(batches) - 1 else nullcontext()
            with sync:
                with self.accelerator.autocast():
                    logits = self.model(input_ids=batch["input_ids"].to(device),
                                        attention_mask=batch["attention_mask"].to(device)).logits
                token_loss = F.cross_entropy(logits[:, :-1].float().flatten(0, 1),
                                             batch["labels"][:, 1:].to(device).flatten(),
                                             ignore_index=IGNORE, reduction="sum")
                self.accelerator.backward(token_loss * (self.world / global_tokens))
                loss_sum += token_loss.item()
        grad_norm = full(self.accelerator.clip_grad_norm_(self.params, self.t.max_grad_norm))
        lr = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        tokens_in_batch = sum(int(b["attention_mask"].sum()) for b in batches)
        return {"loss": self._reduce(loss_sum) / global_tokens, "lr": lr, "grad_norm": float(grad_norm),
                "tokens": self._reduce(tokens_in_batch)}

    # --- evaluation -----------------------------------------------------------------------------
    def evaluate(self, step: int) -> dict[str, float]:
        model = self.accelerator.unwrap_model(self.model)
        was_training = model.training
        scores = evaluate_validation(model, self.tokenizer, self.config, self.validation,
                                     None if self.samples_dir is None
                                     else self.samples_dir / f"validation-step-{step}.jsonl")
        if was_training:
            model.train()
        return scores

    # --- checkpoints ----------------------------------------------------------------------------
    def save_checkpoint(self, step: int) -> None:
        if self.checkpoints_dir is None:
            return
        final = self.checkpoints_dir / f"step-{step}"
        model = self.accelerator.unwrap_model(self.model)
        # A sharded model's whole tensors and optimizer state are gathered by every rank together (keyed by name).
        trainable = trainable_state(model) if self.is_main or self.sharded else None
        optimizer_state = (sharded_optimizer_state(model, self.optimizer.optimizer) if self.sharded
                           else self.optimizer.state_dict() if self.is_main else None)
        if self.is_main:
            ckpt.write_checkpoint(final, trainable=trainable,
                                  optimizer_state=optimizer_state,
                                  scheduler_state=self.scheduler.state_dict(),
                                  scaler_state=self._scaler_state(),
                                  trainer_state={"step": step, "best_step": self.state.best_step,
                                                 "best_rouge1": self.state.best_rouge1,
                                                 "evaluated": self.state.evaluated,
                                                 "data_position": {"seed": self.config.seed, "next_step": step,
                                                                   "steps_per_epoch": self.order.steps_per_epoch}})
        self.accelerator.wait_for_everyone()
        ckpt.write_rng(final, self.rank)
        self.accelerator.wait_for_everyone()
        if self.is_main:
            ckpt.publish(final)
            keep = set(self.t.checkpoint_steps) | {step}
            if self.state.best_step is not None:
                keep.add(self.state.best_step)
            ckpt.prune(self.checkpoints_dir, keep)
        self.accelerator.wait_for_everyone()

    def _scaler_state(self) -> dict | None:
        """fp16's dynamic loss scale (the GradScaler): part of the state an exact resume needs."""
        scaler = getattr(self.accelerator, "scaler", None)
        return scaler.state_dict() if scaler is not None else None

    def resume_from(self, path: Path) -> None:
        loaded = ckpt.load_checkpoint(path, self.rank)
        model = self.accelerator.unwrap_model(self.model)
        load_trainable_state(model, loaded["trainable"])  # sharded: every rank read it and takes its shard
        if self.sharded:
            load_sharded_optimizer_state(model, self.optimizer.optimizer, loaded["optimizer"])
        else:
            self.optimizer.load_state_dict(loaded["optimizer"])
        self.scheduler.load_state_dict(loaded["scheduler"])
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None:
            if loaded.get("scaler") is None:
                raise RuntimeError(f"{path} holds no GradScaler state but this run trains in fp16; "
                                   "it was written by a run of another precision")
            scaler.load_state_dict(loaded["scaler"])
        ckpt.set_rng_state(loaded["rng"])
        ts = loaded["trainer_state"]
        self.state = TrainState(step=ts["step"], best_step=ts["best_step"], best_rouge1=ts["best_rouge1"],
                                evaluated=list(ts["evaluated"]))

    # --- the loop -------------------------------------------------------------------------------
    def _flush(self) -> None:
        if self._pending:
            self.emit(self._pending)
            self._pending = []

    def _eval_and_record(self, step: int) -> dict[str, float]:
        # A sharded model is gathered on every rank for the block, so the main rank validates alone.
        with self._phase("validation", step=step), gathered(self.model) if self.sharded else nullcontext():
            scores = self.evaluate(step) if self.is_main else {}
        self.accelerator.wait_for_everyone()
        if self.is_main:
            self._pending += [{"step": step, "phase": "eval", "metric": k, "value": v} for k, v in scores.items()]
            if scores["rouge1"] > self.state.best_rouge1:
                self.state.best_rouge1, self.state.best_step = scores["rouge1"], step
            self._pending.append({"step": step, "phase": "eval", "metric": "best_step", "value": self.state.best_step})
        if self.world > 1:  # every rank knows the best step (a sharded run's benchmarks need all ranks at it)
            best = [self.state.best_step, self.state.best_rouge1]
            dist.broadcast_object_list(best, src=0)
            self.state.best_step, self.state.best_rouge1 = best
        self.state.evaluated.append(step)
        self._flush()
        return scores

    def _is_eval_step(self, step: int) -> bool:
        return step % self.t.eval_every == 0 or step == self.t.max_steps or step in self.t.checkpoint_steps

    def fit(self) -> TrainState:
        """Train from ``self.state.step`` to ``max_steps``, evaluating and checkpointing on the way."""
        max_steps = self.t.max_steps
        self.model.train()
        if self.state.step == 0 and 0 not in self.state.evaluated:
            self._eval_and_record(0)  # the starting point of every convergence curve
            with self._phase("checkpoint", step=0):
                self.save_checkpoint(0)  # kept only while step 0 is the best by ROUGE-1
        bar = tqdm(total=max_steps, initial=self.state.step, desc=f"{self.config.method} train",
                   disable=not self.progress, dynamic_ncols=True)
        last_rouge = None
        for step in range(self.state.step, max_steps):
            start = time.perf_counter()
            out = self.train_step(step)
            seconds = time.perf_counter() - start
            done = step + 1
            self.state.step = done
            if not math.isfinite(out["loss"]):
                raise FloatingPointError(f"training loss became {out['loss']} at step {done}; "
                                         "lower training.lr or check the prepared model")
            if self.is_main:
                self._pending += [{"step": done, "phase": "train", "metric": k, "value": v}
                                  for k, v in (("loss", out["loss"]), ("lr", out["lr"]),
                                               ("grad_norm", out["grad_norm"]), ("step_seconds", seconds),
                                               ("tokens_per_s", out["tokens"] / seconds))]
                if done % self.t.log_every == 0:
                    self._pending += [{"step": done, "phase": "train", "metric": k, "value": v}
                                      for k, v in memory_snapshot().items()]
                    self._flush()
            if self._is_eval_step(done):
                last_rouge = self._eval_and_record(done).get("rouge1", last_rouge)
                with self._phase("checkpoint", step=done):
                    self.save_checkpoint(done)
            bar.set_postfix(loss=f"{out['loss']:.3f}",
                            rouge1="-" if last_rouge is None else f"{last_rouge:.3f}")
            bar.update(1)
        bar.close()
        self._flush()
        return self.state

