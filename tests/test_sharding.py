"""training.fsdp: the model sharded over a run's processes (PyTorch FSDP2 over gloo on this CPU) trains what one
process trains, resumes exactly from its checkpoints, and is validated and benchmarked by one rank with the
weights gathered."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.config import ConfigError, resolve_config
from harness.method import method_overrides
from harness.runstore import RunDir, latest_metrics

TESTS = Path(__file__).parent


def train(out: Path, peft: str, checkpoints: Path, *, processes: int, resume_from: Path | None = None) -> dict:
    """tests/fsdp_train.py in one process (no sharding) or under torchrun (training.fsdp); what it wrote."""
    script = [str(TESTS / "fsdp_train.py"), str(out), peft, str(checkpoints), *([str(resume_from)] if resume_from else [])]
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    subprocess.run([*launcher, *script], check=True, timeout=300)
    return json.loads(out.read_text())


def by_key(rows: list[dict]) -> dict:
    return {(r["step"], r["metric"]): r["value"] for r in rows}


@pytest.mark.parametrize("peft", ["full", pytest.param("lora", marks=pytest.mark.slow)])  # LoRA: the resume test
def test_two_sharded_processes_train_what_one_process_trains(tmp_path, peft):
    one = train(tmp_path / "one.json", peft, tmp_path / "one", processes=1)
    two = train(tmp_path / "two.json", peft, tmp_path / "two", processes=2)
    assert (one["world"], one["sharded"], two["world"], two["sharded"]) == (1, False, 2, True)
    a, b = by_key(one["rows"]), by_key(two["rows"])
    assert a.keys() == b.keys() and {m for _, m in a} == {"loss", "grad_norm", "rouge1", "eval_loss"}
    for key in a:  # the same global batch, its gradient reduced across the shards
        assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key
    assert one["final"].keys() == two["final"].keys()  # whole tensors, gathered from the shards, by name
    for name in one["final"]:
        assert two["final"][name] == pytest.approx(one["final"][name], abs=1e-6), name


def test_a_sharded_run_resumes_exactly_from_its_checkpoint(tmp_path):
    whole = train(tmp_path / "whole.json", "lora", tmp_path / "whole", processes=2)
    assert sorted(p.name for p in (tmp_path / "whole").iterdir()) == ["step-0", "step-2", "step-4"]
    # Another run's directory holding step 2 only, as an interrupted run leaves it, resumed in new processes.
    (tmp_path / "cut").mkdir()
    subprocess.run(["cp", "-r", str(tmp_path / "whole" / "step-2"), str(tmp_path / "cut")], check=True)
    resumed = train(tmp_path / "resumed.json", "lora", tmp_path / "cut", processes=2,
                    resume_from=tmp_path / "cut" / "step-2")
    later = {k: v for k, v in by_key(whole["rows"]).items() if k[0] > 2}
    assert by_key(resumed["rows"]) == later and later  # steps 3 and 4 to the last digit
    assert resumed["final"] == whole["final"]


def test_fsdp_settings_are_checked():
    with pytest.raises(ConfigError, match="training.fsdp.*qlora"):
        resolve_config(given={"scale": "nano"}, overrides=["training.fsdp=true", "training.peft=qlora"])
    plain = resolve_config(given={"method": "lora", "suite": "code", "scale": "nano"},
                           method_overrides_for=method_overrides)
    sharded = resolve_config(given={"method": "lora", "suite": "code", "scale": "nano"},
                             overrides=["training.fsdp=true"], method_overrides_for=method_overrides)
    off = resolve_config(given={"method": "lora", "suite": "code", "scale": "nano"},
                         overrides=["training.fsdp=false"], method_overrides_for=method_overrides)
    assert plain.run_id() == off.run_id() != sharded.run_id()  # runs made before it keep their ids


def test_fsdp_in_one_process_is_a_clear_error():
    from tiny import tiny_llama, tiny_tokenizer

    from harness.engine.trainer import Trainer

    texts = ["def f(x):\n    return x\n"] * 4
    tok = tiny_tokenizer(texts, vocab_size=260)
    config = resolve_config(given={"scale": "nano"}, overrides=["training.fsdp=true", "training.precision=fp32"])
    with pytest.raises(ValueError, match="--processes-per-run"):
        Trainer(tiny_llama(tok), tok, config, [{"id": str(i), "instruction": "f", "response": t} for i, t in
                                               enumerate(texts)], [],
                checkpoints_dir=None, emit=lambda rows: None, progress=False)


def test_a_sharded_run_is_validated_and_benchmarked_like_one_process(tmp_path, nano_zoo):
    """harness's own run in two processes with training.fsdp: the main rank validates and scores the benchmarks
    alone on the gathered weights, the other takes part in each gather, and the run's metrics are one process's."""
    from harness.engine.run import run_in_subprocess

    overrides = ["training.max_steps=4", "training.eval_every=2", "training.checkpoint_steps=[2,4]",
                 "training.precision=fp32", "training.lora_dropout=0"]
    base = dict(given={"method": "lora", "suite": "code", "scale": "nano"}, method_overrides_for=method_overrides)
    one_config = resolve_config(overrides=overrides, **base)
    two_config = resolve_config(overrides=[*overrides, "training.fsdp=true"], **base)
    assert run_in_subprocess(one_config, tmp_path / "one", processes=1) == 0
    assert run_in_subprocess(two_config, tmp_path / "two", processes=2) == 0
    runs = [RunDir(next((tmp_path / name).glob("code/lora/*/config.json")).parent) for name in ("one", "two")]
    assert [r.status()["state"] for r in runs] == ["completed", "completed"]
    one, two = ({(r["step"], r["phase"], r["metric"]): r["value"] for r in latest_metrics(run.metrics())
                 if r["phase"] in ("train", "eval", "benchmark") and isinstance(r["value"], float)
                 and r["metric"] not in ("step_seconds", "tokens_per_s", "rss_mb")} for run in runs)
    assert one.keys() == two.keys()
    assert {k for k in one if k[1] == "benchmark" and k[2].endswith("/score")}  # benchmarks were scored
    for key in one:
        assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-5), key


def test_a_launch_without_processes_to_shard_over_is_refused_before_anything_starts(tmp_path, capsys):
    from harness.cli import main

    results = tmp_path / "results"
    code = main(["run", "--method", "fft", "--suite", "code", "--scale", "nano", "--results-dir", str(results),
                 "training.fsdp=true"])
    assert code == 2 and "--processes-per-run" in capsys.readouterr().err
    assert not results.exists() or not list(results.rglob("config.json"))
    code = main(["run", "--method", "fft", "--suite", "code", "--scale", "nano", "--results-dir", str(results),
                 "--launcher", "submitit-local", "--processes-per-run", "2", "--dry-run", "training.fsdp=true"])
    assert code == 0
