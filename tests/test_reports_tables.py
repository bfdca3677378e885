"""Table 4 (benchmarks at each checkpoint, per expert) from real nano runs; Table 6 (the paper's numbers
only) and Figure 3 (rows this machine or scale cannot run) in the plan and the report; the claims, as
functions of plain values."""

from __future__ import annotations

import csv

import pytest

from harness.cli import main
from harness.runstore import find_runs
import reports.tables  # noqa: F401  # registers the paper's tables
from reports.claims import finalize
from reports.registry import TABLES, specs
from reports.render import table_frame
from reports.spec import needed_runs
from reports.tables.table4 import paper_beats_at_every_step

SPECS = specs()

pytestmark = pytest.mark.usefixtures("data_cache")
# Two checkpoints (1, 2) stand for the paper's 1k and 2k; benchmarks on two items each.
TINY = ["training.max_steps=2", "training.eval_every=2", "training.checkpoint_steps=[1,2]", "data.n_validation=4",
        "eval.benchmark_limit=2", "eval.benchmark_max_new_tokens=8", "eval.max_new_tokens=8"]
STEP = "HumanEval (\\uparrow) / step="


def claims_of(name: str, *args) -> list[dict]:
    """The claims the registered table ``name`` builds (``claims(spec, frame[, values])`` for a table,
    ``claims(spec, values)`` for a figure)."""
    table = TABLES.get(name)
    return table.claims(table.spec, *args)


def _qlora_runs_here() -> bool:
    from harness.engine.adapters import AdapterUnavailableError, check_qlora_available

    try:
        check_qlora_available()
    except AdapterUnavailableError:
        return False
    return True


@pytest.mark.slow  # three nano runs with benchmarks at two checkpoints: about a minute
def test_table4_cells_are_the_runs_scores_at_each_checkpoint(nano_zoo, tmp_path):
    from harness.engine.plan import plan_run
    from harness.engine.run import execute
    from reports.collect import run_values

    results, out = tmp_path / "results", tmp_path / "report"
    wanted = ("Vanilla Model", "Vanilla Model + LoRA", "Vanilla Model + LoRA + Pen2Sword (CodeLlama-7B)")
    chosen = [n for n in needed_runs(SPECS["table4"], scale="nano", overrides=tuple(TINY))
              if n.row.label in wanted and n.config.suite == "code"]
    assert [n.row.label for n in chosen] == list(wanted)
    for need in chosen:
        execute(plan_run(need.config, results), progress=False)
    assert main(["report", "--only", "table4", "--scale", "nano", "--results-dir", str(results), "--out", str(out),
                 *TINY]) == 0

    rows = {r["row"]: r for r in csv.DictReader((out / "table4.csv").open())}
    by_method = {run.path.parent.name: run_values(run) for run in find_runs(results)}
    # A trained run's cell is its benchmark score at its n-th checkpoint (×100), bits per byte beside it.
    for method, label in (("lora", wanted[1]), ("pen2sword", wanted[2])):
        scored = by_method[method]["benchmarks_by_step"]
        for index, step in enumerate((1, 2)):
            column = f"{STEP}{('1k', '2k')[index]}"
            assert float(rows[label][column]) == pytest.approx(100 * scored[step]["humaneval"]["score"])
            assert float(rows[label][f"{column} (bits/byte)"]) == pytest.approx(
                scored[step]["humaneval"]["bits_per_byte"])
        assert rows[label][f"{STEP}3k"] == ""  # nothing maps onto 3k: the runs have two checkpoints
    # The Vanilla Model does not train: its step-0 score stands for each checkpoint.
    vanilla = by_method["vanilla"]
    assert not vanilla["trained"] and sorted(vanilla["benchmarks_by_step"]) == [0]
    for paper_step in ("1k", "2k"):
        assert float(rows["Vanilla Model"][f"{STEP}{paper_step}"]) == pytest.approx(
            100 * vanilla["benchmarks_by_step"][0]["humaneval"]["score"])
    assert rows["Vanilla Model + LoRA + Pen2Sword (Vicuna-7B-v1.5)"][f"{STEP}1k"] == ""  # not run

    report = (out / "report.md").read_text()
    assert "step=1k (ours 1)" in report and "step=2k (ours 2)" in report and "step=5k (ours –)" in report
    assert "[paper 16.5" in report and "**MATH (↑)** (math suite, ×100)" in report
    claim = next(line for line in report.splitlines() if "Pen2Sword (CodeLlama-7B) beats LoRA at every step" in line)
    assert "| undecided (runs missing) |" not in claim and "1 run each" in claim and "paper: holds" in claim
    other = next(line for line in report.splitlines() if "Pen2Sword (Vicuna-7B-v1.3) beats LoRA" in line)
    assert "| undecided (runs missing) | runs missing; paper: does not hold" in other
    assert "`harness run --method pen2sword --suite math --scale nano --seed 0 model.expert=vicuna-v1.5-" in report


