"""What the engine hands a method (MethodContext) and what a method hands back (Prepared)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

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


@dataclass
class MethodContext:
    config: RunConfig
    suite: Suite
    train_records: list[dict]
    validation_records: list[dict]
    work_dir: Any  # a Path inside the run directory where a method may keep artefacts
    models: dict[str, Any]  # role → harness.models.ResolvedModel, as the method's ``models`` named them
    resolve_model: Callable[[str], Any]  # any other name or path → harness.models.ResolvedModel
    load_model: Callable[..., Any]  # (resolved, dtype=...) → model; timed as the engine's load_model phase
    load_tokenizer: Callable[..., Any]

    @property
    def seed(self) -> int:
        return self.config.seed
