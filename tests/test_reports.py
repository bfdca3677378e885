"""Reports from run directories made by the real engine (nano): Table 2 and Figure 2 beside the
paper's numbers, the claims, and the missing-run list with its exact commands."""

from __future__ import annotations

import json
import os

import pytest

from harness.cli import main
from harness.runstore import find_runs, latest_metrics

pytestmark = pytest.mark.usefixtures("data_cache")
QUICK = ["training.max_steps=4", "training.eval_every=2", "training.checkpoint_steps=[4]", "eval.benchmarks=false",
         "data.n_validation=8"]


def test_reproduce_table2_then_report_every_table_and_figure(nano_zoo, tmp_path, capsys):
    results, out = tmp_path / "results", tmp_path / "report"
    assert main(["reproduce", "--table", "2", "--scale", "nano", "--results-dir", str(results), "--out", str(out),
                 "--dry-run", *QUICK]) == 0
    plan = capsys.readouterr().out
    assert "5 runs needed, 0 completed, 5 to run" in plan and "--method pen2sword-no-fusion" in plan
    assert main(["reproduce", "--table", "2", "--scale", "nano", "--results-dir", str(results), "--out", str(out),
                 *QUICK]) == 0
    runs = find_runs(results)
    assert len(runs) == 5 and all(r.is_completed() for r in runs)
    # Each run had a process of its own: no run's memory or threads are what the runs before it left behind.
    pids = {run.status()["pid"] for run in runs}
    assert len(pids) == 5 and os.getpid() not in pids
    capsys.readouterr()
    assert main(["reproduce", "--table", "2", "--scale", "nano", "--results-dir", str(results), "--dry-run",
                 *QUICK]) == 0
    assert "5 completed, 0 to run" in capsys.readouterr().out  # completed runs are skipped

    # The table's cells are the runs' own last-evaluation ROUGE values, the paper's beside them.
    table = (out / "table2.csv").read_text().splitlines()
    header = table[0].split(",")
    for run in runs:
        method = run.path.parent.name
        rows = latest_metrics(run.metrics())
        last = max(r["step"] for r in rows if r["phase"] == "eval" and r["metric"] == "rouge1")
        rouge1 = next(r["value"] for r in rows if r["phase"] == "eval" and r["metric"] == "rouge1" and r["step"] == last)
        line = next(line.split(",") for line in table[1:] if line.split(",")[1] == method)
        assert float(line[header.index("ROUGE-1")]) == pytest.approx(rouge1)
    report = (out / "report.md").read_text()
    assert "| Pen2Sword |" in report and "[paper 0.745, Δ" in report and "[paper 0.394" in report
    assert "ablation order (ROUGE-1)" in report and (out / "table2.tex").exists()
    # What the table cost, from the runs' own statuses: their wall times summed, and how many ran on an idle machine.
    statuses = [run.status() for run in runs]
    minutes = round(sum(s["wall_seconds"] for s in statuses) / 60)
    idle = sum((s["profile"].get("cpu_share") or 0) >= 0.8 for s in statuses)
    behind = f"5 runs, {minutes} min of wall time in all ({idle} of them recorded an idle machine)"
    assert f"Behind it: {behind}." in report and f"- compute behind this report: {behind}" in report
    claims = json.loads((out / "claims.json").read_text())
    order = next(c for c in claims if c["source"] == "table2")
    assert order["claim"].startswith("ablation order (ROUGE-1)") and len(order["tests"]) == 6  # each link tested
    assert f"| table2 | {order['claim']} | {order['verdict']} |" in report
    assert_no_claim_holds_on_noise(claims)

    # Everything else renders too, with what is missing listed as exact commands.
    assert main(["report", "--scale", "nano", "--results-dir", str(results), "--out", str(out), *QUICK]) == 0
    report = (out / "report.md").read_text()
    for name in ("table2", "table5", "figure2a", "figure2b", "figure2c"):
        assert name in report
    assert (out / "figure2a.png").stat().st_size > 1000 and (out / "figure2c.pdf").exists()
    for name in ("figure3a", "figure3b", "figure4", "figure5", "figure6a", "figure6b", "figure7a", "figure7b"):
        assert (out / f"{name}.png").exists() and name in report
    assert (out / "table4.csv").exists() and (out / "table6.md").exists()
    assert "**HumanEval (↑)** (code suite" in report
    assert "- not runnable here: `harness run --method lora --suite code --scale nano --seed 0 model.target=vic" in report
    assert "- Pen2Sword, eval_loss: step 0" in report  # Figure 6 reads the Table 2 runs' eval loss
    assert "--method pen2sword --suite code --scale nano --seed 0 pen2sword.alpha=0.25" in report
    assert "`harness run --method lora --suite code --scale nano --seed 0 training.max_steps=4" in report
    assert "`harness run --method lora --suite math --scale nano --seed 0" in report
    assert "## Missing runs" in report and "| figure2a |" in report
    assert_no_claim_holds_on_noise(json.loads((out / "claims.json").read_text()))

    # A second seed of one row: the report averages it in by default (Table 2's own count is one seed), and lists
    # no other seed-1 run as missing.
    assert main(["run", "--method", "pen2sword", "--suite", "code", "--scale", "nano", "--seed", "1",
                 "--results-dir", str(results), "--no-progress", *QUICK]) == 0
    assert main(["report", "--only", "table2", "--scale", "nano", "--results-dir", str(results), "--out", str(out),
                 *QUICK]) == 0
    report = (out / "report.md").read_text()
    assert "runs: Pen2Sword 2, w/o DPF Selection 1" in report and "--seed 1" not in report


