"""Degenerate rows: the measure of a degenerate text, the pseudo-label rule that makes a weak labeller's answers
start and end, what a run records of both (label counts, the validation ``degenerate_share``), and the reason
a report gives for a row that should bear no claims."""

from __future__ import annotations

import json

import pytest
import torch

from harness.config import RunConfig, resolve_config
from harness.engine.degeneracy import degenerate_share, is_degenerate, no_answer_reason, repeated_ngram_share
from harness.engine.generate import Decoding, Generation, generations
from harness.io import atomic_write_json
from harness.method import method_overrides
from harness.runstore import RunDir
from methods import pseudolabels
from methods.pseudolabels import label_counts, label_decoding
from reports.collect import degenerate_reason, generations_degenerate_share, run_values
from tiny import tiny_llama, tiny_tokenizer

# --- the measure -------------------------------------------------------------------------------------------------

REAL = ["def add(x, y):\n    return x + y\n",
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether.\n"
        "The answer is: 72",
        "import numpy as np\n\ndef main_solution(a, b):\n    a = np.array(a)\n    b = np.array(b)\n"
        "    return (a - b).tolist()",
        "Answer:", "from the None."]  # short junk is no loop: it is what identical_labels catches
LOOPS = ["", "   \n\n\n\n\n", "the " * 40, "def None:\n    if None:\n" * 10, "2=" * 60, ")" * 80,
         "The total is the total is the total is " * 6, ">>> from theoptional" + "_1" * 30]


@pytest.mark.parametrize("text", REAL)
def test_real_answers_and_short_texts_are_not_degenerate(text):
    assert not is_degenerate(text)


@pytest.mark.parametrize("text", LOOPS)
def test_empty_texts_and_loops_are_degenerate(text):
    assert is_degenerate(text)


def test_repeated_share_counts_ngrams_seen_before():
    assert repeated_ngram_share("a b c d", n=2) == 0.0
    assert repeated_ngram_share("a b a b a", n=2) == pytest.approx(0.5)  # ab ba [ab] [ba]
    assert repeated_ngram_share("a b", n=8) == 0.0  # shorter than one n-gram
    assert degenerate_share(REAL + LOOPS) == pytest.approx(len(LOOPS) / (len(REAL) + len(LOOPS)))
    assert degenerate_share([]) == 0.0


# --- the label rule on a model built here -------------------------------------------------------------------------

TEXTS = ["### Instruction:\nAdd x and y.\n\n### Response:\ndef add(x, y):\n    return x + y\n\n\n\n"] * 8 \
    + ["A B C\n"] * 8


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer(TEXTS, vocab_size=300)


