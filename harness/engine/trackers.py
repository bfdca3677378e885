"""A run's metrics also go to the trackers researchers already watch, through accelerate's tracker classes:
TensorBoard by default where it is installed, W&B or MLflow when asked for (their own offline modes work:
``WANDB_MODE=offline``, a local MLflow directory), none required. metrics.jsonl stays the run's record; a tracker
is a live view of the same rows.

The choice travels in ``HARNESS_TRACKERS`` (comma-separated; ``--trackers`` sets it), so a run started in a
process of its own or as a job uses it too. It is not part of the run's config: watching a run does not change it.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from harness.config import ConfigError

ENV = "HARNESS_TRACKERS"
CHOICES = ("auto", "none", "tensorboard", "wandb", "mlflow")
INSTALL = {"tensorboard": "pip install tensorboard", "wandb": "pip install wandb", "mlflow": "pip install mlflow"}


def _available(name: str) -> bool:
    from accelerate.tracking import is_mlflow_available, is_tensorboard_available, is_wandb_available

    return {"tensorboard": is_tensorboard_available, "wandb": is_wandb_available,
            "mlflow": is_mlflow_available}[name]()


def chosen(value: str | None = None) -> list[str]:
    """The trackers ``value`` (default: ``$HARNESS_TRACKERS``, else auto) names; ``auto`` is TensorBoard where
    installed, else none. A named tracker that is not installed raises :class:`ConfigError` with the fix."""
    value = value if value is not None else os.environ.get(ENV, "auto")
    names = [n.strip().lower() for n in value.split(",") if n.strip()] or ["auto"]
    for name in names:
        if name not in CHOICES:
            raise ConfigError(f"invalid value for --trackers: {name!r} (allowed: {', '.join(CHOICES)}, "
                              "comma-separated)")
    if "none" in names:
        return []
    if names == ["auto"]:
        return ["tensorboard"] if _available("tensorboard") else []
    missing = [n for n in names if n != "auto" and not _available(n)]
    if missing:
        raise ConfigError(f"tracker {missing[0]} is not installed here: {INSTALL[missing[0]]}, or choose "
                          "--trackers none")
    return [n for n in names if n != "auto"]


def add_tracker_argument(parser) -> None:
    parser.add_argument("--trackers", help="where the run's metrics also go: auto (TensorBoard where installed; "
                                           "default), none, tensorboard, wandb, mlflow (comma-separated)")


def use_trackers_from_args(args) -> None:
    """Check ``--trackers`` now (exit 2 on a tracker not installed) and pass it on to the run's process."""
    if getattr(args, "trackers", None) is not None:
        chosen(args.trackers)
        os.environ[ENV] = args.trackers


def open_trackers(run_dir: Path, run_name: str, config: dict) -> list[Any]:
    """The chosen trackers, started for this run (files under the run directory where a tracker keeps any)."""
    from accelerate.tracking import MLflowTracker, TensorBoardTracker, WandBTracker

    trackers = []
    for name in chosen():
        if name == "tensorboard":  # <run dir>/tensorboard/<run id>/: point TensorBoard at the results root
            tracker = TensorBoardTracker(run_dir.name, logging_dir=run_dir / "tensorboard")
        elif name == "wandb":
            tracker = WandBTracker(run_name, project=os.environ.get("WANDB_PROJECT", "harness"), dir=str(run_dir))
        else:
            tracker = MLflowTracker(experiment_name=os.environ.get("MLFLOW_EXPERIMENT_NAME", "harness"),
                                    logging_dir=os.environ.get("MLFLOW_TRACKING_URI", str(run_dir / "mlruns")),
                                    run_name=run_name)
        tracker.start()
        tracker.store_init_configuration(_flat(config))
        trackers.append(tracker)
    return trackers


def log_rows(trackers: list[Any], rows: Iterable[dict]) -> None:
    """metrics.jsonl rows as tracker scalars, ``<phase>/<metric>`` at their step."""
    if not trackers:
        return
    by_step: dict[int, dict[str, float]] = defaultdict(dict)
    for row in rows:
        value = row.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and row.get("step") is not None:
            by_step[int(row["step"])][f"{row['phase']}/{row['metric']}"] = value
    for step, values in sorted(by_step.items()):
        for tracker in trackers:
            tracker.log(values, step=step)


def close_trackers(trackers: list[Any]) -> None:
    for tracker in trackers:
        tracker.finish()


def _flat(config: dict, prefix: str = "") -> dict:
    """A nested config as one level of scalars (what hparams views take): lists become text."""
    out: dict = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return out