def assert_no_claim_holds_on_noise(claims: list[dict]) -> None:
    """No claim reads "holds" (or "does not hold") while an interval it rests on holds its boundary: on nano runs
    of 8 validation items, everything is noise, so every tested claim must come out undecided."""
    for claim in claims:
        for test in claim["tests"]:
            if claim["holds"] is True and test["side"] != "within":
                above = test["side"] == "above"
                assert test["low"] is not None and (test["low"] > test["bound"] if above else test["high"] < test["bound"])
            if claim["holds"] is True and test["side"] == "within":
                assert test["p_holm"] < 0.05
        if claim["tests"] and all(t["kind"] == "difference" for t in claim["tests"]):
            assert claim["holds"] is None, claim  # nano: 8 items, one seed: no difference is decided (step times may be)


@pytest.mark.slow  # twelve nano runs with benchmarks: about two minutes
def test_table1_from_runs_on_both_suites(nano_zoo, tmp_path, capsys):
    results, out = tmp_path / "results", tmp_path / "report"
    quick = ["training.max_steps=2", "training.eval_every=2", "training.checkpoint_steps=[2]", "data.n_validation=4",
             "eval.benchmark_limit=2", "eval.benchmark_max_new_tokens=8", "eval.max_new_tokens=8",
             "pseudo_labels.max_new_tokens=4"]
    assert main(["reproduce", "--table", "1", "--scale", "nano", "--results-dir", str(results), "--out", str(out),
                 *quick]) == 0
    # Vanilla, Instruction-tuned and LoRA on the code and math suites; Weak2Strong, ProxyTuning and Pen2Sword with
    # each of DPF's top three experts (A.2) on both: 6 + 18.
    assert "24 runs needed" in capsys.readouterr().out
    import csv

    rows = {r["row"]: r for r in csv.DictReader((out / "table1.csv").open())}
    assert len(rows) == 6  # a best-of row prints once, its cells from the expert that gave each
    # A cell is the run's benchmark score at its best step, ×100; Specialized averages the code and math runs.
    from reports.collect import run_values

    by_suite = {}
    for run in find_runs(results):
        values = run_values(run)
        if run.path.parent.name == "lora":
            by_suite[values["suite"]] = values
    assert float(rows["Vanilla Model + LoRA"]["Code Ability / HumanEval"]) == pytest.approx(
        100 * by_suite["code"]["benchmarks"]["humaneval"]["score"])
    physics = [100 * by_suite[s]["benchmarks"]["mmlu-physics"]["score"] for s in ("code", "math")]
    assert float(rows["Vanilla Model + LoRA"]["Specialized Adaptation / Physics"]) == pytest.approx(sum(physics) / 2)
    assert float(rows["Vanilla Model + LoRA"]["Math Ability / MATH (bits/byte)"]) == pytest.approx(
        by_suite["math"]["benchmarks"]["math-l5"]["bits_per_byte"])
    report = (out / "report.md").read_text()
    assert "[paper 19.9" in report and "Pen2Sword is best on Code Ability / HumanEval" in report


def test_a_run_that_fails_in_its_own_process_returns_its_exit_code(tmp_path):
    from harness.config import resolve_config
    from harness.engine.run import run_in_subprocess

    config = resolve_config(given={"method": "lora", "suite": "code", "scale": "nano"},
                            overrides=["model.target=no-such-model"])
    assert run_in_subprocess(config, tmp_path) != 0 and not find_runs(tmp_path)


def test_the_report_names_runs_whose_benchmarks_were_not_scored_in_their_precision(tmp_path):
    """Benchmarks ran partly in fp32 in bf16 runs before every model call of an evaluation took the run's
    precision (a peft model's generate, methods that do not train); a report built on such runs says so."""
    from harness.runstore import RunDir
    from reports.cli import _precision_warning, scored_in_another_precision

    def run_with(name: str, precision: str, recorded: str | None) -> RunDir:
        run = RunDir(tmp_path / "code" / name / "s0-x")
        run.create({"method": name, "suite": "code", "scale": "nano", "seed": 0,
                    "training": {"precision": precision}}, {})
        extra = {} if recorded is None else {"precision": recorded}
        run.log([{"step": 0, "phase": "benchmark", "metric": "humaneval/score", "value": 0.1, "time": 0.0,
                  "attempt": 1, "benchmark": {"name": "humaneval", "score": 0.1, "extra": extra}}])
        return run

    old_bf16, new_bf16 = run_with("vanilla", "bf16", None), run_with("lora", "bf16", "bf16")
    old_fp32 = run_with("fft", "fp32", None)  # fp32 either way
    assert scored_in_another_precision([old_bf16, new_bf16, old_fp32]) == [old_bf16]
    (line,) = _precision_warning([old_bf16, new_bf16, old_fp32])
    assert line.startswith("- benchmarks of 1 run record no precision") and "partly in fp32" in line
    assert "vanilla/s0-x" in line and "--force" in line
    assert _precision_warning([new_bf16, old_fp32]) == []
