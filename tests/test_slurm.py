"""Jobs on the local single-node Slurm (``bash scripts/slurm-local.sh start``; see docs/slurm-local.md).

Run: ``.venv/bin/python -m pytest -m slurm tests/test_slurm.py -q``. Skipped when ``sbatch`` is not on
PATH or ``sinfo`` shows no idle node. Every wait has a deadline, so a broken cluster fails instead of
hanging; jobs still queued when a test ends are cancelled.

What these tests pin down (Slurm 22.05, submitit 1.5.4):

* ``scontrol requeue`` sends SIGCONT and SIGTERM to the running job (not the ``--signal`` one), kills it
  after KillWait, and starts it again once its credential expired (cred_expire); the job sees
  ``SLURM_RESTART_COUNT=1`` and ``scontrol show job`` says ``Restarts=1``.
* submitit ignores SIGTERM ("Bypassing signal SIGTERM"): on a plain ``scontrol requeue`` its
  ``checkpoint()`` is *not* called; the job is restarted from the submitted pickle, so a job that
  must continue keeps its progress on disk. submitit checkpoints on USR2 (``--signal=USR2@90``, or
  ``job._interrupt()``), then requeues the job itself; the restarted job continues from the checkpoint.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slurm

# Every wait below is bounded; a requeue costs KillWait (10 s) + cred_expire (10 s) at most.
SUBMIT_TIMEOUT_S = 60
REQUEUE_TIMEOUT_S = 120
FINAL_STATES = {
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
    "DEADLINE", "PREEMPTED",
}  # fmt: skip


def _run(*cmd: str, timeout: float = 30) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=timeout).stdout


@pytest.fixture(scope="session")
def slurm_partition() -> str:
    """The default partition of a reachable Slurm with an idle node; skips the test otherwise."""
    hint = "start the local Slurm with `bash scripts/slurm-local.sh start` (docs/slurm-local.md)"
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        pytest.skip(f"sbatch/sinfo not on PATH: {hint}")
    try:
        rows = _run("sinfo", "-h", "-o", "%P %t", timeout=15).split()
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"sinfo failed ({exc.stderr.strip() or exc}): {hint}")
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"sinfo failed ({exc}): {hint}")
    pairs = list(zip(rows[::2], rows[1::2]))
    usable = [p for p, state in pairs if state in ("idle", "mix")]
    if not usable:
        pytest.skip(f"sinfo shows no idle node ({pairs or 'no partition'}): {hint}")
    default = [p for p in usable if p.endswith("*")]
    return (default or usable)[0].rstrip("*")


@dataclass
class SlurmCluster:
    """What a Slurm test needs: the partition, a fresh job folder and a job name to clean up by."""

    partition: str
    folder: Path
    job_name: str

    def executor(self, **params: Any):
        """A submitit AutoExecutor on this partition writing into ``folder``; ``params`` override."""
        import submitit

        executor = submitit.AutoExecutor(folder=self.folder / "submitit", cluster="slurm")
        defaults: dict[str, Any] = {
            "slurm_partition": self.partition,
            "slurm_job_name": self.job_name,
            # >= 50 minutes, or submitit calls every USR2 a time-out (see has_timed_out)
            "timeout_min": 60,
            "cpus_per_task": 1,
            "mem_gb": 1,
        }
        executor.update_parameters(**{**defaults, **params})
        return executor

    def sbatch(self, *args: str) -> str:
        """Submits with sbatch (job name set, output in ``folder``); returns the job id."""
        out = _run(
            "sbatch", "--parsable", "-J", self.job_name, "-p", self.partition,
            "-o", str(self.folder / "%j.out"), *args,
        )  # fmt: skip
        return out.strip().split(";")[0]

    @staticmethod
    def job_info(job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict ({} once Slurm forgot the job, MinJobAge after its end)."""
        res = subprocess.run(
            ["scontrol", "-o", "show", "job", str(job_id)], capture_output=True, text=True, timeout=30
        )
        if res.returncode != 0:
            return {}
        return dict(re.findall(r"(\S+?)=(\S*)", res.stdout))

    def wait_state(self, job_id: str, states: set[str], timeout: float) -> dict[str, str]:
        """Polls until the job is in one of ``states``; fails on a final state or at the deadline."""
        deadline = time.monotonic() + timeout
        info: dict[str, str] = {}
        while time.monotonic() < deadline:
            info = self.job_info(job_id)
            state = info.get("JobState", "")
            if state in states:
                return info
            if state in FINAL_STATES:
                pytest.fail(f"job {job_id} ended {state}, waited for {states}: {info}")
            time.sleep(0.5)
        pytest.fail(f"job {job_id} not in {states} after {timeout:.0f} s: {info}")

    def wait_result(self, job, timeout: float) -> Any:
        """``job.result()`` with a deadline. Without accounting, submitit's own state (sacct) is
        UNKNOWN forever, so this waits for the result file and watches ``scontrol`` instead."""
        deadline = time.monotonic() + timeout
        while not job.paths.result_pickle.exists():
            state = self.job_info(job.job_id).get("JobState", "")
            if state in FINAL_STATES - {"COMPLETED"} or time.monotonic() > deadline:
                time.sleep(2)  # the result file may still be on its way
                if job.paths.result_pickle.exists():
                    break
                err = job.paths.stderr.read_text()[-3000:] if job.paths.stderr.exists() else ""
                pytest.fail(f"job {job.job_id}: no result (state {state or 'gone'}), stderr:\n{err}")
            time.sleep(0.5)
        return job.result()

    def cancel_all(self) -> None:
        subprocess.run(["scancel", "--name", self.job_name], capture_output=True, timeout=30)


