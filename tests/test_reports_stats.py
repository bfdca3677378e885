"""Paired differences over items: the statistics on hand-made values, per-item values recomputed from a run's
samples (they average to what the run logged), and the paired text in the claims' evidence."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from harness.cli import main
from harness.runstore import RunDir
from reports.collect import item_values, run_values
from reports.render import (CLAIMS_HOW_TO_READ, curve_claims, paired_difference, paired_over_runs, paired_text,
                            table1_claims, table_frame)
from reports.spec import SPECS, needed_runs

# Two checkpoints (1, 2), four validation items, benchmarks on two items each.
TINY = ["training.max_steps=2", "training.eval_every=2", "training.checkpoint_steps=[1,2]", "data.n_validation=4",
        "eval.benchmark_limit=2", "eval.benchmark_max_new_tokens=8", "eval.max_new_tokens=8"]


# --- the statistics on hand-made items -------------------------------------------------------------

def test_paired_difference_over_the_shared_items():
    ours = {"a": 1.0, "b": 2.0, "c": 4.0, "only ours": 9.0}
    base = {"a": 0.0, "b": 0.0, "c": 0.0, "only base": 5.0}
    stats = paired_difference(ours, base)
    se = statistics.stdev([1.0, 2.0, 4.0]) / math.sqrt(3)  # = sqrt(7) / 3
    assert stats["n"] == 3 and stats["mean"] == pytest.approx(7 / 3) and stats["se"] == pytest.approx(math.sqrt(7) / 3)
    assert stats["low"] == pytest.approx(7 / 3 - 1.96 * se) and stats["high"] == pytest.approx(7 / 3 + 1.96 * se)
    assert stats["distinguishable"] is True
    assert paired_text(stats, 3) == "paired over 3 items: Δ +2.333 [95% CI +0.605, +4.062], distinguishable from noise"

    even = paired_difference({"a": 1.0, "b": 0.0, "c": 1.0, "d": 0.0}, {"a": 0.0, "b": 1.0, "c": 0.0, "d": 1.0})
    assert even["mean"] == 0 and even["distinguishable"] is False
    assert paired_text(even, 1, 100).endswith("within noise")
    same = paired_difference({"a": 0.0, "b": 0.0}, {"a": 0.0, "b": 0.0})
    assert paired_text(same, 1) == "paired over 2 items: no item differs, within noise"

    one = paired_difference({"a": 0.5, "b": 1.0}, {"a": 0.25})
    assert one == {"n": 1, "mean": 0.25, "se": None, "low": None, "high": None, "distinguishable": None}
    assert paired_text(one, 2) == "paired over 1 item: Δ +0.25, no standard error from one item"
    assert paired_difference({"a": 1.0}, {"b": 1.0}) is None
    assert paired_text(None, 2) == "no items scored by both"


def test_seeds_pair_within_a_seed_then_average_per_item():
    ours = {("code", 0): {"a": 1.0, "b": 1.0}, ("code", 1): {"a": 3.0, "b": 1.0}, ("code", 2): {"a": 100.0}}
    base = {("code", 0): {"a": 0.0, "b": 0.0}, ("code", 1): {"a": 0.0, "b": 0.0}}
    stats = paired_over_runs(ours, base)
    # Seed 2 has no base run: left out. Item a differs by 1 and 3 (mean 2), b by 1 and 1: two items, not four.
    assert stats["runs"] == 2 and stats["n"] == 2 and stats["mean"] == pytest.approx(1.5)
    assert stats["se"] == pytest.approx(statistics.stdev([2.0, 1.0]) / math.sqrt(2))
    assert "paired over 2 items × 2 runs" in paired_text(stats, 2)
    assert paired_over_runs({("code", 0): {"a": 1.0}}, {("math", 0): {"a": 1.0}}) is None  # no run in common


def test_item_values_from_hand_made_samples(tmp_path):
    run = RunDir(tmp_path / "run")
    run.samples_dir.mkdir(parents=True)
    run.config_path.write_text(json.dumps({"eval": {"rouge_mode": "generate", "rouge_tokenizer": "code"}}))
    validation = [{"id": "v1", "prediction": "x = 1", "reference": "x = 1"},
                  {"id": "v2", "prediction": "a", "reference": "b"},
                  {"id": "v2", "prediction": "b", "reference": "b"}]  # a resumed run evaluated again: the later wins
    (run.samples_dir / "validation-step-4.jsonl").write_text("".join(json.dumps(r) + "\n" for r in validation))
    assert item_values(run, 4, "rouge1") == {"v1": 1.0, "v2": 1.0}
    assert item_values(run, 6, "rouge1") is None  # no samples at that step

    # Per-item values average to what the engine's rouge_f1 logs, under either tokenizer (the nano runs
    # below generate blank lines only, so this is where the values are not all 0).
    from harness.engine.rouge import ROUGE_KEYS, rouge_f1

    pairs = [("def add(a, b):\n    return a + b", "def add(x, y):\n    return x + y"),
             ("for i in range(10): print(i)", "while i < 10:\n    i += 1"),
             ("The answer is 42.", "So the answer is 41."), ("", "x == y")]
    (run.samples_dir / "validation-step-8.jsonl").write_text("".join(
        json.dumps({"id": f"v{i}", "prediction": p, "reference": r}) + "\n" for i, (p, r) in enumerate(pairs)))
    for tokenizer in ("code", "default"):
        run.config_path.write_text(json.dumps({"eval": {"rouge_mode": "generate", "rouge_tokenizer": tokenizer}}))
        logged = rouge_f1([p for p, _ in pairs], [r for _, r in pairs], tokenizer)
        for key in ROUGE_KEYS:
            items = item_values(run, 8, key)
            assert len(items) == 4 and 0 < statistics.fmean(items.values()) < 1
            assert statistics.fmean(items.values()) == pytest.approx(logged[key], abs=1e-12)

    bench = run.samples_dir / "benchmarks-step-4"
    bench.mkdir()
    humaneval = [{"task_id": "HumanEval/0", "sample": 0, "passed": True, "reference_bits_per_byte": 2.0},
                 {"task_id": "HumanEval/0", "sample": 1, "passed": False, "reference_bits_per_byte": 2.0},
                 {"task_id": "HumanEval/1", "sample": 0, "passed": False, "reference_bits_per_byte": 3.0}]
    (bench / "humaneval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in humaneval))
    (bench / "mmlu.jsonl").write_text(json.dumps({"id": "astronomy/0", "correct": True}) + "\n")
    assert item_values(run, 4, "humaneval/score") == {"HumanEval/0": 0.5, "HumanEval/1": 0.0}  # mean per task
    assert item_values(run, 4, "humaneval/bits_per_byte") == {"HumanEval/0": 2.0, "HumanEval/1": 3.0}
    assert item_values(run, 4, "mmlu/score") == {"astronomy/0": 1.0}
    assert item_values(run, 4, "mmlu/bits_per_byte") is None  # continuous metrics were off
    assert item_values(run, 4, "math-l5/score") is None

    run.config_path.write_text(json.dumps({"eval": {"rouge_mode": "teacher-forced"}}))
    assert item_values(run, 4, "rouge1") is None  # its ROUGE compared decoded inputs, which samples do not keep


def test_claims_without_samples_say_so():
    def run(curve: list[tuple[int, float]], metric: str = "rouge1", checkpoints: tuple[int, ...] = ()) -> dict:
        return {"curves": {metric: curve}, "checkpoint_steps": list(checkpoints)}  # an old run: no run_dir

    faster, higher, bits = curve_claims(SPECS["figure2a"], {"LoRA": [run([(0, 0.1), (2, 0.3)])],
                                                            "Pen2Sword": [run([(0, 0.1), (2, 0.4)])]})
    assert bits["holds"] is None  # these runs logged no eval bits per byte
    assert higher["holds"] is True and higher["evidence"].endswith("; Pen2Sword − LoRA no per-item samples")
    assert "paired" not in faster["evidence"]
    humaneval = {"Pen2Sword": [run([(1, 0.2)], "humaneval", (1,))], "Weak2Strong": [run([(1, 0.1)], "humaneval", (1,))],
                 "Pen2Sword + Weak2Strong": [run([(1, 0.3)], "humaneval", (1,))]}
    assert all("; no per-item samples;" in c["evidence"] for c in curve_claims(SPECS["figure7a"], humaneval))
    assert "95% interval" in CLAIMS_HOW_TO_READ and "within noise" in CLAIMS_HOW_TO_READ


# --- real nano runs ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lora_and_pen2sword(nano_zoo, tmp_path_factory):
    """Figure 2a's two code runs (LoRA, Pen2Sword), tiny, with benchmarks at both checkpoints."""
    from harness.catalog import load_builtins
    from harness.engine.run import execute

    load_builtins()
    results = tmp_path_factory.mktemp("stats") / "results"
    needs = needed_runs(SPECS["figure2a"], scale="nano", overrides=tuple(TINY))
    assert [n.row.label for n in needs] == ["LoRA", "Pen2Sword"]
    runs = {n.row.label: execute(n.config, results_root=results, progress=False) for n in needs}
    return results, runs


