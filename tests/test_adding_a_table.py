"""Adding a table is one module (docs/adding-a-table.md): its spec, its renderer and its claim, registered with one
call. This test writes such a module outside the package, imports it, and renders a report from run directories
(made here without training: a config, metrics and per-item validation samples, as a completed run leaves them),
then checks the new table's cells and its claim in report.md and claims.json."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import pytest

from harness.cli import main
from harness.runstore import RunDir
from reports.collect import item_values
from reports.registry import TABLES, unregister_table
from reports.spec import needed_runs

MODULE = textwrap.dedent('''
    """Table 90: LoRA beside Pen2Sword on the code suite, ROUGE-1 and ROUGE-L at the last evaluation."""

    from reports.claims import compared, difference_test, last_evaluation, tested_claim
    from reports.registry import register_table
    from reports.render import render_table
    from reports.spec import Column, Row, Spec

    SPEC = Spec("table90", "Table 90: LoRA and Pen2Sword (code, ROUGE)", "code",
                rows=(Row("LoRA", "lora"), Row("Pen2Sword", "pen2sword")),
                columns=(Column("ROUGE-1", "rouge1"), Column("ROUGE-L", "rougeL")),
                note="a table added by a test")


    def claims(spec, frame, values):
        rouge = dict(zip(frame["row"], frame["ROUGE-1"]))
        test = difference_test("Pen2Sword − LoRA", compared(values, "Pen2Sword", "LoRA", "rouge1", last_evaluation))
        return [tested_claim("Pen2Sword's ROUGE-1 is above LoRA's", f"Pen2Sword {rouge['Pen2Sword']:.3f}, "
                             f"LoRA {rouge['LoRA']:.3f}", [test], values, "Pen2Sword", "LoRA")]


    register_table(SPEC, render_table, claims)
''')

STEP = 4
REFERENCES = [f"def f{i}(x):\n    return x * {i} + {i + 1}" for i in range(24)]


def _prediction(method: str, i: int) -> str:
    """Pen2Sword answers each item exactly; LoRA gets the signature and a different body."""
    return REFERENCES[i] if method == "pen2sword" else f"def f{i}(y):\n    print(y, {i} - 7)"


def _mean(items: dict[str, float]) -> float:
    assert len(items) == len(REFERENCES)
    return sum(items.values()) / len(items)


def _make_run(need, root) -> RunDir:
    """A completed run of ``need`` (a reports.spec.NeededRun) under ``root``, evaluated once at STEP."""
    run = RunDir.for_config(need.config, root)
    run.samples_dir.mkdir(parents=True)
    run.config_path.write_text(json.dumps(need.config.to_dict()))
    method = need.config.method
    samples = [{"id": f"v{i}", "prompt": "p", "reference": ref, "prediction": _prediction(method, i)}
               for i, ref in enumerate(REFERENCES)]
    (run.samples_dir / f"validation-step-{STEP}.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    # The logged values are the items' means, as the engine logs them.
    rows = [{"step": STEP, "phase": "eval", "metric": metric, "value": _mean(item_values(run, STEP, metric))}
            for metric in ("rouge1", "rougeL")]
    run.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run.complete(started=0.0, wall_seconds=60.0)
    return run


@pytest.fixture
def table90(tmp_path, monkeypatch):
    """The new table's module, written to a directory of its own and imported (which registers it)."""
    (tmp_path / "modules").mkdir()
    (tmp_path / "modules" / "my_table90.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))
    module = importlib.import_module("my_table90")
    yield module
    if "table90" in TABLES:
        unregister_table("table90")
    sys.modules.pop("my_table90", None)


def test_a_new_table_is_one_module_registered_with_one_call(table90, tmp_path):
    assert TABLES.get("table90").spec is table90.SPEC and TABLES.get("table90").claims is table90.claims

    results, out = tmp_path / "results", tmp_path / "report"
    needs = needed_runs(table90.SPEC, scale="nano")
    assert [(n.row.label, n.config.method, n.config.suite) for n in needs] == [
        ("LoRA", "lora", "code"), ("Pen2Sword", "pen2sword", "code")]
    runs = {n.row.label: _make_run(n, results) for n in needs}
    rouge1 = {label: _mean(item_values(run, STEP, "rouge1")) for label, run in runs.items()}
    assert rouge1["Pen2Sword"] == pytest.approx(1.0) and 0.2 < rouge1["LoRA"] < 0.8

    assert main(["report", "--only", "table90", "--scale", "nano", "--results-dir", str(results),
                 "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    # The table's section, its cells the runs' own values, and its note.
    assert "## Table 90: LoRA and Pen2Sword (code, ROUGE)\n\n|  | ROUGE-1 | ROUGE-L | runs |" in report
    assert "| Pen2Sword | 1.000 | 1.000 | 1 |" in report
    assert f"| LoRA | {rouge1['LoRA']:.3f} | " in report and "a table added by a test" in report
    assert "Behind it: 2 runs, 2 min of wall time in all" in report and "## Missing runs\n\nnone" in report
    assert (out / "table90.csv").exists() and (out / "table90.tex").exists()
    # Its one claim, decided over the 24 paired items: Pen2Sword is exact on every one, LoRA on none.
    (claim,) = json.loads((out / "claims.json").read_text())
    assert claim["source"] == "table90" and claim["claim"] == "Pen2Sword's ROUGE-1 is above LoRA's"
    assert claim["holds"] is True and claim["verdict"] == "yes (provisional: 1 training run per row)"
    (test,) = claim["tests"]
    assert test["n_items"] == 24 and test["estimate"] == pytest.approx(1.0 - rouge1["LoRA"]) and test["p_holm"] < 0.05
    assert claim["evidence"].startswith(f"Pen2Sword 1.000, LoRA {rouge1['LoRA']:.3f}; Pen2Sword − LoRA: Δ +")
    assert f"| table90 | Pen2Sword's ROUGE-1 is above LoRA's | {claim['verdict']} |" in report

    # Unregistered, the name is unknown again.
    unregister_table("table90")
    assert main(["report", "--only", "table90", "--results-dir", str(results), "--out", str(out)]) == 2
