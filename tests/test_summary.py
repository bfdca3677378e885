"""The end-of-run summary and `harness runs` / `harness show`, on run directories written through RunDir."""

import argparse
import json

import pytest

from harness.config import ConfigError
from harness.runstore import RunDir, latest_metrics
from harness.runs_cli import add_parsers, list_runs, resolve_run_dir
from harness.summary import format_summary, summarize


def _config(method="lora", suite="code", seed=0, max_steps=20):
    return {"method": method, "suite": suite, "scale": "nano", "seed": seed,
            "training": {"max_steps": max_steps}}


def _eval(step, r1, r2, rl, loss, bpb=None, best=None):
    rows = [{"step": step, "phase": "eval", "metric": m, "value": v}
            for m, v in (("rouge1", r1), ("rouge2", r2), ("rougeL", rl), ("eval_loss", loss))]
    if bpb is not None:
        rows.append({"step": step, "phase": "eval", "metric": "eval_bits_per_byte", "value": bpb})
    if best is not None:
        rows.append({"step": step, "phase": "eval", "metric": "best_step", "value": best})
    return rows


def _phase(name, self_s, total_s, *, step=0, parent=None, end=0.0, rss=None, gpu_util=None, samples=1):
    rows = [{"step": step, "phase": name, "metric": "phase_seconds", "value": self_s},
            {"step": step, "phase": name, "metric": "phase_total_seconds", "value": total_s}]
    if rss is not None:
        rows.append({"step": step, "phase": name, "metric": "rss_peak_mb", "value": rss})
        rows.append({"step": step, "phase": name, "metric": "rss_mean_mb", "value": rss - 10, "samples": samples})
    if gpu_util is not None:
        rows.append({"step": step, "phase": name, "metric": "gpu_util_mean_pct", "value": gpu_util,
                     "samples": samples})
    return [{**r, "parent": parent, "time": end} for r in rows]


def _log(run, rows, attempt):
    run.log([{"time": 0.0, **r, "attempt": attempt} for r in rows])


def _benchmark(step, name, score, n, bits_per_byte=None):
    rows = [{"step": step, "phase": "benchmark", "metric": f"{name}/score", "value": score, "stderr": 0.01, "n": n,
             "benchmark": {"name": name, "metric": "pass@1" if name == "humaneval" else "acc", "score": score,
                           "n_items": n}}]
    if bits_per_byte is not None:
        rows.append({"step": step, "phase": "benchmark", "metric": f"{name}/bits_per_byte", "value": bits_per_byte,
                     "stderr": 0.05, "n": n})
    return rows


def _unavailable(metric, reason):
    return {"step": 0, "phase": "profiler", "metric": metric, "value": None, "parent": None, "unavailable": reason}


@pytest.fixture
def resumed_run(tmp_path):
    """A lora run killed after step 10's eval, resumed from its step-10 checkpoint, then completed."""
    run = RunDir(tmp_path / "results" / "code" / "lora" / "s0-abc")
    run.create(_config(), {"attempt": 1})
    _log(run, [_unavailable("cuda_max_allocated_mb", "no CUDA device"),
               *_phase("build_models", 3.0, 3.0, parent="prepare", end=4.0, rss=900.0),
               *_phase("load_model", 1.0, 1.0, parent="prepare", end=5.0, rss=950.0),
               *_phase("prepare", 2.0, 6.0, end=6.0, rss=1000.0),
               {"step": 0, "phase": "setup", "metric": "trainable_params", "value": 1_234_567},
               {"step": 0, "phase": "setup", "metric": "total_params", "value": 124_000_000},
               {"step": 0, "phase": "setup", "metric": "trainable_percent", "value": 0.9956},
               *_eval(0, 0.10, 0.02, 0.09, 3.0, 1.50, best=0),
               {"step": 1, "phase": "train", "metric": "loss", "value": 2.9},
               *_eval(10, 0.30, 0.10, 0.28, 2.0, 1.10, best=10),
               *_eval(20, 0.99, 0.99, 0.99, 0.1, 0.10, best=20),  # killed before this step's checkpoint
               {"step": 20, "phase": "train", "metric": "loss", "value": 0.5}], attempt=1)
    run.create(_config(), {"attempt": 2})  # the resume: attempt 2, a fresh "started"
    _log(run, [_unavailable("cuda_max_allocated_mb", "no CUDA device"),
               *_phase("load_model", 1.5, 1.5, parent="prepare", end=2.0, rss=980.0),
               *_phase("prepare", 0.5, 2.0, end=2.0, rss=990.0),
               {"step": 20, "phase": "train", "metric": "loss", "value": 1.2},
               *_eval(20, 0.25, 0.08, 0.24, 2.2, 1.20, best=10),  # re-done: this one counts
               *_phase("training", 5.0, 5.0, step=10, end=8.0, rss=1500.0, gpu_util=50.0, samples=3),
               *_phase("benchmarks", 2.0, 2.0, step=10, end=10.0, rss=1400.0, gpu_util=80.0, samples=1),
               *_phase("benchmarks", 2.5, 2.5, step=20, end=13.0, rss=1600.0, gpu_util=20.0, samples=1),
               *_benchmark(10, "humaneval", 0.125, 164, bits_per_byte=2.5), *_benchmark(10, "mbpp", 0.2, 500),
               *_benchmark(20, "humaneval", 0.0625, 164, bits_per_byte=2.25), *_benchmark(20, "mbpp", 0.15, 500)],
         attempt=2)
    run.complete(best_step=10)
    status = run.status()
    status["finished"] = status["started"] + 20.0  # a known wall time
    run.status_path.write_text(json.dumps(status))
    return run


