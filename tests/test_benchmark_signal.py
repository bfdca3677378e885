"""Benchmark signal: continuous metrics (bits per byte, p(correct)) with standard errors, the paper's
protocols (few-shot MMLU, Minerva MATH, GSM8K) and the same items for every run.

Offline throughout: data from the pinned wheels (``data_cache``), tiny models built here.
"""

from __future__ import annotations

import math as pymath

import pytest
import torch

from harness.benchmark import mean_and_stderr, ratio_and_stderr
from harness.engine.evaluation import evaluate_model
from harness.engine.loglik import continuation_logliks
from harness.registry import BENCHMARKS

from benchmarks import gsm8k, math, mmlu

pytestmark = pytest.mark.usefixtures("data_cache")


@pytest.fixture(scope="module")
def tiny():
    from tiny import benchmark_llama as tiny_llama, benchmark_tokenizer as tiny_tokenizer

    tok = tiny_tokenizer()
    return tiny_llama(tok, seed=2), tok


PAIRS = [("def add(a, b):\n", "    return a + b\n"),
         ("Question: What is 2+2?\nAnswer:", " 4"),
         ("The following are multiple choice questions ", "about astronomy."),  # trailing space moves over
         ("x", " = [i for i in range(10)]  # ünïcode bytes")]


def _by_hand(model, tok, context: str, continuation: str) -> tuple[float, int]:
    """Bits of the continuation by one plain forward pass over context + continuation."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    ctx = tok(context)["input_ids"]
    whole = tok(context + continuation)["input_ids"]
    assert whole[: len(ctx)] == ctx
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([whole])).logits[0].float(), dim=-1)
    nats = -sum(float(logprobs[i - 1, whole[i]]) for i in range(len(ctx), len(whole)))
    return nats / pymath.log(2), len(continuation.encode("utf-8"))


def test_bits_per_byte_matches_a_hand_computation(tiny):
    model, tok = tiny
    scores = continuation_logliks(model, tok, PAIRS, batch_size=3)
    for (context, continuation), got in zip(PAIRS, scores):
        bits, n_bytes = _by_hand(model, tok, context, continuation)
        assert got.bytes == n_bytes and not got.truncated
        assert got.bits == pytest.approx(bits, rel=1e-4)
        assert got.bits_per_byte == pytest.approx(bits / n_bytes, rel=1e-4)
    assert scores[3].bytes > len(PAIRS[3][1])  # bytes, not characters


def test_continuation_logliks_agree_with_lm_eval_item_by_item(tiny):
    from harness.engine.evaluation import _LmEval
    from lm_eval.api.instance import Instance

    model, tok = tiny
    lm = _LmEval(model, tok, batch_size=2).lm
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=pair, idx=i) for i, pair in enumerate(PAIRS)]
    theirs = [ll for ll, _ in lm.loglikelihood(requests, disable_tqdm=True)]
    ours = [s.logprob for s in continuation_logliks(model, tok, PAIRS, batch_size=4)]
    assert ours == pytest.approx(theirs, abs=1e-4)


def test_long_continuations_are_cut_to_the_context_window(tiny):
    from tiny import benchmark_llama as tiny_llama

    _, tok = tiny
    short = tiny_llama(tok, max_position_embeddings=32)
    [score] = continuation_logliks(short, tok, [("def f():\n", "    return 1\n" * 40)])
    assert score.truncated and score.tokens == 31 and 0 < score.bytes < len("    return 1\n" * 40)


def test_standard_errors():
    mean, se = mean_and_stderr([1.0, 0.0, 0.0, 1.0])
    assert mean == 0.5 and se == pytest.approx(pymath.sqrt((4 * 0.25 / 3) / 4))
    assert mean_and_stderr([1.0]) == (1.0, None) and mean_and_stderr([]) == (None, None)
    ratio, se = ratio_and_stderr([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])  # every item 2 bits/byte: no spread
    assert ratio == pytest.approx(2.0) and se == pytest.approx(0.0)
    ratio, se = ratio_and_stderr([1.0, 3.0], [1.0, 1.0])
    assert ratio == 2.0 and se == pytest.approx(1.0)  # the mean of 1 and 3, sd sqrt(2), n 2


def test_every_benchmark_reports_continuous_metrics_with_standard_errors(tiny, tmp_path):
    model, tok = tiny
    results = evaluate_model(model, tok, ["humaneval", "math-500-l5", "gsm8k", "mmlu-cs"], limit=4,
                             max_new_tokens=8, batch_size=4, choice_engine="direct", out_dir=tmp_path)
    for name, r in results.items():
        bpb = r.metrics["bits_per_byte"]
        assert bpb["n"] == 4 and bpb["value"] > 0 and bpb["stderr"] is not None and bpb["lower_is_better"]
        assert r.metrics[r.metric]["n"] == 4 and r.metrics[r.metric]["value"] == r.score
        assert r.stderr == r.metrics[r.metric]["stderr"] is not None
        rows = [__import__("json").loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
        assert all(row["reference_bits_per_byte"] > 0 for row in rows)
    mc = results["mmlu-cs"]
    assert set(mc.metrics) == {"accuracy", "p_correct", "bits_per_byte"}
    rows = [__import__("json").loads(line) for line in (tmp_path / "mmlu-cs.jsonl").read_text().splitlines()]
    for row in rows:
        weights = [pymath.exp(x) for x in row["logliks"]]
        assert row["p_correct"] == pytest.approx(weights["ABCD".index(row["answer"])] / sum(weights))
    assert mc.metrics["p_correct"]["value"] == pytest.approx(sum(r["p_correct"] for r in rows) / 4)
    off = evaluate_model(model, tok, ["mmlu-cs"], limit=4, choice_engine="direct", continuous=False)["mmlu-cs"]
    assert "bits_per_byte" not in off.metrics and off.score == mc.score


def test_the_reference_text_is_what_each_kind_says():
    h = BENCHMARKS.get("humaneval")
    doc = h.documents()[0][0]
    assert h.kind_impl.reference(doc) == (doc["prompt"], doc["canonical_solution"])
    m = BENCHMARKS.get("math-l5")
    doc = m.documents()[0][0]
    assert m.kind_impl.reference(doc) == (doc["prompt"], " " + doc["solution"])
    g = BENCHMARKS.get("gsm8k")
    doc = g.documents()[0][0]
    context, continuation = g.kind_impl.reference(doc)
    assert continuation == f" {doc['solution']}\nThe answer is: {doc['answer']}" and context.endswith("Answer:")
    q = BENCHMARKS.get("mmlu-physics")
    doc = q.documents()[0][0]
    context, continuation = q.kind_impl.reference(doc)
    assert continuation == " " + doc["choices"]["ABCD".index(doc["answer"])]
    assert context.endswith(doc["question"].strip() + "\nAnswer:") and "\nA. " not in context  # cloze: no choices


# --- protocols -------------------------------------------------------------------------------------

def test_mmlu_shots_from_held_out_test_items_never_the_scored_item():
    spec = BENCHMARKS.get("mmlu-cs")
    docs, info = spec.documents(fewshot=5, seed=0)
    scored = {d["id"] for d in docs}
    by_id = {r["id"]: r for r in spec.rows()}
    for d in docs:
        assert len(d["shots"]) == 5 and all(s.startswith("test:") for s in d["shots"])
        shot_ids = [s.removeprefix("test:") for s in d["shots"]]
        assert not scored & set(shot_ids) and d["id"] not in shot_ids
        assert all(by_id[s]["subject"] == d["subject"] for s in shot_ids)
        assert d["prompt"].count("\nAnswer:") == 6 and d["cloze_context"].count("\nAnswer:") == 6
    assert info["fewshot_source"].startswith("held-out MMLU test items") and info["n_held_out"] == 5 * 4


def test_mmlu_shots_from_the_dev_split_where_the_hub_serves_it(monkeypatch):
    from harness.data import datasets as data

    subjects = mmlu.MMLU_GROUPS["cs"]
    dev = [{"id": f"{s}/{i}", "question": f"dev question {s} {i}?", "choices": ["w", "x", "y", "z"], "answer": "B",
            "subject": s} for s in subjects for i in range(5)]
    monkeypatch.setattr(data, "load_mmlu_dev_from_hub", lambda: dev)
    spec = BENCHMARKS.get("mmlu-cs")
    docs, info = spec.documents(fewshot=5, seed=0, shots_from="dev")
    assert len(docs) == 412 and info["n_held_out"] == 0  # no test item spent on shots
    assert info["fewshot_source"].startswith("MMLU dev split")
    assert all(s.startswith("dev:") for d in docs for s in d["shots"])
    assert "dev question" in docs[0]["prompt"] and docs[0]["prompt"].count("dev question") == 5


def test_math_minerva_four_shot_protocol():
    spec = BENCHMARKS.get("math-l5")
    docs, notes = spec.documents(fewshot=4)
    prompt = docs[0]["prompt"]
    assert prompt.count("Problem:\n") == 5 and prompt.endswith(docs[0]["problem"] + "\n\nSolution:")
    assert prompt.count("I hope it is correct.") == 4 and notes["fewshot"] == 4
    protocol = spec.kind_impl.protocol(4)
    assert protocol.version == "2.0" and protocol.fewshot == 4 and protocol.details["stop_sequences"] == ["Problem:"]
    with pytest.raises(ValueError, match="0 or 4"):
        spec.documents(fewshot=2)


@pytest.mark.parametrize("output, expected", [
    ("so \\boxed{7} and later The answer is 8", "7"),
    ("Final Answer: The final answer is $24$. I hope it is correct.", "24"),
    ("She has 5 apples.\nThe answer is: 18", "18"),
    ("The answer is $\\frac{1}{2}$.", "\\frac{1}{2}"),
    ("nothing final here", None),
])
def test_math_answer_extraction(output, expected):
    assert math.extract_answer(output) == expected


def test_gsm8k_shots_from_train_and_known_completions_graded():
    spec = BENCHMARKS.get("gsm8k")
    docs, notes = spec.documents(fewshot=3, seed=0)
    assert len(docs) == 1319 and notes["fewshot_source"].startswith("GSM8K train")
    test_questions = {d["question"].strip() for d in docs}
    first = docs[0]
    assert all(s.startswith("train:") for s in first["shots"]) and len(first["shots"]) == 3
    shot_block = first["prompt"].rsplit("Question: ", 1)[0]
    assert not any(q in shot_block for q in list(test_questions)[:200])
    assert first["prompt"].endswith(f"Question: {first['question'].strip()}\nAnswer:")

    kind = spec.kind_impl
    right = [f" {gsm8k.target(d)}" for d in docs[:3]]
    hashes = [f" {docs[3]['solution']}\n#### {int(docs[3]['answer']):,}"]  # GSM8K's own format, 1,000 separators
    wrong = [f" {docs[4]['solution']}\nThe answer is: {int(docs[4]['answer']) + 1}", " I do not know."]
    scored = kind.score(spec, docs[:6], right + hashes + wrong, extra := {})
    assert scored.item_scores == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0] and scored.score == pytest.approx(4 / 6)
    assert extra["no_final_answer"] == 1 and "#### X" in extra["answer_extraction"]


def test_gsm8k_through_harness_score(tmp_path):
    from benchmarks.score import score_completions

    docs = BENCHMARKS.get("gsm8k").rows()
    rows = [{"idx": 0, "output": gsm8k.target(docs[0])}, {"question": docs[1]["question"], "output": "The answer is: -1"}]
    report = score_completions("gsm8k", rows)
    assert report["n_correct"] == 1 and report["n_items"] == 2 and report["protocol"]["kind"] == "gsm8k"
    assert report["stderr"] == pytest.approx(0.5)


def test_protocol_and_version_recorded_with_every_score(tiny):
    model, tok = tiny
    results = evaluate_model(model, tok, ["math-500-l5", "mmlu-physics"], limit=2, max_new_tokens=4,
                             fewshot={"math": 4, "mmlu": 1}, choice_engine="direct")
    assert results["math-500-l5"].protocol["fewshot"] == 4 and results["math-500-l5"].protocol["version"] == "2.0"
    assert results["math-500-l5"].prompt_format == math.MINERVA_FORMAT
    assert results["mmlu-physics"].protocol["fewshot"] == 1
    assert results["mmlu-physics"].protocol["details"]["shots_from"] == "test"
    with pytest.raises(ValueError, match="MMLU few-shot must be 0..5"):
        evaluate_model(model, tok, ["mmlu-cs"], fewshot={"mmlu": 6})


def test_the_subsample_depends_on_the_subsample_seed_only(tiny):
    model, tok = tiny
    a = evaluate_model(model, tok, ["mmlu-cs"], limit=5, subsample_seed=0, choice_engine="direct", continuous=False)
    b = evaluate_model(model, tok, ["mmlu-cs"], limit=5, subsample_seed=0, choice_engine="direct", continuous=False)
    c = evaluate_model(model, tok, ["mmlu-cs"], limit=5, subsample_seed=1, choice_engine="direct", continuous=False)
    assert a["mmlu-cs"].subsample == b["mmlu-cs"].subsample
    assert a["mmlu-cs"].subsample["ids_sha256"] != c["mmlu-cs"].subsample["ids_sha256"]


def test_every_model_call_of_an_evaluation_runs_in_the_precision_given(tiny):
    """A run scores its benchmarks in its own precision, whatever the model is: a peft model's generate runs its base
    model's forward, past a mixed-precision wrapper on the peft model's (accelerate's), so a LoRA run once sampled
    HumanEval in fp32 while a full fine-tuning run sampled in bf16."""
    import copy

    from peft import LoraConfig, get_peft_model

    model, tok = tiny
    lora = get_peft_model(copy.deepcopy(model), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    seen: list[torch.dtype] = []
    lora.get_base_model().lm_head.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    # greedy generation (the decoding loop), sampled generation (peft's generate), log-likelihoods, reference bits
    for precision, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        seen.clear()
        results = evaluate_model(lora, tok, ["humaneval", "mmlu-cs"], limit=2, max_new_tokens=4, batch_size=2,
                                 precision=precision)
        sampled = evaluate_model(lora, tok, ["humaneval"], limit=2, max_new_tokens=4, batch_size=2,
                                 options={"humaneval": {"samples": 2}}, continuous=False, precision=precision)
        assert len(seen) > 10 and set(seen) == {dtype}, precision
        assert results["humaneval"].extra["precision"] == sampled["humaneval"].extra["precision"] == precision
    with pytest.raises(ValueError, match="precision"):
        evaluate_model(lora, tok, ["mmlu-cs"], limit=2, precision="auto")