@pytest.fixture
def slurm_cluster(slurm_partition: str, tmp_path: Path):
    """A :class:`SlurmCluster`: partition name, job folder (tmp_path) and helpers; cancels leftovers."""
    cluster = SlurmCluster(slurm_partition, tmp_path, f"harness-test-{uuid.uuid4().hex[:8]}")
    yield cluster
    cluster.cancel_all()


# --- what the jobs run (pickled by value: the job's Python cannot import this test module) ---------

import cloudpickle  # noqa: E402
import submitit  # noqa: E402

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _log(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")


def where_am_i(a: int, b: int) -> dict[str, Any]:
    return {
        "sum": a + b,
        "job_id": os.environ.get("SLURM_JOB_ID"),
        "partition": os.environ.get("SLURM_JOB_PARTITION"),
        "executor": os.environ.get("SUBMITIT_EXECUTOR"),
    }


class Counter(submitit.helpers.Checkpointable):
    """Counts to ``n``, one step per ``step_s``; its state is ``self.i``, saved by ``checkpoint()``.

    With ``progress_file`` it also keeps ``i`` on disk and resumes from it, as a harness run resumes
    from its run directory when it is restarted without a checkpoint."""

    def __init__(self, log: str, n: int, step_s: float, progress_file: str | None = None) -> None:
        self.log, self.n, self.step_s, self.progress_file = log, n, step_s, progress_file
        self.i = 0

    def __call__(self) -> int:
        if self.progress_file and os.path.exists(self.progress_file):
            self.i = int(open(self.progress_file).read())
        _log(self.log, f"start i={self.i} restart={os.environ.get('SLURM_RESTART_COUNT', '0')}")
        while self.i < self.n:
            time.sleep(self.step_s)
            self.i += 1
            if self.progress_file:
                with open(self.progress_file + ".tmp", "w") as f:
                    f.write(str(self.i))
                os.replace(self.progress_file + ".tmp", self.progress_file)
            _log(self.log, f"step {self.i}")
        _log(self.log, f"done i={self.i}")
        return self.i

    def checkpoint(self, *args: Any, **kwargs: Any):
        _log(self.log, f"checkpoint i={self.i}")
        return super().checkpoint(*args, **kwargs)


def _wait_for_line(path: Path, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if re.search(pattern, text, re.M):
            return text
        time.sleep(0.2)
    pytest.fail(f"no line matching {pattern!r} in {path} after {timeout:.0f} s")


# --- tests -------------------------------------------------------------------------------------------


def test_sbatch_wrap_runs(slurm_cluster: SlurmCluster) -> None:
    job_id = slurm_cluster.sbatch("--wrap", "sleep 1; hostname")
    info = slurm_cluster.wait_state(job_id, {"COMPLETED"}, SUBMIT_TIMEOUT_S)
    assert info["ExitCode"] == "0:0"
    out = (slurm_cluster.folder / f"{job_id}.out").read_text().strip()
    assert out == info["BatchHost"]


def test_scontrol_requeue_runs_the_job_again(slurm_cluster: SlurmCluster) -> None:
    log = slurm_cluster.folder / "starts.log"
    script = slurm_cluster.folder / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"log={log}\n"
        'echo "start restart=${SLURM_RESTART_COUNT:-0}" >> $log\n'
        "trap 'echo got TERM >> $log; exit 143' TERM\n"
        "trap 'echo got USR2 >> $log' USR2\n"
        "for i in $(seq 10); do sleep 0.5 & wait $!; done\n"
        'echo "end restart=${SLURM_RESTART_COUNT:-0}" >> $log\n'
    )
    job_id = slurm_cluster.sbatch("--signal=USR2@90", str(script))
    _wait_for_line(log, r"^start restart=0$", SUBMIT_TIMEOUT_S)
    _run("scontrol", "requeue", job_id)
    info = slurm_cluster.wait_state(job_id, {"COMPLETED"}, REQUEUE_TIMEOUT_S)
    lines = log.read_text().splitlines()
    # SIGTERM (not the --signal USR2) reaches the job; it runs again from the top, told so.
    assert lines == ["start restart=0", "got TERM", "start restart=1", "end restart=1"], lines
    assert info["Restarts"] == "1"
    assert info["ExitCode"] == "0:0"


def test_submitit_round_trip(slurm_cluster: SlurmCluster) -> None:
    job = slurm_cluster.executor().submit(where_am_i, 2, 3)
    result = slurm_cluster.wait_result(job, SUBMIT_TIMEOUT_S)
    assert result == {
        "sum": 5,
        "job_id": job.job_id,
        "partition": slurm_cluster.partition,
        "executor": "slurm",
    }


def test_submitit_checkpointable_continues_after_interrupt(slurm_cluster: SlurmCluster) -> None:
    """USR2 (what ``--signal=USR2@90`` sends before a time-out): checkpoint, requeue, continue."""
    log = slurm_cluster.folder / "counter.log"
    job = slurm_cluster.executor().submit(Counter(str(log), n=16, step_s=0.5))
    _wait_for_line(log, r"^step 3$", SUBMIT_TIMEOUT_S)
    job._interrupt()  # scancel --signal SIGTERM, then --signal USR2, as a preemption does
    assert slurm_cluster.wait_result(job, REQUEUE_TIMEOUT_S) == 16
    text = log.read_text()
    starts = re.findall(r"^start i=(\d+) restart=(\d+)$", text, re.M)
    ckpt = re.findall(r"^checkpoint i=(\d+)$", text, re.M)
    assert len(ckpt) == 1 and int(ckpt[0]) >= 3, text
    # the second run starts where checkpoint() left it, not at 0
    assert starts == [("0", "0"), (ckpt[0], "1")], text
    assert slurm_cluster.job_info(job.job_id).get("Restarts") == "1"
    stderr = job.paths.stderr.read_text()
    assert "Bypassing signal SIGTERM" in stderr and "Caught signal SIGUSR2" in stderr, stderr[-3000:]


def test_submitit_job_survives_scontrol_requeue(slurm_cluster: SlurmCluster) -> None:
    """A plain ``scontrol requeue``: SIGTERM, which submitit ignores, so no checkpoint(); the job
    is killed after KillWait and restarted from its pickle, and resumes from its progress file."""
    log = slurm_cluster.folder / "counter.log"
    progress = slurm_cluster.folder / "progress"
    # 20 s of work: it must outlast KillWait (10 s), or the first run finishes before it is killed
    job = slurm_cluster.executor().submit(Counter(str(log), 40, 0.5, progress_file=str(progress)))
    _wait_for_line(log, r"^step 3$", SUBMIT_TIMEOUT_S)
    _run("scontrol", "requeue", job.job_id)
    _wait_for_line(log, r"^start i=\d+ restart=1$", REQUEUE_TIMEOUT_S)
    assert slurm_cluster.wait_result(job, REQUEUE_TIMEOUT_S) == 40
    text = log.read_text()
    starts = re.findall(r"^start i=(\d+) restart=(\d+)$", text, re.M)
    assert "checkpoint" not in text, text
    assert len(starts) == 2 and starts[0] == ("0", "0") and starts[1][1] == "1", text
    assert int(starts[1][0]) >= 3, text  # resumed from disk, not from 0
    assert slurm_cluster.job_info(job.job_id).get("Restarts") == "1"
    assert "Bypassing signal SIGTERM" in job.paths.stderr.read_text()


# --- the harness's own jobs ------------------------------------------------------------------------


def test_a_harness_run_through_slurm_survives_scontrol_requeue(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """`--launcher slurm`: the job is requeued mid-run by Slurm itself (SIGTERM, killed after KillWait, started
    again), takes the run directory over from its dead first process, resumes from the latest checkpoint, and
    ends with the metrics of an uninterrupted run."""
    from test_launch import curve, nano_lora

    from harness.launch import Launcher, SlurmOptions
    from harness.runstore import RunDir

    # Long enough that the run is still training when Slurm kills it, KillWait (10 s) after the requeue.
    long = ("training.max_steps=3000", "training.eval_every=300", "training.checkpoint_steps=[300,1500,3000]")
    straight, = Launcher("local", str(tmp_path / "local"), say=lambda m: None).launch([nano_lora(*long)])
    assert straight.returncode == 0
    options = SlurmOptions(partition=slurm_cluster.partition, cpus_per_run=2, mem_gb=4, time_min=60)
    item, = Launcher("slurm", str(tmp_path / "slurm"), slurm=options, say=lambda m: None).launch([nano_lora(*long)])
    deadline = time.monotonic() + 300
    while not list((tmp_path / "slurm").glob("code/lora/*/checkpoints/step-300")):
        assert time.monotonic() < deadline, f"job {item.job_id} never reached step 300"
        time.sleep(0.5)
    _run("scontrol", "requeue", item.job_id)
    result = slurm_cluster.wait_result(item.job, timeout=600)
    run = RunDir(Path(result["run_dir"]))
    status = run.status()
    assert status["state"] == "completed" and status["attempts"] == 2 and status["job_id"] == item.job_id
    assert slurm_cluster.job_info(item.job_id).get("Restarts", "1") == "1"
    assert curve(run) == curve(RunDir(straight.run_dir))


def test_reproduce_through_slurm_matches_the_local_launcher(slurm_partition: str, tmp_path: Path) -> None:
    """`harness reproduce --table 2 --scale nano --launcher slurm` on the local cluster: the report equals the one
    from `--launcher local`."""
    import json

    from harness.cli import main

    reports = {}
    for launcher in ("slurm", "local"):
        results = tmp_path / launcher
        extra = ["--partition", slurm_partition, "--cpus-per-run", "1", "--mem-gb", "4", "--time-min", "60"] \
            if launcher == "slurm" else []
        assert main(["reproduce", "--table", "2", "--scale", "nano", "--launcher", launcher, "--results-dir",
                     str(results), "--out", str(results / "report"), *extra, "eval.benchmarks=false"]) == 0
        reports[launcher] = ((results / "report" / "table2.md").read_text(),
                             json.loads((results / "report" / "claims.json").read_text()))
    assert reports["slurm"] == reports["local"]
