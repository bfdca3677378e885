"""Adding a benchmark is one module: a new kind and its benchmark, written here into tmp_path, registered by
importing it, then scored end to end by ``harness eval`` and by ``harness run`` with no other file touched
(``docs/adding-a-benchmark.md``).

The kind: is the answer to a GSM8K test problem an even number? Multiple choice over " yes" / " no".
"""

from __future__ import annotations

import importlib
import json
import sys

import pytest

from harness.cli import main
from harness.data import load_dataset
from harness.registry import BENCHMARK_KINDS, BENCHMARKS, SUITES
from harness.runstore import find_runs
from harness.suites import Suite, register_suite

pytestmark = pytest.mark.usefixtures("data_cache")

KIND_MODULE = '''
"""GSM8K parity: is the answer an even number? Scored by the log-likelihood of " yes" and " no"."""

from harness.benchmark import BenchmarkKind, BenchmarkSpec, Scored, register_benchmark, register_kind

QUESTION = "Question: {question}\\nIs the answer an even number?\\nAnswer:"


class ParityKind(BenchmarkKind):
    name = "parity"
    version = "1.0"
    metric = "accuracy"
    output_type = "multiple_choice"
    choices = ("yes", "no")

    def prompt_format(self, fewshot=0):
        return QUESTION + "  -> scored continuations ' yes' | ' no'"

    def documents(self, spec, *, fewshot=0, seed=0, **options):
        docs = [{"id": r["id"], "prompt": QUESTION.format(question=r["question"].strip()),
                 "answer": "yes" if int(r["answer"]) % 2 == 0 else "no"} for r in spec.rows()]
        return docs, {"fewshot": fewshot}

    def reference(self, doc):
        return doc["prompt"], " " + doc["answer"]

    def score(self, spec, docs, outputs, extra, **options):
        preds = [self.choices[max(range(len(ll)), key=lambda j: (ll[j], -j))] for ll in outputs]
        hits = [float(p == d["answer"]) for p, d in zip(preds, docs)]
        rows = [{"id": d["id"], "answer": d["answer"], "prediction": p, "correct": p == d["answer"], "logliks": ll}
                for d, p, ll in zip(docs, preds, outputs)]
        return Scored(sum(hits) / len(hits) if hits else None, rows, hits)


KIND = register_kind(ParityKind())
register_benchmark(BenchmarkSpec("gsm8k-parity", "parity", "gsm8k-test", "gsm8k_parity_offline",
                                 "GSM8K test: is the answer an even number? (yes/no)"))
'''


@pytest.fixture
def parity(tmp_path, monkeypatch):
    """The new kind's module, written into tmp_path and imported (which registers it); unregistered after."""
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "parity_kind.py").write_text(KIND_MODULE)
    monkeypatch.syspath_prepend(str(plugin))
    assert "gsm8k-parity" not in BENCHMARKS and "parity" not in BENCHMARK_KINDS
    module = importlib.import_module("parity_kind")
    yield module
    BENCHMARKS.unregister("gsm8k-parity")
    BENCHMARK_KINDS.unregister("parity")
    sys.modules.pop("parity_kind", None)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from tiny import benchmark_llama, benchmark_tokenizer, save_pair

    tok = benchmark_tokenizer()
    return save_pair(benchmark_llama(tok, seed=3), tok, tmp_path_factory.mktemp("tiny") / "model")


def _parity_of(item_id: str) -> str:
    answer = next(r["answer"] for r in load_dataset("gsm8k-test") if r["id"] == item_id)
    return "yes" if int(answer) % 2 == 0 else "no"


def test_a_new_kind_runs_through_harness_eval(parity, model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["eval", "--model", str(model_dir), "--benchmarks", "gsm8k-parity", "--limit", "6",
                 "--out", str(out), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)["results"]["gsm8k-parity"]
    assert r["metric"] == "accuracy" and r["n_items"] == 6 and r["n_total"] == 1319 and r["subsample"]["n"] == 6
    assert set(r["metrics"]) == {"accuracy", "bits_per_byte"} and r["metrics"]["bits_per_byte"]["value"] > 0
    assert r["protocol"]["kind"] == "parity" and r["protocol"]["version"] == "1.0" and r["protocol"]["fewshot"] == 0
    assert r["prompt_format"] == parity.KIND.prompt_format() and r["extra"]["engine"].startswith("lm-eval")
    rows = [json.loads(line) for line in (out / "gsm8k-parity.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(row["reference_bits_per_byte"] > 0 for row in rows)
    assert all(row["answer"] == _parity_of(row["id"]) and row["prediction"] in ("yes", "no") for row in rows)
    assert r["score"] == pytest.approx(sum(row["correct"] for row in rows) / 6)
    assert r["score"] == pytest.approx(r["extra"]["lm_eval"]["metrics"]["acc,none"])  # lm-eval agrees with the kind

    # The direct log-likelihood path scores the same items the same way.
    assert main(["eval", "--model", str(model_dir), "--benchmarks", "gsm8k-parity", "--limit", "6",
                 "--choice-engine", "direct", "--no-continuous", "--json"]) == 0
    direct = json.loads(capsys.readouterr().out)["results"]["gsm8k-parity"]
    assert direct["subsample"] == r["subsample"] and direct["score"] == r["score"]
    assert direct["extra"]["engine"] == "direct" and "bits_per_byte" not in direct["metrics"]

    # The kind's own few-shot check answers (it has a 0-shot protocol only).
    assert main(["eval", "--model", str(model_dir), "--benchmarks", "gsm8k-parity", "--fewshot", "parity=2"]) == 2
    assert "parity has a 0-shot protocol only" in capsys.readouterr().err


def test_a_new_kind_runs_through_harness_run(parity, nano_zoo, tmp_path, capsys):
    register_suite(Suite("parity", "fine-tune on math instructions; scored on GSM8K parity", ("gsm8k-parity",),
                         "math-instructions", {"nano": "math-expert"}))
    try:
        results = tmp_path / "results"
        run = ["run", "--method", "vanilla", "--suite", "parity", "--scale", "nano", "--results-dir", str(results)]
        # The kind checks its shots when the run is planned, before anything is created.
        assert main([*run, "--dry-run", "eval.fewshot.parity=1"]) == 2
        assert "eval.fewshot.parity" in capsys.readouterr().err and not results.exists()

        assert main([*run, "--no-progress", "eval.benchmark_limit=3", "eval.benchmark_max_new_tokens=4"]) == 0
        [run_dir] = find_runs(results)
        rows = [r for r in run_dir.metrics() if r.get("phase") == "benchmark"]
        [score] = [r for r in rows if r["metric"] == "gsm8k-parity/score"]
        assert score["n"] == 3 and score["benchmark"]["metric"] == "accuracy"
        assert score["benchmark"]["protocol"]["kind"] == "parity" and score["benchmark"]["version"] == "1.0"
        assert any(r["metric"] == "gsm8k-parity/bits_per_byte" and r["value"] > 0 for r in rows)
        [items] = list(run_dir.samples_dir.glob("benchmarks-step-*/gsm8k-parity.jsonl"))
        lines = [json.loads(line) for line in items.read_text().splitlines()]
        assert len(lines) == 3 and score["value"] == pytest.approx(sum(x["correct"] for x in lines) / 3)
    finally:
        SUITES.unregister("parity")