def scripted(tok, text_after: str, first: str = "\n") -> tuple[torch.nn.Module, list[int]]:
    """A tiny Llama whose greedy choices after a fixed prompt are scripted: ``first``, then ``text_after``'s tokens
    (the last one forever); "A" is its best first token when ``first`` is not allowed."""
    ids = lambda text: tok(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt = [tok.bos_token_id, *ids("### Instruction:\nAdd.\n\n### Response:\n")]
    wants, runner_up = [*ids(first), *ids(text_after)], ids("A")[0]
    model = tiny_llama(tok)
    real_forward = model.forward

    def forward(input_ids=None, past_key_values=None, **kwargs):
        seen = past_key_values.get_seq_length() if past_key_values is not None else 0
        out = real_forward(input_ids=input_ids, past_key_values=past_key_values, **kwargs)
        step = seen + input_ids.shape[1] - len(prompt)  # which new token these logits choose
        logits = out.logits.clone()
        logits[:, -1, wants[min(step, len(wants) - 1)]] += 1e4
        if step == 0:
            logits[:, -1, runner_up] += 5e3
        out.logits = logits
        return out

    model.forward = forward
    return model, prompt


def label(model, tok, prompt, rule: str, budget: int = 12) -> Generation:
    [g] = generations(model, tok, [prompt], label_decoding(rule, budget), batch_size=1)
    return g


def test_a_model_that_writes_blank_lines_gets_a_label_that_starts_and_ends(tok):
    model, prompt = scripted(tok, "\n")  # newline first, newlines forever: the micro experts' greedy labels
    before = label(model, tok, prompt, "eos")
    assert not before.text.strip() and not before.ended
    after = label(model, tok, prompt, "answer")
    assert after.text == "A" and after.ended  # content first, then cut at three blank lines


def test_a_bos_or_the_next_instruction_ends_an_answer(tok):
    for rest in (tok.bos_token, "\n### Instruction:\nMore."):
        model, prompt = scripted(tok, rest, first="A")
        g = label(model, tok, prompt, "answer", budget=20)
        assert g.text.rstrip() == "A" and g.ended, rest
    model, prompt = scripted(tok, tok.bos_token, first="A")
    assert not label(model, tok, prompt, "eos").ended  # the old rule writes BOS to the budget, skipped as special


def test_eos_ends_under_both_rules_and_the_budget_does_not(tok):
    model, prompt = scripted(tok, tok.eos_token, first="A")
    assert [(g.text, g.ended) for g in (label(model, tok, prompt, r) for r in ("eos", "answer"))] == [("A", True)] * 2
    model, prompt = scripted(tok, "B", first="A")
    g = label(model, tok, prompt, "answer", budget=5)
    assert not g.ended and g.text.replace(" ", "").startswith("AB")


def test_content_first_batches_like_one_at_a_time_and_serves_proxytuning(tok):
    from harness.data.batches import encode_prompt
    from methods.proxytuning import ProxyTuned

    model = tiny_llama(tok, seed=3)
    prompts = [encode_prompt(tok, text, 64) for text in ("Add x and y.", "A B C A B C A B C, then add x and y.")]
    answer = label_decoding("answer", 6)
    alone = [generations(model, tok, [p], answer, batch_size=1)[0] for p in prompts]
    assert generations(model, tok, prompts, answer, batch_size=2) == alone  # left padding changes nothing
    same = torch.arange(len(tok))
    proxy = ProxyTuned(tiny_llama(tok, seed=1), tiny_llama(tok, seed=2), model, expert_map=same, anti_map=same)
    assert all(g.text.strip() for g in generations(proxy, tok, prompts, answer, batch_size=2))


def test_validation_decoding_is_unchanged():
    assert Decoding(128) == label_decoding("eos", 128)  # the rule validation and the old labels decode with
    assert label_decoding("answer", 128).content_first and label_decoding("answer", 128).stop_at_bos
    with pytest.raises(ValueError, match="greedily"):
        Decoding(8, do_sample=True, content_first=True)


def test_the_rule_is_recorded_in_config_and_label_key():
    weak = resolve_config(given={"method": "weak2strong", "suite": "code", "scale": "nano"},
                          method_overrides_for=method_overrides)
    lora = resolve_config(given={"method": "lora", "suite": "code", "scale": "nano"},
                          method_overrides_for=method_overrides)
    assert weak.pseudo_labels.label_rule == "answer" and lora.pseudo_labels.label_rule == "eos"
    assert "label_rule" not in json.dumps(_identity(lora))  # neutral: ids of runs without labels are unchanged
    assert "label_rule" in json.dumps(_identity(weak))  # the labels changed, so the weak2strong ids do
    plans = [pseudolabels.LabelPlan({"weak": "w"}, "generate", label_decoding(rule, 8), 64, 128, (0,))
             for rule in ("eos", "answer")]
    records = [{"id": "0", "instruction": "x", "response": "y"}]
    assert plans[0].key(records) != plans[1].key(records)


def _identity(config: RunConfig) -> dict:
    from harness.config import _run_identity as identity

    return identity(config)


# --- what a run records -----------------------------------------------------------------------------------------

def test_label_counts_and_warning(tmp_path, monkeypatch):
    rows = [{"response": "Answer:", "ended": True}] * 3 + [{"response": "x = 1", "ended": False}]
    counts = label_counts(rows)
    assert counts == {"empty_labels": 0, "ended_labels": 3, "degenerate_labels": 0, "identical_labels": 3,
                      "most_common_label": "Answer:"}
    assert label_counts([{"response": "a"}])["ended_labels"] is None  # teacher-forced: its labels do not say
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    from types import SimpleNamespace

    records = [{"id": str(i), "instruction": f"task {i}", "response": "x"} for i in range(4)]
    ctx = SimpleNamespace(train_records=records, phase=lambda name: __import__("contextlib").nullcontext())
    plan = pseudolabels.LabelPlan({"weak": "w"}, "generate", label_decoding("answer", 4), 64, 128, (0, 1, 2, 3))
    written = [Generation("Answer:", True)] * 3 + [Generation("y", False)]
    _, report = pseudolabels.pseudo_label(ctx, plan, lambda rs: written, "test")
    assert report["ended_labels"] == 3 and "3 of 4 pseudo-labels the same text ('Answer:')" in report["warning"]
    _, again = pseudolabels.pseudo_label(ctx, plan, lambda rs: pytest.fail("cached"), "test")
    assert again["cached"] and again["ended_labels"] == 3  # endings are kept in the cache


def test_validation_logs_the_degenerate_share(tok):
    from harness.engine.trainer import evaluate_validation

    config = resolve_config(given={"scale": "nano"}, overrides=["eval.max_new_tokens=6", "training.precision=fp32"])
    records = [{"id": str(i), "instruction": "Add x and y.", "response": "def add(x, y):"} for i in range(3)]
    scores = evaluate_validation(tiny_llama(tok), tok, config, records)
    assert 0.0 <= scores["degenerate_share"] <= 1.0 and "rouge1" in scores


# --- reports --------------------------------------------------------------------------------------------------------

def test_no_answer_reason_needs_more_than_half():
    assert no_answer_reason({"n": 400, "empty": 398}) == "398 of 400 pseudo-labels empty"
    assert no_answer_reason({"n": 4, "empty": 2, "degenerate": 2, "identical": 2}) is None  # half is not more
    assert no_answer_reason({"n": 1, "identical": 1, "most_common": "ok"}) is None  # one label repeats nothing
    assert no_answer_reason({}) is None


def test_degenerate_reason_on_synthetic_rows():
    clean = {"labels": None, "step": 500, "best_step": 300, "generations_degenerate_share": 0.1,
             "generations_degenerate_share_best": 0.0}
    assert degenerate_reason(clean) is None
    assert degenerate_reason({**clean, "generations_degenerate_share": 0.93}) == \
        "93% of validation generations degenerate at step 500"
    assert degenerate_reason({**clean, "generations_degenerate_share_best": 0.6}) == \
        "60% of validation generations degenerate at step 300"
    assert degenerate_reason({**clean, "labels": {"n": 64, "empty": 0, "degenerate": 0, "identical": 64,
                                                  "most_common": "Answer:"}}) == \
        "64 of 64 pseudo-labels the same text ('Answer:')"
    old_run = {**clean, "labels": {"n": 400, "empty": 399, "degenerate": None, "identical": None}}
    assert degenerate_reason(old_run) == "399 of 400 pseudo-labels empty"  # a run from before the other counts
    assert degenerate_reason({"generations_degenerate_share": None}) is None  # nothing measured: no reason


def test_run_values_expose_label_and_generation_degeneracy(tmp_path):
    config = resolve_config(given={"method": "weak2strong", "suite": "code", "scale": "nano"},
                            method_overrides_for=method_overrides)
    run = RunDir(tmp_path / "run")
    atomic_write_json(run.config_path, config.to_dict())
    atomic_write_json(run.path / "prepare.json", {"pseudo_labels": {"n_labelled": 10, "empty_labels": 1,
                                                                   "ended_labels": 9, "degenerate_labels": 2,
                                                                   "identical_labels": 6, "most_common_label": "x"}})
    # step 2 logged its share; step 4 is a run from before the metric: measured on its samples
    rows = [{"step": s, "phase": "eval", "metric": "rouge1", "value": v} for s, v in ((2, 0.3), (4, 0.1))]
    rows += [{"step": 2, "phase": "eval", "metric": "degenerate_share", "value": 0.25},
             {"step": 4, "phase": "eval", "metric": "best_step", "value": 2}]
    run.metrics_path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run.samples_dir.mkdir()
    (run.samples_dir / "validation-step-4.jsonl").write_text("".join(
        json.dumps({"id": str(i), "prediction": p, "reference": "y"}) + "\n"
        for i, p in enumerate(["the " * 30, "", "x = 1", "the " * 30])))
    values = run_values(run)
    assert values["labels_empty_share"] == 0.1 and values["labels_ended_share"] == 0.9
    assert values["labels_degenerate_share"] == 0.2 and values["labels_identical_share"] == 0.6
    assert values["step"] == 4 and values["generations_degenerate_share"] == 0.75
    assert values["best_step"] == 2 and values["generations_degenerate_share_best"] == 0.25
    assert dict(values["curves"]["degenerate_share"]) == {2: 0.25, 4: None}
    assert degenerate_reason(values) == "6 of 10 pseudo-labels the same text ('x')"
    assert generations_degenerate_share(run, None, {}) is None
