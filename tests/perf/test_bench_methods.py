"""What Weak2Strong and ProxyTuning cost against LoRA and Pen2Sword: labels + training, in one run.

Run (nano by default; the figures in the issue notes come from micro):
    HARNESS_PERF_SCALE=micro HARNESS_PERF_STEPS=100 pytest -m perf tests/perf/test_bench_methods.py --benchmark-only -s

Every method runs the same steps with the same validation (at the end only, no benchmarks), in a
private cache that links the built model family and data but starts without pseudo-labels, so the
first Weak2Strong run pays for its labels and the second reuses them. Reported: minutes per 1k
steps of each run (wall time less model building) and the ratio to LoRA. The paper's Figure 2c:
LoRA 47, Weak2Strong 110 (2.3x), ProxyTuning 235 (5x), Pen2Sword 47 minutes per 1k steps; the
issue's targets are at most 1.3x and 1.6x, and about 1.0x with cached labels.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.config import resolve_config
from harness.engine.plan import plan_run
from harness.engine.run import execute
from harness.method import method_overrides
from harness.paths import cache_dir

pytestmark = pytest.mark.perf
SCALE = os.environ.get("HARNESS_PERF_SCALE", "nano")
STEPS = int(os.environ.get("HARNESS_PERF_STEPS", "20"))
# (method, label, overrides): each labelling method twice, the second run reusing the first one's labels;
# the official code's teacher-forced labels (one forward pass per record) for comparison.
RUNS = [("lora", "lora", ()), ("weak2strong", "weak2strong", ()),
        ("weak2strong", "weak2strong (cached labels)", ()),
        ("weak2strong", "weak2strong (teacher-forced)", ("pseudo_labels.labels=teacher-forced",)),
        ("proxytuning", "proxytuning", ()), ("proxytuning", "proxytuning (cached labels)", ()),
        ("pen2sword", "pen2sword", ())]


def minutes_per_1k(run) -> dict[str, float]:
    """Per 1k steps: ``total`` (wall less model building) and ``cost`` (labels + loading + training,
    without validation, which every method runs alike and which a short run over-weights)."""
    status = run.status()
    phases = status["phase_seconds"]
    total = status["wall_seconds"] - phases.get("build_models", 0.0)
    cost = total - phases.get("validation", 0.0)
    scale = 1000 / STEPS / 60
    return {"total": total * scale, "cost": cost * scale, "labels": phases.get("pseudo_labels", 0.0) * scale}


def test_method_costs(benchmark, tmp_path, monkeypatch):
    shared = cache_dir()
    private = tmp_path / "cache"
    private.mkdir()
    for name in ("zoo", "wheels", "precision"):
        if (shared / name).exists():
            (private / name).symlink_to(shared / name)
    monkeypatch.setenv("HARNESS_CACHE", str(private))
    overrides = [f"training.max_steps={STEPS}", f"training.eval_every={STEPS}", f"training.checkpoint_steps=[{STEPS}]",
                 "eval.benchmarks=false"]
    costs: dict[str, dict[str, float]] = {}

    def run_all():
        for method, label, extra in RUNS:
            config = resolve_config(given={"method": method, "suite": "code", "scale": SCALE},
                                    overrides=[*overrides, *extra],
                                    method_overrides_for=method_overrides)
            run = execute(plan_run(config, tmp_path / label.replace(" ", "_")), progress=False)
            assert run.is_completed(), run.status()
            costs[label] = minutes_per_1k(run)

    benchmark.pedantic(run_all, rounds=1, iterations=1)
    assert Path(private / "pseudo-labels").is_dir()
    lora = costs["lora"]
    benchmark.extra_info.update({"scale": SCALE, "steps": STEPS, "minutes_per_1k_steps": costs,
                                 "cost_ratio_to_lora": {k: v["cost"] / lora["cost"] for k, v in costs.items()}})
    print(f"\nminutes per 1k steps at {SCALE} ({STEPS} steps each): cost = labels + loading + training "
          "(no validation); total = wall less model building")
    for label, v in costs.items():
        print(f"  {label:30s} cost {v['cost']:8.2f} ({v['cost'] / lora['cost']:4.2f}x lora, labels {v['labels']:6.2f})"
              f"   total {v['total']:8.2f} ({v['total'] / lora['total']:4.2f}x)")
