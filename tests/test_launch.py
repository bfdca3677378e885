"""Launchers through submitit's local executor (real submitit jobs, real subprocesses): a run launched as a job
completes; a job interrupted mid-run is requeued and resumes to the metrics of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from harness.cli import main
from harness.config import ConfigError, resolve_config
from harness.launch import Launcher, SlurmOptions
from harness.method import method_overrides
from harness.runstore import RunDir, latest_metrics

QUICK = ["training.max_steps=120", "training.eval_every=30", "training.checkpoint_steps=[30,60,90,120]",
         "training.warmup_steps=2", "eval.benchmarks=false"]


def nano_lora(*extra: str):
    return resolve_config(given={"method": "lora", "suite": "code", "scale": "nano"}, overrides=[*QUICK, *extra],
                          method_overrides_for=method_overrides)


def curve(run: RunDir) -> dict:
    """What a run measured: training loss per step and validation scores per evaluation (no timings)."""
    keep = {"loss", "grad_norm", "lr", "rouge1", "rouge2", "rougeL", "eval_loss", "eval_bits_per_byte"}
    return {(r["step"], r["metric"]): r["value"] for r in latest_metrics(run.metrics()) if r["metric"] in keep}


def test_a_run_launched_as_a_job_completes(tmp_path, capsys):
    results = tmp_path / "results"
    assert main(["run", "--method", "lora", "--suite", "code", "--scale", "nano", "--results-dir", str(results),
                 "--launcher", "submitit-local", "--json", *QUICK]) == 0
    out = capsys.readouterr()
    summary = json.loads(out.out)
    assert summary["state"] == "completed" and summary["last_step"] == 120
    assert "job" in out.err and "_log.out" in out.err  # the job's id and log are named
    assert list((results / ".jobs").glob("*_log.out"))  # submitit's job folder under the results root
    # `harness runs` names each run's job and log, and lists a job not started yet as queued.
    (job,) = [json.loads(line) for line in (results / ".jobs" / "jobs.jsonl").read_text().splitlines()]
    with (results / ".jobs" / "jobs.jsonl").open("a") as jobs:
        jobs.write(json.dumps({**job, "job_id": "999999", "method": "dora"}) + "\n")
    assert main(["runs", "--results-dir", str(results), "--json"]) == 0
    rows = {r["method"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["lora"]["job_id"] == job["job_id"] and rows["lora"]["log"] == job["log"]
    assert rows["lora"]["state"] == "completed" and rows["dora"]["state"] == "queued"
    assert main(["runs", "--results-dir", str(results)]) == 0
    assert "999999" in capsys.readouterr().out


def test_a_requeued_job_resumes_to_the_metrics_of_an_uninterrupted_run(tmp_path):
    straight, = Launcher("submitit-local", str(tmp_path / "straight"), say=lambda m: None).launch([nano_lora()])
    assert straight.wait(), straight.error

    item, = Launcher("submitit-local", str(tmp_path / "requeued"), say=lambda m: None).launch([nano_lora()])
    deadline = time.time() + 240
    while not list((tmp_path / "requeued").glob("code/lora/*/checkpoints/step-30")):  # mid-run: past a checkpoint
        assert time.time() < deadline and not item.job.done(), "the job never reached step 30"
        time.sleep(0.2)
    # What Slurm does before a time limit (sbatch --signal=USR2@90) and on preemption: the job's process gets
    # USR2, and submitit's handler calls RunJob.checkpoint and requeues the job.
    (status_path,) = (tmp_path / "requeued").glob("code/lora/*/status.json")
    os.kill(json.loads(status_path.read_text())["pid"], signal.SIGUSR2)
    assert item.wait(), item.error
    run = RunDir(item.run_dir)
    status = run.status()
    assert status["state"] == "completed" and status["attempts"] == 2  # it did stop, and came back
    log = item.job.stdout() + (item.job.stderr() or "")
    assert "resuming from step-" in log
    assert curve(run) == curve(RunDir(straight.run_dir))


def test_slurm_options_from_yaml_and_flags(tmp_path):
    path = tmp_path / "slurm.yaml"
    path.write_text("partition: gpu\naccount: lab\nmem_gb: 64\nsbatch: [--exclusive]\n")
    options = SlurmOptions.load(path, mem_gb=32, gpus_per_run=2)
    params = options.executor_parameters("harness")
    assert params["slurm_partition"] == "gpu" and params["slurm_account"] == "lab"
    assert params["mem_gb"] == 32 and params["gpus_per_node"] == 2  # the flag over the file
    assert params["slurm_additional_parameters"] == {"exclusive": True}
    with pytest.raises(ConfigError, match="unknown Slurm option.*partitoin"):
        SlurmOptions.load(None, partitoin="gpu")
    with pytest.raises(ConfigError, match="slurm.time_min"):
        SlurmOptions.load(None, time_min=0)


def test_a_slurm_dry_run_prints_the_sbatch_options(tmp_path, capsys):
    assert main(["run", "--method", "lora", "--suite", "code", "--scale", "nano", "--results-dir", str(tmp_path),
                 "--dry-run", "--launcher", "slurm", "--partition", "debug", "--gpus-per-run", "1",
                 "--time-min", "120", "--sbatch=--exclusive"]) == 0
    out = capsys.readouterr().out
    for line in ("#SBATCH --partition=debug", "#SBATCH --gpus-per-node=1", "#SBATCH --time=120",
                 "#SBATCH --exclusive", "#SBATCH --signal=USR2@90"):
        assert line in out
    assert not any(tmp_path.iterdir())  # nothing submitted, nothing created


def test_two_jobs_of_one_run_never_both_train(tmp_path):
    config = nano_lora("training.max_steps=60", "training.checkpoint_steps=[60]")
    first, second = Launcher("submitit-local", str(tmp_path), say=lambda m: None).launch([config, config])
    outcomes = [first.wait(), second.wait()]
    (run,) = [RunDir(p.parent) for p in tmp_path.glob("code/lora/*/config.json")]
    assert run.status()["state"] == "completed" and run.status()["attempts"] == 1  # trained once, by one job
    assert True in outcomes  # one of them trained it ...
    loser = second if outcomes[0] else first  # ... the other was refused, or found it done when it started
    assert loser.error is None or "is being run by" in loser.error


def reproduce_table2(results, launcher: str) -> tuple[str, dict]:
    assert main(["reproduce", "--table", "2", "--scale", "nano", "--launcher", launcher, "--results-dir",
                 str(results), "--out", str(results / "report"), "eval.benchmarks=false"]) == 0
    return ((results / "report" / "table2.md").read_text(),
            json.loads((results / "report" / "claims.json").read_text()))


def test_reproduce_through_submitit_completes_a_table(tmp_path):
    """A nano Table 2 through submitit's local executor: five jobs, every row filled, its claims tested."""
    table, claims = reproduce_table2(tmp_path, "submitit-local")
    for row in ("Pen2Sword", "w/o DPF Selection", "w/o Expansion", "w/o Fusion", "w/o Embedding Training"):
        assert f"| {row} |" in table
    assert "missing" not in table.lower()
    assert len(list((tmp_path / ".jobs").glob("*_result.pkl"))) == 5 and claims


