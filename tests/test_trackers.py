"""A run's metrics also reach the trackers researchers watch (accelerate's tracker classes): TensorBoard holds
the same values as metrics.jsonl; a tracker that is not installed is refused before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.engine import trackers
from harness.runstore import RunDir, latest_metrics

QUICK = ["training.max_steps=4", "training.eval_every=2", "training.checkpoint_steps=[4]", "eval.benchmarks=false"]


def test_tensorboard_receives_the_runs_metrics(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.delenv(trackers.ENV, raising=False)
    assert main(["run", "--method", "lora", "--suite", "code", "--scale", "nano", "--results-dir", str(tmp_path),
                 "--no-progress", "--json", "--trackers", "tensorboard", *QUICK]) == 0
    run = RunDir(Path(json.loads(capsys.readouterr().out)["run_dir"]))
    events = EventAccumulator(str(run.path / "tensorboard" / run.path.name)).Reload()
    logged = {(r["step"], f"{r['phase']}/{r['metric']}"): r["value"] for r in latest_metrics(run.metrics())
              if r["metric"] in ("loss", "rouge1", "eval_loss")}
    assert logged
    for (step, tag), value in logged.items():
        (event,) = [e for e in events.Scalars(tag) if e.step == step]
        assert event.value == pytest.approx(value, rel=1e-6)


def test_auto_is_tensorboard_where_installed_and_a_missing_tracker_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(trackers, "_available", lambda name: name == "tensorboard")
    assert trackers.chosen("auto") == ["tensorboard"] and trackers.chosen("none") == []
    monkeypatch.setattr(trackers, "_available", lambda name: False)
    assert trackers.chosen("auto") == []  # never required
    assert main(["run", "--method", "lora", "--suite", "code", "--scale", "nano", "--results-dir", str(tmp_path),
                 "--trackers", "wandb", *QUICK]) == 2
    assert "pip install wandb" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
