"""The method interface: a method *prepares* a model; the shared engine trains, evaluates,
checkpoints and profiles it. Methods never time themselves.

Adding a baseline is one call::

    register_method("my-method", prepare_fn, description="...", paper_label="Vanilla Model + ...")

A method with settings of its own passes ``config_section=ConfigSection("my_method", MyConfig)``: a frozen
dataclass whose ``__post_init__`` checks its values, so ``harness run --dry-run`` refuses what the run
would refuse; ``config.my_method`` then holds it in every run config (``my_method.key=value`` on the
command line).

``models(config, suite)`` names the models a method loads, by role (default: the configured target):
every run resolves and checks them before it creates anything, and the engine hands them to ``prepare``
resolved (``ctx.models[role]``), built first where the built-in family lacks them.

Ablations and sweeps are the same call with ``overrides`` (dotted config keys → values), e.g.
``register_method("pen2sword-no-fusion", pen2sword.prepare, overrides={"pen2sword.fusion": False})``.
Third-party methods register through the ``harness.methods`` entry-point group: the entry point is
a callable taking the METHODS registry.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from harness.config import ConfigSection, register_config_section
from harness.registry import METHODS

if TYPE_CHECKING:
    from harness.config import RunConfig
    from harness.suites import Suite


@dataclass
class Prepared:
    """A method's output: the model to train/evaluate and what it did to get there."""

    model: Any  # a transformers PreTrainedModel, adapters not yet applied (the engine applies them)
    tokenizer: Any
    train_records: list[dict] | None = None  # None = the suite's ground-truth training split
    info: dict = field(default_factory=dict)  # written to prepare.json (e.g. the transfer report)
    models_used: dict[str, dict] = field(default_factory=dict)  # role → identity, for provenance
    # Token ids the method added to the target's vocabulary (Pen2Sword's expert-only tokens). Where the
    # embedding trains, their output (lm_head) rows train too, so the new tokens can be learned.
    new_token_ids: tuple[int, ...] = ()
    # What validation and benchmarks decode with when it is not ``model`` itself (ProxyTuning's
    # combined logits): anything with ``generate`` and a forward returning ``.logits``.
    decode_model: Any = None
    train_records_source: str | None = None  # what ``train_records`` are, e.g. "pseudo-labels by small-base"


@dataclass
class MethodContext:
    """What the engine hands a method's ``prepare``."""

    config: "RunConfig"
    suite: "Suite"
    train_records: list[dict]
    validation_records: list[dict]
    work_dir: Any  # a Path inside the run directory where a method may keep artefacts
    models: dict[str, Any]  # role → harness.models.ResolvedModel, as the method's ``models`` named them
    resolve_model: Callable[[str], Any]  # any other name or path → harness.models.ResolvedModel
    load_model: Callable[..., Any]  # (resolved, dtype=...) → model; timed as the engine's load_model phase
    load_tokenizer: Callable[..., Any]
    # phase(name) → a context manager timing a step of the method as a phase of its own (e.g.
    # "pseudo_labels"), so what a method spends beyond training counts in its cost.
    phase: Callable[[str], Any] = field(default=None)  # type: ignore[assignment]
    # sub_run(method, {dotted key: value}, purpose) → the RunDir of a helper run the engine trains (this
    # run's config with that method and overrides), skipped when already completed; see load_trained_model.
    sub_run: Callable[..., Any] = field(default=None)  # type: ignore[assignment]
    # load_trained_model(run_dir, step="latest") → (model, tokenizer, info): a finished run's checkpoint
    # rebuilt by the engine (its method's prepare replayed, the step's weights loaded), e.g. a sub-run's.
    load_trained_model: Callable[..., Any] = field(default=None)  # type: ignore[assignment]

    @property
    def seed(self) -> int:
        return self.config.seed


# Selections a method makes at run time (DPF ranking candidate experts) are deferred while a run is
# planned, so a plan (and --dry-run) stays cheap: the chooser records them here and plans a stand-in.
_DEFERRED: ContextVar[list | None] = ContextVar("deferred_selections", default=None)


@contextlib.contextmanager
def deferring_selections() -> Iterator[list[dict]]:
    """While inside, :func:`defer_selection` records selections instead of letting them run."""
    token = _DEFERRED.set([])
    try:
        yield _DEFERRED.get()
    finally:
        _DEFERRED.reset(token)


def defer_selection(role: str, by: str, candidates: Sequence[str]) -> bool:
    """True (and recorded) while a run is being planned; False when the caller must choose now."""
    pending = _DEFERRED.get()
    if pending is None:
        return False
    pending.append({"role": role, "by": by, "candidates": list(candidates)})
    return True


def target_only(config: "RunConfig", suite: "Suite") -> dict[str, str]:
    """The default model set: the configured target."""
    return {"target": config.model.target}


@dataclass(frozen=True)
class MethodSpec:
    name: str
    prepare: "Callable[[MethodContext], Prepared]"
    description: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    paper_label: str | None = None  # the row label the paper's tables use
    trains: bool = True  # False: evaluated as is (vanilla, instruction-tuned)
    prepare_phase: str = "prepare"  # the engine's name for the timed preparation phase
    models: "Callable[[RunConfig, Suite], dict[str, str]]" = target_only  # role → model name/path
    config_sections: tuple[str, ...] = ()  # the names of the config sections the method reads


def register_method(
    name: str,
    prepare: "Callable[[MethodContext], Prepared]",
    *,
    description: str,
    overrides: Mapping[str, Any] | None = None,
    paper_label: str | None = None,
    trains: bool = True,
    prepare_phase: str = "prepare",
    models: "Callable[[RunConfig, Suite], dict[str, str]]" = target_only,
    aliases: tuple[str, ...] = (),
    config_section: ConfigSection | Sequence[ConfigSection] = (),
) -> MethodSpec:
    """Register a method (or a variant of one, through ``overrides``) under ``name``, with the config
    section(s) it owns or shares (a section registered by several methods is registered once)."""
    sections = (config_section,) if isinstance(config_section, ConfigSection) else tuple(config_section)
    for section in sections:
        register_config_section(section)
    spec = MethodSpec(name=name, prepare=prepare, description=description, overrides=dict(overrides or {}),
                      paper_label=paper_label, trains=trains, prepare_phase=prepare_phase, models=models,
                      config_sections=tuple(s.name for s in sections))
    return METHODS.register(name, spec, aliases=aliases)


def method_overrides(name: str) -> Mapping[str, Any]:
    """The config overrides that define a registered method variant (empty for a base method)."""
    return METHODS.get(name).overrides
