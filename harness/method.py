"""The method interface: a method *prepares* a model; the shared engine trains, evaluates,
checkpoints and profiles it. Methods never time themselves.

Adding a baseline is one call::

    register_method("my-method", prepare_fn, description="...", paper_label="Vanilla Model + ...")

``models(config, suite)`` names the models a method loads, by role (default: the configured target):
every run resolves and checks them before it creates anything, and the engine hands them to ``prepare``
resolved (``ctx.models[role]``), built first where the built-in family lacks them.

Ablations and sweeps are the same call with ``overrides`` (dotted config keys → values), e.g.
``register_method("pen2sword-no-fusion", pen2sword.prepare, overrides={"pen2sword.fusion": False})``.
Third-party methods register through the ``harness.methods`` entry-point group: the entry point is
a callable taking the METHODS registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from harness.registry import METHODS

if TYPE_CHECKING:  # the engine defines the context and result types
    from harness.config import RunConfig
    from harness.engine.context import MethodContext, Prepared
    from harness.suites import Suite


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
) -> MethodSpec:
    """Register a method (or a variant of one, through ``overrides``) under ``name``."""
    spec = MethodSpec(name=name, prepare=prepare, description=description, overrides=dict(overrides or {}),
                      paper_label=paper_label, trains=trains, prepare_phase=prepare_phase, models=models)
    return METHODS.register(name, spec, aliases=aliases)


def method_overrides(name: str) -> Mapping[str, Any]:
    """The config overrides that define a registered method variant (empty for a base method)."""
    return METHODS.get(name).overrides