def test_latest_metrics_keeps_the_latest_attempt_per_key():
    rows = [{"step": 1, "phase": "eval", "metric": "rouge1", "value": 0.9, "attempt": 1},
            {"step": 0, "phase": "load_model", "metric": "phase_seconds", "value": 1.0, "attempt": 1},
            {"step": 1, "phase": "eval", "metric": "rouge1", "value": 0.2, "attempt": 2},
            {"step": 0, "phase": "load_model", "metric": "phase_seconds", "value": 2.0, "attempt": 2},
            {"step": 0, "phase": "load_model", "metric": "phase_seconds", "value": 3.0, "attempt": 2},
            {"step": 5, "phase": "benchmark", "metric": "x/score", "value": 0.5, "attempt": 1},
            {"step": 2, "phase": "train", "metric": "loss", "value": 1.0}]  # no attempt: attempt 1
    kept = latest_metrics(rows)
    assert [r["value"] for r in kept] == [0.2, 2.0, 3.0, 0.5, 1.0]


def test_summary_numbers(resumed_run):
    s = summarize(resumed_run)
    assert (s["method"], s["suite"], s["scale"], s["seed"]) == ("lora", "code", "nano", 0)
    assert s["state"] == "completed" and s["attempts"] == 2 and s["run_id"] == "s0-abc"
    assert s["last_step"] == 20 and s["best_step"] == 10
    ev = s["eval"]
    assert ev["steps"] == [0, 10, 20]
    assert ev["first"] == {"step": 0, "rouge1": 0.10, "rouge2": 0.02, "rougeL": 0.09, "eval_loss": 3.0,
                           "eval_bits_per_byte": 1.50}
    assert ev["best"]["step"] == 10 and ev["best"]["rouge1"] == 0.30 and ev["best"]["eval_bits_per_byte"] == 1.10
    assert ev["last"]["rouge1"] == 0.25 and ev["last"]["eval_loss"] == 2.2  # attempt 2's, not the killed 0.99
    assert s["params"] == {"trainable": 1_234_567, "total": 124_000_000, "percent": 0.9956}

    bench = s["benchmarks"]
    assert bench["names"] == ["humaneval", "mbpp"]
    assert [r["step"] for r in bench["rows"]] == [10, 20]
    assert bench["rows"][0]["scores"]["humaneval"] == {"score": 0.125, "stderr": 0.01, "n": 164, "metric": "pass@1",
                                                       "bits_per_byte": 2.5, "bits_per_byte_stderr": 0.05}
    assert bench["rows"][1]["scores"]["mbpp"] == {"score": 0.15, "stderr": 0.01, "n": 500, "metric": "acc"}

    phases = {p["name"]: p for p in s["phases"]}
    # pipeline order, nested phases right after their parent (build_models from attempt 1 first)
    assert [(p["name"], p["depth"]) for p in s["phases"]] == [
        ("prepare", 0), ("build_models", 1), ("load_model", 1), ("training", 0), ("benchmarks", 0)]
    assert phases["load_model"]["self_seconds"] == 1.5  # attempt 2's
    assert phases["prepare"]["self_seconds"] == 0.5 and phases["prepare"]["total_seconds"] == 2.0
    assert phases["build_models"]["self_seconds"] == 3.0  # only attempt 1 built: kept
    assert phases["benchmarks"]["self_seconds"] == 4.5 and phases["benchmarks"]["count"] == 2  # summed over steps
    assert phases["benchmarks"]["peaks"]["rss_peak_mb"] == 1600.0  # max over steps
    assert phases["benchmarks"]["peaks"]["gpu_util_mean_pct"] == pytest.approx(50.0)  # sample-weighted mean
    assert phases["load_model"]["depth"] == 1 and phases["load_model"]["parent"] == "prepare"
    assert s["phase_seconds_sum"] == pytest.approx(3.0 + 1.5 + 0.5 + 5.0 + 4.5)
    assert s["wall_seconds"] == pytest.approx(20.0)
    assert s["other_seconds"] == pytest.approx(20.0 - 14.5)
    assert s["unavailable"] == {"cuda_max_allocated_mb": "no CUDA device"}
    json.dumps(s)  # serialisable as is


