"""The sandbox against hostile programs: each must fail with a reason and touch nothing outside.

The whole battery runs once, in parallel with ordinary programs (module fixture); the tests then
check one property each. Full isolation needs root and Linux namespaces; where they are missing the
battery is skipped and only the degraded ``rlimits`` mode is tested.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from benchmarks.sandbox import ExecResult, Limits, isolation_report, run_many, run_program, sandbox_processes

SECRET = "sk-test-" + uuid.uuid4().hex[:12]
BATTERY_LIMITS = {"cpu_s": 1.0, "timeout_s": 4.0}
NORMAL = "import math\nassert math.gcd(12, 18) == 6\nprint('ok')\n"

namespaces = pytest.mark.skipif(isolation_report()["mode"] != "namespaces",
                                reason=f"full isolation unavailable: {isolation_report()['why_not_namespaces']}")


def _category(result: ExecResult) -> str:
    return result.reason.split(":", 1)[0]


def _wait_no_sandbox_processes(seconds: float = 3.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := sandbox_processes()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture(scope="module")
def battery(tmp_path_factory: pytest.TempPathFactory):
    """Run every hostile program next to ordinary ones; yield the verdicts and what to check after."""
    nonce = uuid.uuid4().hex[:10]
    tmp_dir = tmp_path_factory.mktemp("sentinel")  # under /tmp
    var_dir = Path(tempfile.mkdtemp(prefix="harness-sentinel-", dir="/var/tmp"))  # on the root filesystem
    sentinels = []
    for d in (tmp_dir, var_dir):
        d.chmod(0o777)  # even a world-writable directory must stay untouched
        f = d / "sentinel.txt"
        f.write_text("keep me")
        f.chmod(0o666)
        sentinels.append(f)
    private = var_dir / "private.key"
    private.write_text(SECRET)
    private.chmod(0o600)
    repo_file = Path(__file__).resolve().parent / f"evil-{nonce}.py"
    host_tmp_file = Path(tempfile.gettempdir()) / f"evil-{nonce}"

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    port = listener.getsockname()[1]

    os.environ["OPENAI_API_KEY"] = SECRET  # the harness's environment holds a secret...
    os.environ["HF_TOKEN"] = SECRET
    programs = {
        "infinite_loop": ("while True:\n    pass\n", {"cpu time limit", "timeout"}),
        "sleep_forever": ("import time\ntime.sleep(3600)\n", {"timeout"}),
        "fork_bomb": ("import os\nwhile True:\n    os.fork()\n", {"process limit"}),
        "fork_bomb_persistent": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n"
                                 "        pass\n", {"timeout", "cpu time limit"}),
        "thread_bomb": ("import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(60,), "
                        "daemon=True).start()\n", {"exception"}),  # RuntimeError: can't start new thread
        "memory_bomb": ("x = bytearray(8 << 30)\n", {"memory limit"}),
        "memory_growth": ("chunks = []\nwhile True:\n    chunks.append(bytes(50 << 20))\n", {"memory limit"}),
        "huge_output": ("while True:\n    print('x' * 10000)\n", {"output limit"}),
        "huge_file": ("with open('big', 'wb') as f:\n    f.write(b'0' * (100 << 20))\n", {"file size limit"}),
        "fill_disk": ("i = 0\nwhile True:\n    with open(f'f{i}', 'wb') as f:\n        f.write(b'0' * (8 << 20))\n"
                      "    i += 1\n", {"disk full"}),
        "delete_outside_tmp": (f"import os\nos.remove({str(sentinels[0])!r})\n", {"file not found", "permission denied"}),
        "delete_outside_root_fs": (f"import os\nos.remove({str(sentinels[1])!r})\n", {"permission denied"}),
        "overwrite_outside": (f"open({str(sentinels[1])!r}, 'w').write('gone')\n", {"permission denied"}),
        "write_outside_dir": (f"open({str(var_dir / 'evil.txt')!r}, 'w').write('x')\n", {"permission denied"}),
        "write_host_tmp": (f"open({str(host_tmp_file)!r}, 'w').write('x')\n", {"permission denied", "file not found"}),
        "write_parent_dir": ("open('../evil.txt', 'w').write('x')\n", {"permission denied"}),
        "write_repository": (f"open({str(repo_file)!r}, 'w').write('x')\n", {"permission denied", "file not found"}),
        "read_private_file": (f"print(open({str(private)!r}).read())\n", {"permission denied"}),
        "socket_to_harness": (f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n",
                              {"network unavailable"}),
        "socket_to_internet": ("import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=2)\n",
                               {"network unavailable"}),
        "dns_lookup": ("import socket\nsocket.getaddrinfo('example.com', 80)\n", {"network unavailable"}),
        "read_env_secret": ("import os\nprint(os.environ['OPENAI_API_KEY'])\n", {"exception"}),
        "scan_proc_for_secrets": (
            "import glob\nfound = []\nfor p in glob.glob('/proc/*/environ') + glob.glob('/proc/*/cmdline'):\n"
            "    try:\n        data = open(p, 'rb').read()\n    except OSError:\n        continue\n"
            "    if b'sk-test' in data:\n        found.append(data)\nprint(found)\nassert found, 'no secret found'\n",
            {"exception"}),
        "kill_parent": ("import os, time\nos.kill(os.getppid(), 9)\ntime.sleep(1)\n", {"permission denied"}),
        "kill_harness": (f"import os\nos.kill({os.getpid()}, 9)\n", {"exception", "permission denied"}),
        "kill_everything": ("import os\nos.kill(-1, 9)\n", {"exception", "permission denied"}),
        "read_stdin": ("x = input()\n", {"stdin closed"}),
        "escape_session": ("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
                           "raise SystemExit(3)\n", {"exit code 3"}),
    }
    names = list(programs)
    sources = [programs[n][0] for n in names] + [NORMAL] * 12
    start = time.monotonic()
    try:
        results = run_many(sources, workers=len(names) + 2, **BATTERY_LIMITS)
    finally:
        del os.environ["OPENAI_API_KEY"], os.environ["HF_TOKEN"]
    elapsed = time.monotonic() - start
    accepted = []
    try:
        while True:
            accepted.append(listener.accept())
    except BlockingIOError:
        pass
    listener.close()
    yield {
        "results": dict(zip(names, results)), "expected": {n: programs[n][1] for n in names},
        "normals": results[len(names):], "elapsed": elapsed, "accepted": accepted, "sentinels": sentinels,
        "absent": [var_dir / "evil.txt", host_tmp_file, repo_file, tmp_dir.parent / "evil.txt"],
    }
    shutil.rmtree(var_dir, ignore_errors=True)


HOSTILE = ["infinite_loop", "sleep_forever", "fork_bomb", "fork_bomb_persistent", "thread_bomb", "memory_bomb",
           "memory_growth", "huge_output", "huge_file", "fill_disk", "delete_outside_tmp", "delete_outside_root_fs",
           "overwrite_outside", "write_outside_dir", "write_host_tmp", "write_parent_dir", "write_repository",
           "read_private_file", "socket_to_harness", "socket_to_internet", "dns_lookup", "read_env_secret",
           "scan_proc_for_secrets", "kill_parent", "kill_harness", "kill_everything", "read_stdin", "escape_session"]


@namespaces
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_program_fails_with_its_reason(battery, name):
    result = battery["results"][name]
    assert not result.passed, f"{name} passed: {result}"
    assert _category(result) in battery["expected"][name], f"{name}: {result.reason!r}\n{result.stderr_tail[-800:]}"


@namespaces
def test_nothing_outside_the_working_directory_changed(battery):
    for sentinel in battery["sentinels"]:
        assert sentinel.read_text() == "keep me"
        assert stat.S_IMODE(sentinel.stat().st_mode) == 0o666
    for path in battery["absent"]:
        assert not path.exists(), f"a sandboxed program created {path}"


@namespaces
def test_no_connection_reached_the_harness(battery):
    assert battery["accepted"] == []


@namespaces
def test_secrets_stay_invisible(battery):
    for name, result in battery["results"].items():
        assert SECRET not in result.stdout_tail + result.stderr_tail, name
        assert "sk-test" not in result.stdout_tail, name


@namespaces
def test_ordinary_programs_are_not_slowed_by_hostile_neighbours(battery):
    normals = battery["normals"]
    assert all(r.passed for r in normals), [r.reason for r in normals if not r.passed]
    # hostile neighbours run up to the 4 s timeout; the ordinary ones must not wait for them
    assert max(r.seconds for r in normals) < 1.5, [r.seconds for r in normals]


@namespaces
def test_harness_survives_and_later_programs_pass_quickly(battery):
    os.kill(os.getpid(), 0)  # still here
    start = time.monotonic()
    result = run_program(NORMAL)
    assert result.passed and result.stdout_tail == "ok\n"
    assert time.monotonic() - start < 2.0


@namespaces
def test_no_processes_left_behind(battery):
    assert _wait_no_sandbox_processes() == []


@namespaces
def test_program_sees_a_fresh_private_working_directory():
    first, second = run_many([
        "import os\nopen('mine.txt', 'w').write('x')\nassert os.getcwd() == '/tmp/work'\n"
        "assert sorted(os.listdir('/tmp')) == ['work']\n",
        "import os\nassert os.listdir('.') == ['program.py'], os.listdir('.')\n",
    ], workers=1)
    assert first.passed, first.reason
    assert second.passed, second.reason


@namespaces
def test_program_runs_unprivileged_in_its_own_namespaces():
    result = run_program(
        "import os, socket\n"
        "assert os.getuid() != 0 and os.geteuid() != 0 and os.getgid() != 0\n"
        "assert os.getpid() == 2 and os.getppid() == 1\n"  # its own pid namespace, under its own init
        "assert [name for _, name in socket.if_nameindex()] == ['lo']\n"
        "assert sorted(os.listdir('/proc')).count('1') == 1 and len([p for p in os.listdir('/proc') if p.isdigit()]) == 2\n"
        "print(sorted(os.environ))\n")
    assert result.passed, result.stderr_tail
    assert result.stdout_tail.strip() == "['HOME', 'LANG', 'PATH', 'PYTHONDONTWRITEBYTECODE', 'TMPDIR']"


def test_verdicts_for_ordinary_outcomes():
    ok, failed, syntax, code, killed = run_many([
        "print('hello')",
        "assert 1 + 1 == 3, 'arithmetic'",
        "def f(:\n    pass",
        "raise SystemExit(7)",
        "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)",
    ])
    assert ok.passed and ok.reason == "passed" and ok.stdout_tail == "hello\n" and ok.returncode == 0
    assert not failed.passed and failed.reason == "exception: AssertionError: arithmetic"
    assert syntax.reason.startswith("syntax error: SyntaxError")
    assert code.reason == "exit code 7" and code.returncode == 7
    assert killed.reason == "killed by signal SIGSEGV" and killed.returncode == -11


def test_results_keep_input_order_and_run_in_parallel():
    start = time.monotonic()
    results = run_many([f"import time\ntime.sleep(0.5)\nprint({i})" for i in range(4)], workers=4)
    assert [r.stdout_tail for r in results] == [f"{i}\n" for i in range(4)]
    assert time.monotonic() - start < 1.9  # four half-second sleeps side by side, not one after another


def test_limits_are_validated():
    with pytest.raises(ValueError, match="cpu_s"):
        Limits(cpu_s=0)
    with pytest.raises(ValueError, match="nproc"):
        run_program("pass", nproc=1)
    with pytest.raises(TypeError, match="program 0"):
        run_many([b"print(1)"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="mode"):
        run_program("pass", mode="docker")


@namespaces
def test_isolation_report_states_what_was_achieved():
    report = isolation_report()
    for key in ("separate_uid", "network_namespace", "pid_namespace", "mount_namespace", "read_only_filesystem",
                "private_tmp"):
        assert report[key] is True, key
    assert report["network_guard"] == "kernel"


class TestRlimitsMode:
    """The degraded mode (no root or no namespaces) still limits, guards the network and cleans up."""

    def test_pass_fail_and_limits(self):
        ok, failed, loop, output = run_many(["print(1)", "assert False", "while True: pass",
                                             "while True: print('x' * 1000)"], mode="rlimits", cpu_s=1, timeout_s=4)
        assert ok.passed and ok.stdout_tail == "1\n"
        assert _category(failed) == "exception"
        assert _category(loop) in {"cpu time limit", "timeout"}
        assert _category(output) == "output limit"

    def test_network_guard_and_environment(self, monkeypatch):
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)
        net, env = run_many(["import socket\nsocket.socket()",
                             "import os\nassert 'OPENAI_API_KEY' not in os.environ\nprint(sorted(os.environ))"],
                            mode="rlimits")
        assert _category(net) == "network unavailable", net.reason
        assert env.passed, env.stderr_tail

    def test_working_directories_are_removed(self):
        before = set(Path(tempfile.gettempdir()).glob("harness-sandbox-*"))
        result = run_program("open('left.txt', 'w').write('x')", mode="rlimits")
        assert result.passed
        assert set(Path(tempfile.gettempdir()).glob("harness-sandbox-*")) == before
