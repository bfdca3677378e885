"""Paired differences over items: the statistics on hand-made values, per-item values recomputed from a run's
samples (they average to what the run logged), and the paired text in the claims' evidence."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from harness.cli import main
from harness.runstore import RunDir
import reports.tables  # noqa: F401  # registers the paper's tables
from reports.collect import item_values, run_values
from reports.claims import CLAIMS_HOW_TO_READ, finalize
from reports.registry import TABLES, specs
from reports.render import table_frame
from reports.spec import needed_runs

SPECS = specs()

# Two checkpoints (1, 2), four validation items, benchmarks on two items each.
TINY = ["training.max_steps=2", "training.eval_every=2", "training.checkpoint_steps=[1,2]", "data.n_validation=4",
        "eval.benchmark_limit=2", "eval.benchmark_max_new_tokens=8", "eval.max_new_tokens=8"]


def claims_of(name: str, *args) -> list[dict]:
    """The claims the registered table ``name`` builds (``claims(spec, frame, values)`` for a table,
    ``claims(spec, values)`` for a figure)."""
    table = TABLES.get(name)
    return table.claims(table.spec, *args)


# --- per-item values ------------------------------------------------------------------------------

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
    from harness.engine.validation import ROUGE_KEYS, rouge_f1

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

    faster, higher, bits, degenerate = finalize(claims_of("figure2a", {"LoRA": [run([(0, 0.1), (2, 0.3)])],
                                                                       "Pen2Sword": [run([(0, 0.1), (2, 0.4)])]}))
    assert bits["holds"] is None  # these runs logged no eval bits per byte
    # Means alone decide nothing: without the items there is no interval, so no verdict.
    assert higher["holds"] is None and higher["evidence"].endswith("; Pen2Sword − LoRA: no per-item samples")
    assert faster["holds"] is None and "no per-item samples" in faster["evidence"]
    humaneval = {"Pen2Sword": [run([(1, 0.2)], "humaneval", (1,))], "Weak2Strong": [run([(1, 0.1)], "humaneval", (1,))],
                 "Pen2Sword + Weak2Strong": [run([(1, 0.3)], "humaneval", (1,))]}
    assert all(c["evidence"].endswith(": no per-item samples") and c["holds"] is None
               for c in finalize(claims_of("figure7a", humaneval)))
    assert "95% interval" in CLAIMS_HOW_TO_READ and "within noise" in CLAIMS_HOW_TO_READ


# --- real nano runs ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lora_and_pen2sword(nano_zoo, tmp_path_factory):
    """Figure 2a's two code runs (LoRA, Pen2Sword), tiny, with benchmarks at both checkpoints."""
    from harness.engine.plan import plan_run
    from harness.engine.run import execute

    results = tmp_path_factory.mktemp("stats") / "results"
    needs = needed_runs(SPECS["figure2a"], scale="nano", overrides=tuple(TINY))
    assert [n.row.label for n in needs] == ["LoRA", "Pen2Sword"]
    runs = {n.row.label: execute(plan_run(n.config, results), progress=False) for n in needs}
    return results, runs


@pytest.mark.slow  # two nano runs with benchmarks at two checkpoints: about a minute
def test_per_item_values_average_to_the_logged_metrics(lora_and_pen2sword):
    _, runs = lora_and_pen2sword
    for run in runs.values():
        rows = run.latest_metrics()
        rouge = {r["step"]: r["value"] for r in rows if r.get("phase") == "eval" and r["metric"] == "rouge1"}
        assert rouge
        bits = {r["step"]: r["value"] for r in rows if r.get("phase") == "eval" and r["metric"] == "eval_bits_per_byte"}
        for step, logged in rouge.items():
            items = item_values(run, step, "rouge1")
            assert len(items) == 4 and statistics.fmean(items.values()) == pytest.approx(logged, abs=1e-12)
            # Each reference's bits and bytes: summed, they are the logged (byte-weighted) eval bits per byte.
            samples = [json.loads(line) for line in (run.samples_dir / f"validation-step-{step}.jsonl").open()]
            total = sum(r["reference_bits"] for r in samples) / sum(r["reference_bytes"] for r in samples)
            assert total == pytest.approx(bits[step], rel=1e-5) and len(item_values(run, step, "eval_bits_per_byte")) == 4
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
    assert main(["report", "--only", "figure2a,table4", "--scale", "nano", "--results-dir", str(results),
                 "--out", str(out), *TINY]) == 0
    report = (out / "report.md").read_text()
    higher = next(line for line in report.splitlines() if "has the higher ROUGE-1 than LoRA" in line)
    assert "; Pen2Sword − LoRA: " in higher and " over 4 items, p " in higher and "(Holm " in higher
    # One training run per row: the verdict is provisional, and with 4 items it cannot be decided (within noise, or
    # void where the nano runs' generations are degenerate).
    assert "| undecided (" in higher and " (provisional: 1 training run per row) |" in higher
    # Table 4: Pen2Sword (its CodeLlama-7B stand-in is the code suite's expert) against LoRA at both checkpoints.
    table4 = next(line for line in report.splitlines() if "Pen2Sword (CodeLlama-7B) beats LoRA" in line)
    assert "1k: Pen2Sword − LoRA: " in table4 and "2k: Pen2Sword − LoRA: " in table4
    claims = json.loads((out / "claims.json").read_text())
    # 2 and 4 items decide nothing read from generations or pass/fail; the continuous bits-per-byte check (its
    # per-item differences can be consistent enough on 4 items) may be decided.
    assert all(c["holds"] is None for c in claims if c["tests"] and "bits per byte" not in c["claim"])
    assert all(t["p"] is None or 0 <= t["p_holm"] <= 1 for c in claims for t in c["tests"])

    values = {label: [run_values(run)] for label, run in runs.items()}
    # Table 1: Pen2Sword against the runner-up (here LoRA, by the scores set below), at each run's best step.
    spec = SPECS["table1"]
    frame = table_frame(spec, [])
    column = "Code Ability / HumanEval"
    frame[column] = [10.0, 20.0, 30.0, 5.0, 5.0, 40.0]  # rows: VM, Instruction-tuned, LoRA, W2S, ProxyTuning, P2S
    frame[f"{column} (bits/byte)"] = [1.0] * 6
    frame["runs"], frame["runs code"], frame["runs math"] = 1, 1, 0
    claims = finalize(claims_of("table1", frame, {"Vanilla Model + LoRA": values["LoRA"],
                                                  "Vanilla Model + LoRA + Pen2Sword": values["Pen2Sword"]}))
    humaneval = next(c for c in claims if column in c["claim"])
    assert humaneval["holds"] is None  # 2 items: whatever the means say, nothing is decided
    assert "; Pen2Sword − VM + LoRA: " in humaneval["evidence"] and " over 2 items" in humaneval["evidence"]
    assert "; bits/byte of the reference Δ " in humaneval["evidence"]  # a continuous value: items differ
    # Figure 7: per checkpoint, Pen2Sword against the other method (LoRA's run stands in for it here).
    alone, combined, _ = finalize(claims_of("figure7a", {
        "Pen2Sword": values["Pen2Sword"], "Weak2Strong": values["LoRA"], "Pen2Sword + Weak2Strong": values["Pen2Sword"]}))
    assert "step 1: Pen2Sword − Weak2Strong: " in alone["evidence"] and "step 2: " in alone["evidence"]