def test_summary_text(resumed_run):
    text = format_summary(summarize(resumed_run))
    lines = text.splitlines()
    assert len(lines) <= 45
    assert "lora on code" in text and "seed 0" in text and "completed, 2 attempts" in text
    assert "last step 20 of 20" in text
    assert "1.23M trainable of 124.00M (0.996%)" in text
    first = next(line for line in lines if line.strip().startswith("first"))
    assert "0.1000" in first and "1.5000" in first
    best = next(line for line in lines if line.strip().startswith("best"))
    assert best.split()[1] == "10" and "0.3000" in best
    last = next(line for line in lines if line.strip().startswith("last "))
    assert "0.2500" in last and "0.9900" not in text
    assert "humaneval" in text and "0.125±0.010" in text and "humaneval 164" in text and "10 (best)" in text
    bits = lines.index(next(line for line in lines if "bits per byte of the reference" in line))
    assert "2.500±0.050" in lines[bits + 2] and "mbpp" not in lines[bits + 1]  # only benchmarks that have it
    benchmarks = next(line for line in lines if line.strip().startswith("benchmarks x2"))
    assert benchmarks.split()[2:5] == ["4.5", "22%", "1600"]
    assert "other (in no phase)" in text and "5.5" in text
    assert "CUDA alloc: n/a (no CUDA device)" in text
    assert "wall    20.0s" in text


def test_eval_only_run_with_only_step_0(tmp_path):
    run = RunDir(tmp_path / "code" / "vanilla" / "s0-x")
    run.create(_config(method="vanilla"), {})
    _log(run, [*_eval(0, 0.2, 0.05, 0.18, 2.5), *_phase("validation", 4.0, 4.0, end=4.0)], attempt=1)
    run.complete(best_step=None)
    s = summarize(run)
    assert s["eval"]["first"] == s["eval"]["best"] == s["eval"]["last"]
    assert s["eval"]["best"]["eval_bits_per_byte"] is None  # an older run: absent, not a crash
    assert s["best_step"] == 0 and s["params"] is None and s["benchmarks"]["rows"] == []
    text = format_summary(s)
    assert "first/best/last" in text and "benchmarks  none recorded" in text


def test_empty_and_failed_runs_render(tmp_path):
    run = RunDir(tmp_path / "code" / "lora" / "s0-y")
    run.create(_config(), {})
    run.fail("RuntimeError: boom\nTraceback ...")
    s = summarize(run)
    assert s["state"] == "failed" and s["eval"] is None and s["phases"] == []
    text = format_summary(s)
    assert "error   RuntimeError: boom" in text and "validation  none recorded" in text


def test_unavailable_in_one_phase_shows_na_with_reason(tmp_path):
    run = RunDir(tmp_path / "code" / "lora" / "s0-z")
    run.create(_config(), {})
    _log(run, [*_phase("training", 2.0, 2.0, end=2.0, gpu_util=40.0),
               *_phase("benchmarks", 1.0, 1.0, end=3.0),
               {"step": 0, "phase": "benchmarks", "metric": "gpu_util_mean_pct", "value": None,
                "unavailable": "MIG: no utilisation", "time": 3.0}], attempt=1)
    run.complete()
    s = summarize(run)
    assert {p["name"]: p["unavailable"] for p in s["phases"]}["benchmarks"] == {
        "gpu_util_mean_pct": "MIG: no utilisation"}
    text = format_summary(s)
    assert "n/a (MIG: no utilisation)" in text and "40" in text


def test_interrupted_run_summary(tmp_path):
    run = RunDir(tmp_path / "code" / "lora" / "s0-k")
    run.create(_config(), {})
    _log(run, [*_phase("training", 2.0, 2.0, end=7.0)], attempt=1)
    status = run.status()
    status["pid"], status["pid_create_time"] = 2**22 + 12345, 1.0  # a process that does not exist
    run.status_path.write_text(json.dumps(status))
    s = summarize(run)
    assert s["state"] == "interrupted" and s["wall_seconds"] is None and s["elapsed_seconds"] == 7.0
    assert "until its last row" in format_summary(s)