@pytest.mark.slow
def test_reproduce_through_submitit_matches_the_local_launcher(tmp_path):
    """The report from submitit jobs equals the local launcher's (tests/test_slurm.py does it through Slurm)."""
    assert reproduce_table2(tmp_path / "submitit", "submitit-local") == reproduce_table2(tmp_path / "local", "local")


def test_a_job_trains_its_run_with_several_processes(tmp_path):
    """--processes-per-run 2: torchrun inside the job, accelerate's DDP over 2 CPU processes (gloo); the run
    reaches the single-process losses, and its profile sums the memory of both processes and says so."""
    config = nano_lora("training.max_steps=8", "training.eval_every=4", "training.checkpoint_steps=[4,8]")
    options = SlurmOptions(processes_per_run=2)
    item, = Launcher("submitit-local", str(tmp_path / "ddp"), slurm=options, say=lambda m: None).launch([config])
    single, = Launcher("submitit-local", str(tmp_path / "one"), say=lambda m: None).launch([config])
    assert item.wait(), item.error
    assert single.wait(), single.error
    run = RunDir(item.run_dir)
    profile = run.status()["profile"]
    assert profile["processes"] == 2 and len(profile["per_process"]) == 2
    assert profile["process_peak_rss_mb_sum"] == pytest.approx(
        sum(p["process_peak_rss_mb"] for p in profile["per_process"]))
    assert "summed over the run's 2 processes" in profile["memory_note"]
    ddp, one = curve(run), curve(RunDir(single.run_dir))
    assert ddp.keys() == one.keys()
    for key in ddp:  # the same global batch, reduced in another order (and LoRA dropout drawn per process)
        if key[1] in ("loss", "eval_loss", "rouge1"):
            assert ddp[key] == pytest.approx(one[key], rel=1e-3, abs=1e-6), key


def test_a_run_of_several_processes_builds_the_missing_model_family_once(tmp_path, data_cache, monkeypatch):
    """On a machine without the model family, the first rank builds it and the others wait: transformers saves a
    model on rank 0 only once torch.distributed is up, so a build on another rank wrote nothing and crashed."""
    import shutil

    from harness.engine.run import run_in_subprocess

    cache = tmp_path / "cache"  # the session's data, no model family
    shutil.copytree(data_cache / "wheels", cache / "wheels")
    monkeypatch.setenv("HARNESS_CACHE", str(cache))
    config = nano_lora("training.max_steps=2", "training.eval_every=2", "training.checkpoint_steps=[2]")
    assert run_in_subprocess(config, tmp_path / "results", processes=2) == 0
    (run,) = [RunDir(p.parent) for p in (tmp_path / "results").glob("code/lora/*/config.json")]
    assert run.status()["state"] == "completed"
    (family,) = (cache / "zoo").glob("nano-*")
    assert (family / "target-base" / "model.safetensors").is_file() and not list(family.glob(".*partial*"))
