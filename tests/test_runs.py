"""Whole runs on the nano scale: every registered method, skip-completed, kill + resume, benchmarks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from harness.config import resolve_config
from harness.engine.plan import plan_run
from harness.engine.run import execute
from harness.io import read_json
from harness.method import method_overrides
from harness.registry import METHODS
QUICK = ["training.max_steps=2", "training.eval_every=2", "training.checkpoint_steps=[2]", "eval.benchmarks=false"]


def nano_config(method: str, *overrides: str):
    return resolve_config(given={"method": method, "suite": "code", "scale": "nano"}, overrides=[*QUICK, *overrides],
                          method_overrides_for=method_overrides)


def rows_of(run, phase=None, metric=None):
    return [r for r in run.metrics() if (phase is None or r["phase"] == phase) and (metric is None or r["metric"] == metric)]


@pytest.mark.parametrize("method", METHODS.names())
def test_every_registered_method_runs(method, nano_zoo, tmp_path):
    """One conformance test over the registry: a few nano steps, then the run directory is complete."""
    spec = METHODS.get(method)
    config = nano_config(method)
    if config.training.peft == "qlora" and not torch.cuda.is_available():
        from harness.engine.adapters import AdapterUnavailableError

        with pytest.raises(AdapterUnavailableError, match="CUDA"):
            execute(plan_run(config, tmp_path), progress=False)
        return
    run = execute(plan_run(config, tmp_path), progress=False)
    assert run.is_completed(), run.status()
    assert read_json(run.config_path)["method"] == method
    assert rows_of(run, "eval", "rouge1")[0]["step"] == 0
    assert rows_of(run, spec.prepare_phase, "phase_seconds") and rows_of(run, "load_model", "phase_seconds")
    status = run.status()  # exclusive phases: their self times never add up to more than the wall time
    assert 0 < sum(status["phase_seconds"].values()) <= status["wall_seconds"] + 1e-6
    provenance = read_json(run.provenance_path)
    assert "target" in provenance["models"] and provenance["datasets"]
    if spec.trains:
        losses = rows_of(run, "train", "loss")
        assert [r["step"] for r in losses] == [1, 2]
        assert rows_of(run, "setup", "trainable_params")[0]["value"] > 0
        assert (run.checkpoint_dir(2) / "trainable.safetensors").exists()
        assert rows_of(run, "training", "phase_seconds")
    if method.startswith("pen2sword"):
        report = read_json(run.path / "prepare.json")["transfer"]
        assert report["d_S"] < report["d_T"] and report["expert_only_count"] >= 0


def test_variants_change_only_what_they_ablate(nano_zoo, tmp_path):
    base = nano_config("pen2sword").to_dict()
    for variant, key in [("pen2sword-f", ("training", "train_embeddings")),
                         ("pen2sword-no-fusion", ("pen2sword", "fusion")),
                         ("pen2sword-no-expansion", ("pen2sword", "expansion"))]:
        cfg = nano_config(variant).to_dict()
        changed = {(section, k) for section in base if isinstance(base[section], dict)
                   for k in base[section] if base[section][k] != cfg[section][k]}
        assert changed == {key}, (variant, changed)
    lora, pen = nano_config("lora").training, nano_config("pen2sword").training
    assert lora == pen  # equal terms: same modules, precision, data, masking


def test_completed_run_is_skipped_unless_forced(nano_zoo, tmp_path):
    config = nano_config("lora")
    run = execute(plan_run(config, tmp_path), progress=False)
    n_rows = len(run.metrics())
    again = execute(plan_run(config, tmp_path), progress=False)
    assert again.path == run.path and len(again.metrics()) == n_rows  # nothing re-ran
    forced = execute(plan_run(config, tmp_path), force=True, progress=False)
    assert forced.is_completed() and forced.status()["attempts"] == 1  # a fresh directory


def test_killed_run_resumes_to_the_same_metrics(nano_zoo, tmp_path):
    """SIGKILL a real `harness run` after its step-4 checkpoint; `--resume auto` finishes it exactly."""
    args = ["--method", "lora", "--suite", "code", "--scale", "nano", "--no-progress", "eval.benchmarks=false",
            "training.max_steps=8", "training.eval_every=2", "training.checkpoint_steps=[4,8]"]
    env = {**os.environ}
    cmd = [sys.executable, "-m", "harness.cli", "run", *args]
    subprocess.run([*cmd, "--results-dir", str(tmp_path / "straight")], check=True, env=env, timeout=600,
                   capture_output=True)
    killed_root = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--results-dir", str(killed_root)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not list(killed_root.glob("code/lora/*/checkpoints/step-4/trainer_state.json")):
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status = read_json(next(killed_root.glob("code/lora/*/status.json")))
    assert status["state"] == "running"  # killed: nobody wrote a final status
    subprocess.run([*cmd, "--results-dir", str(killed_root)], check=True, env=env, timeout=600, capture_output=True)

    from harness.runstore import find_runs

    (straight,), (resumed,) = find_runs(tmp_path / "straight"), find_runs(killed_root)
    assert resumed.is_completed() and resumed.status()["attempts"] == 2

    def curve(run):  # the latest attempt's value for each (step, metric)
        latest = {}
        for r in run.metrics():
            if r["phase"] in ("train", "eval") and r["metric"] in ("loss", "rouge1", "eval_loss"):
                latest[(r["step"], r["metric"])] = r["value"]
        return latest

    assert curve(resumed) == curve(straight)
    assert len([k for k in curve(straight) if k[1] == "loss"]) == 8


def test_benchmarks_run_at_checkpoints_and_best(nano_zoo, tmp_path):
    config = resolve_config(given={"method": "pen2sword", "suite": "code", "scale": "nano"},
                            overrides=["training.max_steps=4", "training.eval_every=2", "training.checkpoint_steps=[2,4]",
                                       "eval.benchmark_limit=2"],
                            method_overrides_for=method_overrides)
    run = execute(plan_run(config, tmp_path), progress=False)
    rows = rows_of(run, "benchmark")
    best = run.status()["best_step"]
    steps = {r["step"] for r in rows}
    assert steps == {2, 4, best}
    scores = [r for r in rows if r["metric"].endswith("/score")]
    names = {r["metric"].split("/")[0] for r in scores}
    assert names == {"humaneval", "mmlu-cs", "mmlu-physics", "mmlu-politics", "mmlu"}
    for r in scores:
        record = r["benchmark"]
        assert record["n_items"] == 2 and r["n"] == 2 and record["version"] == record["protocol"]["version"]
        assert record["subsample"]["seed"] == config.eval.subsample_seed == 0  # not the training seed
    continuous = {r["metric"] for r in rows if r["step"] == 2 and not r["metric"].endswith("/score")}
    assert continuous == {f"{n}/bits_per_byte" for n in names} | {f"{n}/p_correct" for n in names if n != "humaneval"}
    assert all(r["value"] > 0 and r["n"] == 2 for r in rows if r["metric"].endswith("/bits_per_byte"))
    assert (run.samples_dir / "benchmarks-step-2").is_dir()

    # Another training seed scores the very same items: the subsample is drawn with eval.subsample_seed.
    other = execute(plan_run(resolve_config(given={"method": "lora", "suite": "code", "scale": "nano", "seed": 1},
                                   overrides=["training.max_steps=2", "training.eval_every=2",
                                              "training.checkpoint_steps=[2]", "eval.benchmark_limit=2"],
                                   method_overrides_for=method_overrides), tmp_path), progress=False)
    def item_ids(r):
        return {row["metric"]: row["benchmark"]["subsample"]["ids_sha256"] for row in rows_of(r, "benchmark")
                if row["step"] == 2 and row["metric"].endswith("/score")}
    assert item_ids(other) == item_ids(run) and len(item_ids(run)) == 5


def test_transfer_command_writes_a_loadable_model(nano_zoo, tmp_path, capsys):
    from harness.cli import main
    from harness.models import load_model, load_tokenizer, resolve_model

    out = tmp_path / "p2s"
    assert main(["transfer", "--expert", "code-expert", "--target", "target-base", "--out", str(out),
                 "--scale", "nano", "--alpha", "0.25", "--seed", "3", "--json"]) == 0
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["alpha"] == 0.25 and report["seed"] == 3
    assert report["expert_only_count"] == 16  # the code expert's 16 extra tokens
    model, tok = load_model(str(out)), load_tokenizer(str(out))
    target = resolve_model("target-base", scale="nano")
    assert len(tok) == len(load_tokenizer(target)) + 16
    assert model.get_input_embeddings().weight.shape[0] == len(tok)
    assert (out / "pen2sword_transfer.json").exists()