# --- runs / show -------------------------------------------------------------------------------------

def _parse(argv):
    parser = argparse.ArgumentParser(prog="harness")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_runs_lists_every_run(resumed_run, tmp_path, capsys):
    other = RunDir(tmp_path / "results" / "math" / "vanilla" / "s1-q")
    other.create(_config(method="vanilla", suite="math", seed=1), {})  # still running, in this process
    root = tmp_path / "results"
    rows = {r["run_id"]: r for r in list_runs(root)}
    assert rows["s0-abc"]["state"] == "completed" and rows["s0-abc"]["last_step"] == 20
    assert rows["s0-abc"]["best_rouge1"] == 0.30
    assert rows["s1-q"]["state"] == "running" and rows["s1-q"]["best_rouge1"] is None

    args = _parse(["runs", "--results-dir", str(root)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "s0-abc" in out and "completed" in out and "20/20" in out and "0.3000" in out and "math" in out
    args = _parse(["runs", "--results-dir", str(root), "--json"])
    assert args.func(args) == 0
    assert {r["run_id"] for r in json.loads(capsys.readouterr().out)} == {"s0-abc", "s1-q"}

    args = _parse(["runs", "--results-dir", str(tmp_path / "nowhere")])
    with pytest.raises(ConfigError, match="does not exist"):
        args.func(args)


def test_show_prints_the_summary_or_json(resumed_run, capsys):
    args = _parse(["show", str(resumed_run.path)])
    assert args.func(args) == 0
    assert "lora on code" in capsys.readouterr().out
    args = _parse(["show", str(resumed_run.path), "--json"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["best_step"] == 10
    # a run id under the results root works too
    assert resolve_run_dir("s0-abc", resumed_run.path.parents[2]) == resumed_run
    assert resolve_run_dir("lora/s0-abc", resumed_run.path.parents[2]) == resumed_run


def test_show_bad_paths_are_config_errors(resumed_run, tmp_path):
    root = resumed_run.path.parents[2]
    with pytest.raises(ConfigError, match="no run directory"):
        resolve_run_dir(str(tmp_path / "missing"), root)
    with pytest.raises(ConfigError, match="not a run directory"):
        resolve_run_dir(str(root), root)
    with pytest.raises(ConfigError, match="is a file"):
        resolve_run_dir(str(resumed_run.config_path), root)
    args = _parse(["show", str(tmp_path / "missing")])
    with pytest.raises(ConfigError):
        args.func(args)


def test_show_through_the_cli_maps_errors_to_exit_2(tmp_path, capsys):
    from harness import cli

    parser = cli.build_parser()
    if "show" not in parser._subparsers._group_actions[0].choices:
        pytest.skip("runs/show are not wired into harness.cli yet")
    assert cli.main(["show", str(tmp_path / "missing")]) == 2
    assert "no run directory" in capsys.readouterr().err


def test_the_summary_says_where_validation_generations_are_degenerate(tmp_path):
    """A micro run whose generations are all blank lines has ROUGE 0 at every step: the summary says why."""
    run = RunDir(tmp_path / "code" / "lora" / "s0-x")
    run.create(_config(), {})
    shares = {0: 0.4, 10: 0.9, 20: 1.0, 30: 1.0, 40: 1.0, 50: 0.5}
    rows = [r for step, share in shares.items() for r in
            (*_eval(step, 0.0, 0.0, 0.0, 6.0 - step / 100),
             {"step": step, "phase": "eval", "metric": "degenerate_share", "value": share})]
    _log(run, rows, attempt=1)
    run.complete(best_step=0)
    s = summarize(run)
    assert s["eval"]["degenerate_steps"] == [10, 20, 30, 40]  # 0.5 is not more than half
    assert s["eval"]["degenerate_share"][20] == 1.0
    text = format_summary(s)
    assert "degenerate: at 4 of 6 evaluations (steps 10, 20, 30, 40)" in text and "(up to 100%)" in text
    clean = RunDir(tmp_path / "code" / "lora" / "s1-x")
    clean.create(_config(seed=1), {})
    _log(clean, [r for step in (0, 10) for r in (*_eval(step, 0.2, 0.1, 0.2, 2.0),
              {"step": step, "phase": "eval", "metric": "degenerate_share", "value": 0.1})], attempt=1)
    clean.complete(best_step=10)
    assert "degenerate" not in format_summary(summarize(clean))
