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

A run killed hard (SIGKILL, OOM killer, a lost node) cannot write its own end: its status.json
still says ``running``. Every status therefore records who wrote it (``host``, ``pid`` and the
process's ``pid_create_time``), and :meth:`RunDir.state` tells a live run from a dead one.

A resumed run appends rows with a higher ``attempt``; :func:`latest_metrics` keeps, for each
``(step, phase, metric)``, only the rows of the latest attempt that wrote it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import psutil

from harness.io import append_jsonl, atomic_write_json, read_json, read_jsonl, repair_jsonl
from harness.paths import results_dir

RUNNING, COMPLETED, FAILED = "running", "completed", "failed"
INTERRUPTED = "interrupted"  # status says running, but the process that wrote it is gone
NEW = "new"  # no status.json yet
# Two readings of one process's start time differ by clock-tick rounding only; a reused pid's
# process started later than the recorded one by far more than this.
_CREATE_TIME_TOLERANCE_S = 1.0


def hostname() -> str:
    return socket.gethostname()


def _own_create_time() -> float | None:
    try:
        return psutil.Process().create_time()
    except (psutil.Error, OSError):
        return None


def this_process() -> dict:
    """Who writes: ``host``, ``pid`` and the process's ``pid_create_time`` (what tells a live writer from a dead
    one, :func:`pid_alive`)."""
    return {"host": hostname(), "pid": os.getpid(), "pid_create_time": _own_create_time()}


def pid_alive(pid: int, create_time: float | None = None) -> bool:
    """Whether process ``pid`` exists on this host and is the one that started at ``create_time``.

    A zombie (killed, not reaped yet) counts as dead; with ``create_time`` given, a process that
    started at another time (the pid was reused after the run's process died) counts as dead too.
    """
    try:
        if not psutil.pid_exists(int(pid)):
            return False
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if create_time is not None and abs(proc.create_time() - float(create_time)) > _CREATE_TIME_TOLERANCE_S:
            return False
        return True
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # it exists, owned by someone else; its start time cannot be read
        return create_time is None
    except (psutil.Error, OSError, TypeError, ValueError):
        return False


# A claim from another host is taken to be dead once its heartbeat is older than this (its processes cannot be
# checked from here); the owner refreshes the heartbeat every HEARTBEAT_S.
CLAIM_STALE_AFTER_S = 600.0
HEARTBEAT_S = 60.0


class RunOwnedError(RuntimeError):
    """Another live process owns the run directory; the message names it (host, pid, job) and what to do."""


def job_id() -> str | None:
    """The id of the job this process runs in: the launcher's (``HARNESS_JOB_ID``, set by a submitit job), else
    Slurm's (array job_task, else job), else None."""
    if os.environ.get("HARNESS_JOB_ID"):
        return os.environ["HARNESS_JOB_ID"]
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def claim_is_live(owner: dict, now: float | None = None) -> bool:
    """Whether the process that wrote ``owner`` (a claim) still owns its run: on this host, that process is alive
    (pid and start time); on another, its heartbeat is younger than :data:`CLAIM_STALE_AFTER_S`."""
    if owner.get("host") == hostname():
        return pid_alive(owner.get("pid", -1), owner.get("pid_create_time"))
    heartbeat = owner.get("heartbeat") or owner.get("claimed") or 0
    return (now if now is not None else time.time()) - float(heartbeat) < CLAIM_STALE_AFTER_S


def describe_owner(owner: dict) -> str:
    job = f", job {owner['job_id']}" if owner.get("job_id") else ""
    ago = time.time() - float(owner.get("heartbeat") or owner.get("claimed") or time.time())
    return f"{owner.get('host')} pid {owner.get('pid')}{job}, last heard {ago:.0f} s ago"


def latest_metrics(rows: Iterable[dict]) -> list[dict]:
    """The rows that count after resumes: for each ``(step, phase, metric)``, the rows of the latest
    ``attempt`` that wrote one (a row without ``attempt`` counts as attempt 1), in file order.

    Every row of that attempt is kept, so a phase timed several times at one step within an
    attempt (e.g. ``load_model`` for two models) still sums; an earlier attempt's rows for a key
    that a later attempt wrote again are dropped. Rows for keys only an earlier attempt wrote (a
    benchmark scored before the crash and skipped on resume) are kept.
    """
    rows = list(rows)

    def key(row: dict) -> tuple:
        return row.get("step"), row.get("phase"), row.get("metric")

    latest: dict[tuple, int] = {}
    for row in rows:
        k, attempt = key(row), row.get("attempt") or 1
        latest[k] = max(latest.get(k, attempt), attempt)
    return [row for row in rows if (row.get("attempt") or 1) == latest[key(row)]]


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

    def state(self) -> str:
        """The run's state as seen from this host, where the raw ``status()["state"]`` may be stale:

        * ``"new"`` — no status.json (nothing started, or killed before its first status);
        * ``"completed"`` / ``"failed"`` — as recorded;
        * ``"running"`` — recorded as running by a process on this host that is still alive (the same
          pid *and* the same process start time, so a reused pid does not count);
        * ``"interrupted"`` — recorded as running on this host, but that process is gone (SIGKILL,
          OOM, power loss); the run resumes from its latest checkpoint when started again;
        * ``"running (on HOST)"`` — recorded as running on another host, whose processes cannot be
          checked from here: it may be alive or dead. ``state().startswith("running")`` covers both
          running forms.

        A status written before hosts were recorded is checked against this host's processes by pid.
        """
        status = self.status()
        if status is None:
            return NEW
        state = status.get("state", "unknown")
        if state != RUNNING:
            return state
        host = status.get("host")
        if host is not None and host != hostname():
            return f"{RUNNING} (on {host})"
        pid = status.get("pid")
        if pid is None or not pid_alive(pid, status.get("pid_create_time")):
            return INTERRUPTED
        return RUNNING

    # --- ownership -------------------------------------------------------------------------------
    @property
    def owner_path(self) -> Path:
        """The claim file: beside the run directory, so ``--force`` can empty the directory and keep its claim."""
        return self.path.parent / f".{self.path.name}.owner"

    def owner(self) -> dict | None:
        """The claim on this run (host, pid, job id, heartbeat), or None when nobody holds one."""
        try:
            return json.loads(self.owner_path.read_text())
        except (OSError, ValueError):
            return None

    @contextlib.contextmanager
    def claim(self, say=print) -> Iterator[dict]:
        """Own this run directory while inside: one process trains into it at a time.

        The claim is a file created exclusively (``O_CREAT | O_EXCL``), recording host, pid, its start time and
        the scheduler's job id, with a heartbeat refreshed every :data:`HEARTBEAT_S` by a daemon thread. A live
        claim raises :class:`RunOwnedError` naming its owner; a dead one (its process gone on this host, or its
        heartbeat stale from another) is taken over, with a message. Released on the way out."""
        record = {**this_process(), "job_id": job_id(), "claimed": time.time(), "heartbeat": time.time()}
        self.owner_path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a stale claim removed by a rival taker in between: look again
            try:
                fd = os.open(self.owner_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self.owner()
                if owner is None:  # torn or removed meanwhile: a claim being written or released
                    time.sleep(0.2)
                    owner = self.owner()
                if owner is not None and claim_is_live(owner):
                    raise RunOwnedError(
                        f"{self.path} is being run by {describe_owner(owner)}; wait for it to end "
                        f"(`harness runs` shows it), or stop that process. A claim whose owner died is taken "
                        f"over by the next run") from None
                if owner is not None:
                    say(f"taking over the run from {describe_owner(owner)}: that process is gone")
                with contextlib.suppress(FileNotFoundError):
                    self.owner_path.unlink()
                continue
            with os.fdopen(fd, "w") as handle:
                json.dump(record, handle)
            break
        else:
            raise RunOwnedError(f"{self.path}: could not claim the run (its claim file kept changing); try again")
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                if (self.owner() or {}).get("pid") != record["pid"]:
                    return  # taken over (we were thought dead): leave the claim to its new owner
                atomic_write_json(self.owner_path, {**record, "heartbeat": time.time()})

        thread = threading.Thread(target=beat, name=f"claim {self.path.name}", daemon=True)
        thread.start()
        try:
            yield record
        finally:
            stop.set()
            thread.join(timeout=5)
            owner = self.owner()
            if owner is not None and owner.get("pid") == record["pid"] and owner.get("host") == record["host"]:
                with contextlib.suppress(FileNotFoundError):
                    self.owner_path.unlink()

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
        job = {k: v for k, v in (("job_id", job_id()), ("log", os.environ.get("HARNESS_JOB_LOG"))) if v}
        self.set_status(RUNNING, attempts=attempts, started=time.time(), **job)

    def set_status(self, state: str, **fields: Any) -> None:
        """Merge ``fields`` into status.json with ``state``, stamped with who wrote it and when:
        ``updated``, ``host``, ``pid`` and ``pid_create_time`` (what :meth:`state` checks)."""
        status = {**(self.status() or {}), **fields, "state": state, "updated": time.time(), **this_process()}
        atomic_write_json(self.status_path, status)

    def complete(self, **fields: Any) -> None:
        self.set_status(COMPLETED, finished=time.time(), **fields)

    def fail(self, error: str) -> None:
        self.set_status(FAILED, finished=time.time(), error=error)

    # --- metrics -------------------------------------------------------------------------------
    def log(self, rows: list[dict]) -> None:
        append_jsonl(self.metrics_path, rows)

    def metrics(self) -> list[dict]:
        """Every row, all attempts (see :meth:`latest_metrics` for the rows that count)."""
        return list(read_jsonl(self.metrics_path))

    def latest_metrics(self) -> list[dict]:
        """:func:`latest_metrics` of this run's rows: the latest attempt's per (step, phase, metric)."""
        return latest_metrics(self.metrics())


def find_runs(root: str | Path | None = None) -> list[RunDir]:
    """Every run directory under ``root`` (those holding a config.json)."""
    root = Path(root) if root is not None else results_dir()
    return sorted(RunDir(p.parent) for p in root.glob("*/*/*/config.json")) if root.exists() else []