@pytest.mark.slow  # two nano runs with benchmarks at two checkpoints: about a minute
def test_per_item_values_average_to_the_logged_metrics(lora_and_pen2sword):
    _, runs = lora_and_pen2sword
    for run in runs.values():
        rows = run.latest_metrics()
        rouge = {r["step"]: r["value"] for r in rows if r.get("phase") == "eval" and r["metric"] == "rouge1"}
        assert rouge
        for step, logged in rouge.items():
            items = item_values(run, step, "rouge1")
            assert len(items) == 4 and statistics.fmean(items.values()) == pytest.approx(logged, abs=1e-12)
        scores = [r for r in rows if r.get("phase") == "benchmark" and r["metric"].endswith("/score")]
        # Both checkpoints, and the best step by ROUGE-1 where that is neither (step 0 on so short a run).
        assert {r["step"] for r in scores} >= {1, 2} and {r["metric"] for r in scores} >= {"humaneval/score"}
        for row in scores:
            items = item_values(run, row["step"], row["metric"])
            assert len(items) == row["n"] == 2
            assert statistics.fmean(items.values()) == pytest.approx(row["value"], abs=1e-12)
            bits = item_values(run, row["step"], row["metric"].replace("/score", "/bits_per_byte"))
            assert bits.keys() == items.keys()