def test_figure3_and_table6_in_the_plan_and_the_report_without_runs(tmp_path, capsys):
    results, out = tmp_path / "results", tmp_path / "report"
    assert main(["reproduce", "--figure", "3", "--scale", "nano", "--results-dir", str(results), "--out", str(out),
                 "--dry-run"]) == 0
    plan = capsys.readouterr().out
    qlora_here = _qlora_runs_here()
    assert f"8 runs needed, 0 completed, {2 + 2 * qlora_here} to run" in plan
    assert f"{6 - 2 * qlora_here} not runnable here" in plan
    assert "  harness run --method pen2sword-dora --suite code --scale nano --seed 0   [missing]" in plan
    assert ("not runnable here: harness run --method qlora" in plan) != qlora_here
    assert ("not runnable here: harness run --method pen2sword --suite code --scale nano --seed 0 "
            "model.target=vicuna-13b-v1.5 model.expert=vicuna-7b-v1.5   [needs scale paper") in plan
    assert main(["reproduce", "--table", "6", "--scale", "micro", "--results-dir", str(results), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "0 runs needed" in plan and "  table6: no runs possible yet: needs an LLM-judge benchmark" in plan

    # A results root that does not exist is an error (exit 2), not an empty report; an existing one without runs
    # renders every run as missing.
    assert main(["report", "--only", "table6,figure3", "--scale", "nano", "--results-dir", str(results),
                 "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert f"results directory {str(results)!r} does not exist" in error and not (out / "report.md").exists()
    results.mkdir()
    assert main(["report", "--only", "table6,figure3", "--scale", "nano", "--results-dir", str(results),
                 "--out", str(out)]) == 0
    assert f"no runs under {results}" in capsys.readouterr().err
    report = (out / "report.md").read_text()
    assert "| AlpacaEval | Vanilla Model (Llama2-70B-Base) | 4 | – |" in report
    assert ("- not runnable here: no runs possible yet: needs an LLM-judge benchmark (AlpacaEval, MedQuAD) the "
            "harness does not have (table6)") in report
    assert ("- not runnable here: `harness run --method lora --suite code --scale nano --seed 0 "
            "model.target=baichuan2-13b-base` (figure3b): needs scale "
            "paper") in report
    assert "- `harness run --method dora --suite code --scale nano --seed 0` (figure3a; missing)" in report
    assert ("| figure3b | Pen2Sword (Baichuan2) has the higher ROUGE-1 than LoRA (Baichuan2) at the same budget "
            "| undecided (runs missing) |") in report
    assert "| table6 | AlpacaEval: Pen2Sword's transferred embeddings beat the vanilla model at 0 steps" in report
    assert (out / "figure3a.png").stat().st_size > 1000 and (out / "figure3b.png").exists()


def test_an_unknown_table_is_a_clear_error(tmp_path, capsys):
    assert main(["reproduce", "--table", "9", "--results-dir", str(tmp_path), "--dry-run"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("harness: error: unknown table or figure 'table9'; known: table1, table2,")
    assert "figure2 (figure2a, figure2b, figure2c)" in error
    assert error.rstrip().endswith("figure7 (figure7a, figure7b), or all")
    known = error.split("known: ")[1].replace("(", "").replace(")", "").replace(",", " ").split()
    assert len(known) == len(set(known))  # each name once
    assert main(["report", "--only", "table2,figure9z", "--results-dir", str(tmp_path), "--out",
                 str(tmp_path / "out")]) == 2
    assert "unknown table or figure 'figure9z'" in capsys.readouterr().err


# --- claims on plain values ------------------------------------------------------------------------

def test_the_papers_own_numbers_per_step():
    assert paper_beats_at_every_step({"1k": 17.7, "2k": 17.3, "3k": None}, {"1k": 16.5, "2k": 14.4, "3k": None}) is True
    assert paper_beats_at_every_step({"1k": 17.7, "2k": 14.4}, {"1k": 16.5, "2k": 14.4}) is False  # a tie is no win
    assert paper_beats_at_every_step({"1k": 17.7, "2k": None}, {"1k": 16.5, "2k": 14.4}) is None


def test_table4_claims_name_the_papers_own_verdict_per_expert():
    claims = {c["claim"]: c for c in claims_of("table4", table_frame(SPECS["table4"], []))}
    assert len(claims) == 5 and all(c["holds"] is None for c in claims.values())
    def evidence(expert: str) -> str:
        return claims[f"Pen2Sword ({expert}) beats LoRA at every step on HumanEval"]["evidence"]

    assert "paper: holds (1k 16.7 vs 16.5" in evidence("CodeLlama-7B")
    # The paper's text says Pen2Sword beats LoRA at every step; its numbers do not for Vicuna-7B-v1.3 (3k: 15.2 < 16.9).
    assert "paper: does not hold" in evidence("Vicuna-7B-v1.3")


def test_table5_memory_claims_are_untested_ratios_with_their_caveats():
    import pandas as pd

    frame = pd.DataFrame.from_records([
        {"row": "Vanilla Model + FFT", "ROUGE-1": 0.40, "Minutes per 1k steps": 90.0, "Avg. GPU Memory (GB)": None,
         "Peak RSS in training (GB)": 4.0, "runs": 1},
        {"row": "Vanilla Model + LoRA", "ROUGE-1": 0.38, "Minutes per 1k steps": 50.0, "Avg. GPU Memory (GB)": None,
         "Peak RSS in training (GB)": 2.0, "runs": 1},
        {"row": "Vanilla Model + LoRA + Pen2Sword-F", "ROUGE-1": 0.39, "Minutes per 1k steps": 60.0,
         "Avg. GPU Memory (GB)": None, "Peak RSS in training (GB)": 2.1, "runs": 1},
        {"row": "Vanilla Model + LoRA + Pen2Sword", "ROUGE-1": 0.41, "Minutes per 1k steps": 52.0,
         "Avg. GPU Memory (GB)": None, "Peak RSS in training (GB)": 2.2, "runs": 1}])
    claims = {c["claim"].split(" (paper")[0]: c for c in finalize(claims_of("table5", frame))}
    # No runs behind the frame: the tested claims are undecided; the memory ratios read the cells.
    assert claims["Pen2Sword reaches a higher ROUGE-1 than LoRA"]["holds"] is None
    assert claims["Pen2Sword's minutes per 1k steps are within 15% of LoRA's"]["evidence"] == "runs missing"
    memory = claims["Pen2Sword's Peak RSS in training (GB) is within 15% of LoRA's"]  # no GPU: peak RSS stands in
    assert memory["holds"] is True and "no interval (one measurement per run)" in memory["evidence"]
    assert claims["Pen2Sword-F's Peak RSS in training (GB) is within 15% of LoRA's"]["holds"] is True
    assert claims["FFT's Peak RSS in training (GB) is at least 1.5x LoRA's"]["holds"] is True

    # Memory compares only runs that each had a process of their own (``runs_before_in_process`` 0).
    def memory_claims(before: dict[str, int | None]) -> dict[str, dict]:
        values = {row: [{"runs_before_in_process": n, "cpu_share": 0.95}] for row, n in before.items()}
        return {c["claim"].split(" (paper")[0]: c for c in claims_of("table5", frame, values)
                if "RSS" in c["claim"]}

    rows = ("Vanilla Model + FFT", "Vanilla Model + LoRA", "Vanilla Model + LoRA + Pen2Sword-F",
            "Vanilla Model + LoRA + Pen2Sword")
    assert all(c["holds"] is True for c in memory_claims(dict.fromkeys(rows, 0)).values())
    shared = memory_claims({**dict.fromkeys(rows, 0), "Vanilla Model + LoRA": 2})
    assert all(c["holds"] is None for c in shared.values())
    assert ("Vanilla Model + LoRA's run followed 2 other runs in its process"
            in shared["FFT's Peak RSS in training (GB) is at least 1.5x LoRA's"]["evidence"])
    unknown = memory_claims({**dict.fromkeys(rows, 0), "Vanilla Model + FFT": None})
    assert unknown["FFT's Peak RSS in training (GB) is at least 1.5x LoRA's"]["holds"] is None
    assert unknown["Pen2Sword's Peak RSS in training (GB) is within 15% of LoRA's"]["holds"] is True


def _run(curve: list[tuple[int, float]], metric: str = "rouge1", checkpoints: tuple[int, ...] = ()) -> dict:
    return {"curves": {metric: curve}, "checkpoint_steps": list(checkpoints)}


def test_curve_claims_with_runs_missing():
    dr, dr100 = claims_of("figure4", {"Pen2Sword, DR 80%": [_run([(0, 0.1), (4, 0.3)])]})
    assert dr["holds"] is None and dr["evidence"] == dr100["evidence"] == "runs missing"
    best, faster = claims_of("figure5", {})
    assert best["evidence"] == faster["evidence"] == "runs missing"


def test_timing_claims_are_undecided_when_a_run_shared_its_machine():
    from reports.claims import timing_caveat

    assert timing_caveat({"LoRA": [0.97], "Pen2Sword": [0.91, 0.95]}) is None
    assert "LoRA's run got 40% of its threads' CPU time" in timing_caveat({"LoRA": [0.4], "Pen2Sword": [0.95]})
    assert "not recorded for Pen2Sword" in timing_caveat({"LoRA": [0.9], "Pen2Sword": [None]})

    def run(minutes: float, share: float | None) -> dict:
        return {"minutes_per_1k": minutes, "cpu_share": share, "step_seconds": [minutes * 0.06] * 10,
                "fixed_seconds_per_step": 0.0}

    def claims(shares: dict[str, float | None]) -> dict[str, dict]:
        values = {k: [run(m, shares[k])] for k, m in {"LoRA": 10.0, "Pen2Sword": 10.5, "Weak2Strong": 30.0}.items()}
        return {c["claim"].split(" ")[0]: c for c in finalize(claims_of("figure2c", values))}

    idle = claims({"LoRA": 0.95, "Pen2Sword": 0.95, "Weak2Strong": 0.95})
    assert idle["Pen2Sword"]["holds"] is True and idle["Weak2Strong"]["holds"] is True  # constant step times
    assert idle["ProxyTuning"]["evidence"] == "runs missing"
    busy = claims({"LoRA": 0.5, "Pen2Sword": 0.95, "Weak2Strong": 0.95})["Pen2Sword"]
    assert busy["holds"] is None and "timings not comparable" in busy["undecided_because"]
    unknown = claims({"LoRA": None, "Pen2Sword": None, "Weak2Strong": None})["Pen2Sword"]
    assert unknown["holds"] is None and "not recorded" in unknown["undecided_because"]


def test_the_continuous_check_beside_rouge_compares_bits_per_byte_at_the_last_common_step():
    from reports.claims import lower_bits_claim

    def runs(curve: dict[int, float]) -> list[dict]:  # runs made before per-item bits were kept: untested
        return [_run(list(curve.items()), "eval_bits_per_byte")]

    lora, p2s = {0: 2.73, 250: 2.60, 500: 2.46}, {0: 2.75, 250: 2.55, 500: 2.45, 550: 2.0}
    claim = lower_bits_claim({"LoRA": runs(lora), "Pen2Sword": runs(p2s)})
    assert claim["holds"] is True and "step 500: Pen2Sword 2.4500, LoRA 2.4600" in claim["evidence"]
    assert "no interval" in claim["evidence"]
    assert lower_bits_claim({"LoRA": runs({0: 2.7, 500: 2.4}), "Pen2Sword": runs({0: 2.7, 500: 2.5})})["holds"] is False
    assert lower_bits_claim({"LoRA": [], "Pen2Sword": runs(p2s)})["holds"] is None
