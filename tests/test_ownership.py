"""One owner per run directory: a second process of a running config is refused (exit 2, naming the owner),
--force never deletes a live run, and a claim whose owner died is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from harness.runstore import RunDir, RunOwnedError, hostname


CLI = [sys.executable, "-c", "import sys; from harness.cli import main; sys.exit(main())"]


def write_claim(run: RunDir, **fields) -> None:
    run.owner_path.parent.mkdir(parents=True, exist_ok=True)
    run.owner_path.write_text(json.dumps({"host": hostname(), "pid": os.getpid(), "claimed": time.time(),
                                          "heartbeat": time.time(), **fields}))


def dead_pid() -> tuple[int, float]:
    import psutil

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    created = psutil.Process(proc.pid).create_time()
    proc.wait()
    return proc.pid, created


def test_a_live_claim_refuses_and_is_released(tmp_path):
    run = RunDir(tmp_path / "code" / "lora" / "s0-x")
    with run.claim(say=lambda m: None) as record:
        assert run.owner()["pid"] == os.getpid() == record["pid"]
        with pytest.raises(RunOwnedError, match=f"pid {os.getpid()}"):
            with run.claim(say=lambda m: None):
                pass
    assert run.owner() is None  # released on the way out


def test_a_dead_owners_claim_is_taken_over(tmp_path):
    run = RunDir(tmp_path / "code" / "lora" / "s0-x")
    pid, created = dead_pid()
    write_claim(run, pid=pid, pid_create_time=created, job_id="4242_3")
    said = []
    with run.claim(say=said.append):
        assert run.owner()["pid"] == os.getpid()
    assert said and "taking over" in said[0] and f"pid {pid}" in said[0] and "job 4242_3" in said[0]


def test_another_hosts_claim_counts_while_its_heartbeat_is_fresh(tmp_path):
    run = RunDir(tmp_path / "code" / "lora" / "s0-x")
    write_claim(run, host="node-17", pid=1, heartbeat=time.time() - 30)
    with pytest.raises(RunOwnedError, match="node-17 pid 1"):
        with run.claim(say=lambda m: None):
            pass
    write_claim(run, host="node-17", pid=1, heartbeat=time.time() - 3600)  # a lost node
    with run.claim(say=lambda m: None):
        assert run.owner()["host"] == hostname()


def test_two_concurrent_runs_of_one_config(tmp_path):
    """The first trains; the second exits 2 naming it; --force leaves the live run alone."""
    results = tmp_path / "results"
    args = ["run", "--method", "lora", "--suite", "code", "--scale", "nano", "--results-dir", str(results),
            "--no-progress", "training.max_steps=100000", "training.checkpoint_steps=[100000]",
            "training.eval_every=100000", "eval.benchmarks=false"]
    first = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        status = None
        while time.time() < deadline:
            runs = list(results.glob("code/lora/*/status.json"))
            status = json.loads(runs[0].read_text()) if runs else None
            if status and status.get("state") == "running" and status.get("pid") == first.pid:
                break
            assert first.poll() is None, first.stderr.read()
            time.sleep(0.5)
        assert status and status["pid"] == first.pid, "the first run never started"
        run = RunDir(runs[0].parent)

        # In processes of their own, with a time limit: a second run that was not refused would train on.
        second = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert "is being run by" in second.stderr and f"pid {first.pid}" in second.stderr
        forced = subprocess.run([*CLI, *args, "--force"], capture_output=True, text=True, timeout=120)
        assert forced.returncode == 2, forced.stderr  # never deletes a live run
        assert (run.path / "config.json").is_file() and run.status()["pid"] == first.pid
        assert first.poll() is None  # the first went on training
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # Its owner is dead now: the next run of the config takes the directory over.
    said = []
    with run.claim(say=said.append):
        pass
    assert "taking over" in said[0]


def test_labels_are_written_once_when_two_runs_need_them_at_once(tmp_path, monkeypatch):
    """Shared caches have one writer: the second run waits for the first's labels and reads them."""
    import contextlib
    import threading
    from types import SimpleNamespace

    from methods.pseudolabels import LabelPlan, label_decoding, pseudo_label

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    records = [{"id": f"r{i}", "instruction": f"question {i}", "response": "x"} for i in range(4)]
    plan = LabelPlan(labeller={"expert": "e"}, mode="generate", decoding=label_decoding("eos", 8),
                     max_prompt_tokens=64, seq_len=128, reached=(0, 1, 2, 3))
    calls = []

    def write(chosen):
        calls.append(len(chosen))
        time.sleep(0.5)  # long enough for the other run to arrive while this one labels
        return [f"answer {r['id']}" for r in chosen]

    ctx = SimpleNamespace(train_records=records, phase=lambda name: contextlib.nullcontext())
    results = []
    threads = [threading.Thread(target=lambda: results.append(pseudo_label(ctx, plan, write, "test")))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [4]  # labelled once
    assert results[0][0] == results[1][0] and sorted(r[1]["cached"] for r in results) == [False, True]
