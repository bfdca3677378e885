import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

from harness.config import resolve_config
from harness.io import atomic_write_json, read_json, read_jsonl, repair_jsonl
from harness.runstore import COMPLETED, INTERRUPTED, RUNNING, RunDir, find_runs


def test_layout_and_lifecycle(tmp_path):
    cfg = resolve_config(given={"method": "lora", "suite": "code"})
    run = RunDir.for_config(cfg, tmp_path)
    assert run.path == tmp_path / "code" / "lora" / cfg.run_id()
    run.create(cfg.to_dict(), {"seed": 0})
    assert run.status()["state"] == RUNNING and not run.is_completed()
    run.log([{"step": 1, "phase": "train", "metric": "loss", "value": 2.0}])
    run.complete()
    assert run.is_completed() and run.status()["state"] == COMPLETED
    assert read_json(run.config_path) == cfg.to_dict()
    assert run.samples_dir.is_dir() and run.checkpoints_dir.is_dir()
    assert run.metrics()[0]["value"] == 2.0
    assert find_runs(tmp_path) == [run]


def test_second_attempt_keeps_first_provenance(tmp_path):
    cfg = resolve_config()
    run = RunDir.for_config(cfg, tmp_path)
    run.create(cfg.to_dict(), {"attempt": 1})
    run.create(cfg.to_dict(), {"attempt": 2})
    assert run.status()["attempts"] == 2
    assert read_json(run.path / "provenance.attempt-1.json") == {"attempt": 1}
    assert read_json(run.provenance_path) == {"attempt": 2}


def test_kill_during_atomic_write_leaves_old_file_intact(tmp_path):
    """A writer killed mid-write must leave the previous complete file, never a torn one."""
    target = tmp_path / "status.json"
    atomic_write_json(target, {"version": "old"})
    writer = textwrap.dedent(f"""
        from harness.io import atomic_write_json
        big = {{"version": "new", "payload": "x" * 50_000_000}}
        print("ready", flush=True)
        while True:
            atomic_write_json({str(target)!r}, big)
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)  # well inside a 50 MB write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    data = json.loads(target.read_text())  # parses: old or new, whole
    assert data["version"] in ("old", "new")
    if data["version"] == "new":
        assert len(data["payload"]) == 50_000_000
    leftovers = [p for p in tmp_path.iterdir() if p.name != "status.json"]
    assert all(p.name.endswith(".tmp") for p in leftovers)  # only an orphaned temp file may remain


def test_torn_metrics_line_is_skipped_then_repaired(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"ste')
    assert [r["step"] for r in read_jsonl(path)] == [1, 2]
    assert repair_jsonl(path) == len('{"ste')
    assert path.read_text().endswith("}\n")
    assert repair_jsonl(path) == 0


def test_create_refuses_a_different_config_in_the_same_dir(tmp_path):
    cfg = resolve_config()
    run = RunDir.for_config(cfg, tmp_path)
    run.create(cfg.to_dict(), {})
    other = resolve_config(overrides=["seed=7"]).to_dict()
    try:
        run.create(other, {})
    except RuntimeError as err:
        assert "different configuration" in str(err)
    else:
        raise AssertionError("a different config was accepted into an existing run directory")


# --- a run that died: state() --------------------------------------------------------------------

def _spawn_running_run(path):
    """A separate process that starts a run at ``path`` (status running, its own pid) and then waits."""
    code = textwrap.dedent(f"""
        import sys, time
        from harness.runstore import RunDir
        RunDir(__import__("pathlib").Path({str(path)!r})).create({{"method": "lora"}}, {{}})
        print("ready", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_sigkilled_run_reads_interrupted(tmp_path):
    run = RunDir(tmp_path / "code" / "lora" / "s0-dead")
    proc = _spawn_running_run(run.path)
    try:
        status = run.status()
        assert status["state"] == RUNNING and status["pid"] == proc.pid
        assert status["host"] == socket.gethostname() and status["pid_create_time"] > 0
        assert run.state() == RUNNING  # another process, alive
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert run.status()["state"] == RUNNING  # the raw status cannot know
    assert run.state() == INTERRUPTED
    run.create({"method": "lora"}, {})  # the resume: this (live) process takes it over
    assert run.state() == RUNNING and run.status()["attempts"] == 2


def test_a_reused_pid_does_not_count_as_the_run(tmp_path):
    run = RunDir(tmp_path / "r")
    run.create({}, {})
    assert run.state() == RUNNING  # this very process, alive
    status = run.status()
    atomic_write_json(run.status_path, {**status, "pid_create_time": status["pid_create_time"] - 3600})
    assert run.state() == INTERRUPTED  # same pid, but a process that started an hour later
    legacy = {k: v for k, v in status.items() if k not in ("host", "pid_create_time")}
    atomic_write_json(run.status_path, legacy)  # written before hosts were recorded: pid only
    assert run.state() == RUNNING
    atomic_write_json(run.status_path, {**legacy, "pid": 2**22 + 4321})
    assert run.state() == INTERRUPTED


def test_running_on_another_host_and_finished_states(tmp_path):
    run = RunDir(tmp_path / "r")
    assert run.state() == "new"
    run.create({}, {})
    atomic_write_json(run.status_path, {**run.status(), "host": "node-7", "pid": 2**22 + 4321})
    assert run.state() == "running (on node-7)"  # its processes cannot be checked from here
    run.complete()
    atomic_write_json(run.status_path, {**run.status(), "pid": 2**22 + 4321})  # its process is long gone
    assert run.state() == COMPLETED
    run.fail("boom")
    assert run.state() == "failed"
