"""Run directories, the unit of truth: ``results/<suite>/<method>/<run-id>/``.

Layout::

    config.json        resolved configuration (written once, atomically)
    provenance.json    code, packages, data, models, hardware, seed
    metrics.jsonl      append-only, one row per event: step, phase, metric, value, wall time, memory
    samples/           per-item outputs (validation generations, benchmark items)
    checkpoints/step-N/
    status.json        written last and atomically: running | completed | failed

Every JSON file is replaced atomically, so a run killed at any moment leaves no half-written file;
a torn last line of metrics.jsonl is cut when the run resumes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.io import append_jsonl, atomic_write_json, read_json, read_jsonl, repair_jsonl
from harness.paths import results_dir

RUNNING, COMPLETED, FAILED = "running", "completed", "failed"


@dataclass(order=True)
class RunDir:
    path: Path

    @classmethod
    def for_config(cls, config: Any, root: str | Path | None = None) -> "RunDir":
        root = Path(root) if root is not None else results_dir()
        return cls(root / config.suite / config.method / config.run_id())

    # --- files -------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def provenance_path(self) -> Path:
        return self.path / "provenance.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint_dir(self, step: int) -> Path:
        return self.checkpoints_dir / f"step-{step}"

    # --- state -------------------------------------------------------------------------------
    def status(self) -> dict | None:
        if not self.status_path.exists():
            return None
        return read_json(self.status_path)

    def is_completed(self) -> bool:
        status = self.status()
        return bool(status and status.get("state") == COMPLETED)

    def create(self, config_dict: dict, provenance: dict) -> None:
        """Start (or restart) a run: config and provenance first, the ``running`` status last."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.samples_dir.mkdir(exist_ok=True)
        self.checkpoints_dir.mkdir(exist_ok=True)
        if self.config_path.exists() and read_json(self.config_path) != config_dict:
            raise RuntimeError(
                f"{self.config_path} holds a different configuration than this run's; the run id "
                "should have differed. Delete the directory or use another results root."
            )
        atomic_write_json(self.config_path, config_dict)
        previous = self.status() or {}
        attempts = previous.get("attempts", 0) + 1
        if attempts > 1 and self.provenance_path.exists():  # keep the earlier attempt's provenance too
            atomic_write_json(self.path / f"provenance.attempt-{attempts - 1}.json", read_json(self.provenance_path))
        atomic_write_json(self.provenance_path, provenance)
        repair_jsonl(self.metrics_path)
        self.set_status(RUNNING, attempts=attempts, started=time.time())

    def set_status(self, state: str, **fields: Any) -> None:
        status = {**(self.status() or {}), **fields, "state": state, "updated": time.time(), "pid": os.getpid()}
        atomic_write_json(self.status_path, status)

    def complete(self, **fields: Any) -> None:
        self.set_status(COMPLETED, finished=time.time(), **fields)

    def fail(self, error: str) -> None:
        self.set_status(FAILED, finished=time.time(), error=error)

    # --- metrics -------------------------------------------------------------------------------
    def log(self, rows: list[dict]) -> None:
        append_jsonl(self.metrics_path, rows)

    def metrics(self) -> list[dict]:
        return list(read_jsonl(self.metrics_path))


def find_runs(root: str | Path | None = None) -> list[RunDir]:
    """Every run directory under ``root`` (those holding a config.json)."""
    root = Path(root) if root is not None else results_dir()
    return sorted(RunDir(p.parent) for p in root.glob("*/*/*/config.json")) if root.exists() else []