@pytest.mark.slow
def test_report_evidence_pairs_the_items(lora_and_pen2sword, tmp_path):
    results, runs = lora_and_pen2sword
    out = tmp_path / "report"
    assert main(["report", "--only", "figure2a,table4", "--scale", "nano", "--results", str(results),
                 "--out", str(out), *TINY]) == 0
    report = (out / "report.md").read_text()
    higher = next(line for line in report.splitlines() if "has the higher ROUGE-1 than LoRA" in line)
    assert "; Pen2Sword − LoRA paired over 4 items: " in higher
    assert higher.rstrip(" |").endswith(("distinguishable from noise", "within noise"))
    # Table 4: Pen2Sword (its CodeLlama-7B stand-in is the code suite's expert) against LoRA at both checkpoints.
    table4 = next(line for line in report.splitlines() if "Pen2Sword (CodeLlama-7B) beats LoRA" in line)
    assert "paired over 2 items: distinguishable from noise at " in table4 and " of 2 steps (1k " in table4

    values = {label: [run_values(run)] for label, run in runs.items()}
    # Table 1: Pen2Sword against the runner-up (here LoRA, by the scores set below), at each run's best step.
    spec = SPECS["table1"]
    frame = table_frame(spec, [])
    column = "Code Ability / HumanEval"
    frame[column] = [10.0, 20.0, 30.0, 5.0, 5.0, 40.0]  # rows: VM, Instruction-tuned, LoRA, W2S, ProxyTuning, P2S
    frame[f"{column} (bits/byte)"] = [1.0] * 6
    frame["runs"], frame["runs code"], frame["runs math"] = 1, 1, 0
    claims = table1_claims(spec, frame, {"Vanilla Model + LoRA": values["LoRA"],
                                         "Vanilla Model + LoRA + Pen2Sword": values["Pen2Sword"]})
    humaneval = next(c for c in claims if column in c["claim"])
    assert humaneval["holds"] is True
    assert "; Pen2Sword − VM + LoRA paired over 2 items: " in humaneval["evidence"]
    assert "; bits/byte paired over 2 items: Δ " in humaneval["evidence"]  # a continuous value: items differ
    assert "[95% CI " in humaneval["evidence"].split("bits/byte paired")[1]
    # Figure 7: per checkpoint, Pen2Sword against the other method (LoRA's run stands in for it here).
    alone, combined = curve_claims(SPECS["figure7a"], {"Pen2Sword": values["Pen2Sword"], "Weak2Strong": values["LoRA"],
                                                       "Pen2Sword + Weak2Strong": values["Pen2Sword"]})
    assert "paired over 2 items: distinguishable from noise at " in alone["evidence"]
    assert " of 2 steps (step 1 " in alone["evidence"]
