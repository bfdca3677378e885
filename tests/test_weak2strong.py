"""Weak2Strong and Pen2Sword + Weak2Strong: the target trains on the weak model's pseudo-labels (not
the ground truth), labels are cached across runs, the official teacher-forced labels are shifted."""

from __future__ import annotations

import json

import pytest
import torch

from harness.config import resolve_config
from harness.engine.plan import plan_run
from harness.data import records_hash
from harness.data.batches import StepOrder
from harness.engine import run as engine_run
from harness.engine.run import execute
from harness.io import read_json
from harness.method import method_overrides
from methods import pseudolabels
QUICK = ["training.max_steps=3", "training.eval_every=3", "training.checkpoint_steps=[3]", "eval.benchmarks=false",
         "pseudo_labels.max_new_tokens=8"]


def nano(method: str, *overrides: str):
    return resolve_config(given={"method": method, "suite": "code", "scale": "nano"}, overrides=[*QUICK, *overrides],
                          method_overrides_for=method_overrides)


@pytest.fixture
def spy_trainer(monkeypatch):
    """The records every Trainer of the test is built with."""
    seen: list[list[dict]] = []
    real = engine_run.Trainer

    def trainer(model, tokenizer, config, train_records, *args, **kwargs):
        seen.append(list(train_records))
        return real(model, tokenizer, config, train_records, *args, **kwargs)

    monkeypatch.setattr(engine_run, "Trainer", trainer)
    return seen


@pytest.mark.parametrize("method", ["weak2strong", "pen2sword+weak2strong"])
def test_the_target_trains_on_the_pseudo_labels(method, nano_zoo, tmp_path, spy_trainer, monkeypatch):
    calls = []
    real_writer = pseudolabels.model_writer

    def writer(ctx, model, tokenizer, plan):
        write = real_writer(ctx, model, tokenizer, plan)

        def spy(records):
            calls.append(len(records))
            return [f"PSEUDO {g.text}" for g in write(records)]  # marked, so the test can tell them apart
        return spy

    monkeypatch.setattr("methods.weak2strong.model_writer", writer)
    # A decoding budget of its own per case: the session cache must not answer from another test's labels.
    config = nano(method, f"pseudo_labels.max_new_tokens={6 if method == 'weak2strong' else 7}")
    run = execute(plan_run(config, tmp_path), progress=False)
    assert run.is_completed(), run.status()
    [trained] = spy_trainer
    order = StepOrder(len(trained), config.training.batch_size, config.seed)
    reached = {i for step in range(3) for i in order.global_batch(step)}
    assert calls == [len(reached)]  # only what training reaches is labelled
    assert all(trained[i]["response"].startswith("PSEUDO") for i in reached)
    assert all(trained[i]["response"] == "" for i in set(range(len(trained))) - reached)
    provenance = read_json(run.provenance_path)
    assert provenance["trained_on"]["sha256"] == records_hash(trained)
    assert provenance["trained_on"]["source"].startswith("pseudo-labels by code-expert")
    assert "weak" in provenance["models"]
    report = read_json(run.path / "prepare.json")["pseudo_labels"]
    assert report["cached"] is False and report["n_labelled"] == len(reached)
    assert [r for r in run.metrics() if r["phase"] == "pseudo_labels" and r["metric"] == "phase_seconds"]
    if method.startswith("pen2sword"):
        assert "transfer" in read_json(run.path / "prepare.json")


def test_pseudo_labels_are_cached_across_runs(nano_zoo, tmp_path, spy_trainer, monkeypatch):
    first = execute(plan_run(nano("weak2strong"), tmp_path / "a"), progress=False)
    calls = []
    monkeypatch.setattr("methods.weak2strong.model_writer",
                        lambda *a, **k: calls.append(1) or (lambda records: pytest.fail("labels written again")))
    second = execute(plan_run(nano("weak2strong"), tmp_path / "b"), progress=False)
    assert calls == [1] or calls == []  # a writer may be built, but it never writes
    one, two = (read_json(r.path / "prepare.json")["pseudo_labels"] for r in (first, second))
    assert one["cached"] is False and two["cached"] is True and one["cache_key"] == two["cache_key"]
    assert spy_trainer[0] == spy_trainer[1]
    # Another decoding budget is another key: written afresh.
    monkeypatch.undo()
    third = execute(plan_run(nano("weak2strong", "pseudo_labels.max_new_tokens=4"), tmp_path / "c"), progress=False)
    assert read_json(third.path / "prepare.json")["pseudo_labels"]["cache_key"] != one["cache_key"]


def test_teacher_forced_labels_are_the_shifted_argmax():
    from tiny import benchmark_llama as tiny_llama, benchmark_tokenizer as tiny_tokenizer
    from harness.data.batches import encode_example
    from harness.engine.generate import Decoding

    tok = tiny_tokenizer()
    model = tiny_llama(tok, seed=3)
    records = [{"id": "a", "instruction": "Add two numbers.", "response": "def add(a, b):\n    return a + b"},
               {"id": "b", "instruction": "Say hi.", "response": "print('hi')"}]
    plan = pseudolabels.LabelPlan({"weak": {}}, "teacher-forced", Decoding(8), max_prompt_tokens=64, seq_len=128,
                                  reached=(0, 1))
    labels = pseudolabels.teacher_forced_labels(model, tok, records, plan, batch_size=2, precision="fp32")
    for record, label in zip(records, labels):
        example = encode_example(tok, record["instruction"], record["response"], 128, "response", 64)
        with torch.no_grad():
            logits = model(torch.tensor([example.input_ids])).logits[0]
        start = example.prompt_len  # the first response token, predicted by the prompt's last position
        expected = [int(logits[t - 1].argmax()) for t in range(start, len(example.input_ids))]
        assert label == tok.decode(expected, skip_special_tokens=True)
        unshifted = [int(logits[t].argmax()) for t in range(start, len(example.input_ids))]
        assert unshifted != expected  # the official code's bug would be visible


def test_reached_indices_follow_the_step_order():
    order = StepOrder(20, 4, seed=5)
    assert set(pseudolabels.reached_indices(20, 4, 2, 5)) == set(order.global_batch(0) + order.global_batch(1))
    assert sorted(pseudolabels.reached_indices(20, 4, 100, 5)) == list(range(20))


# --- fine-tuning transfer (Lin et al. 2025), the baseline added "in an afternoon" ----------------------

def test_finetuning_transfer_adds_the_diff_and_zero_pads_new_rows():
    from tiny import benchmark_llama as tiny_llama, benchmark_tokenizer as tiny_tokenizer
    from harness.config import ConfigError
    from methods.finetuning_transfer import add_diff

    tok = tiny_tokenizer()
    target, base = tiny_llama(tok, seed=1), tiny_llama(tok, seed=2)
    donor = tiny_llama(tok, seed=3)
    donor.resize_token_embeddings(len(tok) + 2, mean_resizing=False)  # a donor with 2 extra tokens
    before = {n: p.detach().clone() for n, p in target.named_parameters()}
    report = add_diff(target, donor, base)
    assert report["rows_added"] == 2 and report["lambda"] == 1.0
    k = len(tok)
    for name, p in target.named_parameters():
        d, b = dict(donor.named_parameters())[name], dict(base.named_parameters())[name]
        if p.shape[0] == k + 2:  # embedding / lm_head: shared rows get the diff, new rows the donor's own
            torch.testing.assert_close(p[:k], before[name] + d[:k] - b)
            torch.testing.assert_close(p[k:], d[k:])
        else:
            torch.testing.assert_close(p, before[name] + d - b)
    with pytest.raises(ConfigError, match="equal shapes"):
        add_diff(tiny_llama(tok, hidden=32), tiny_llama(tok, hidden=16), tiny_llama(tok, hidden=16))


def test_fine_tuned_weak_supervisor_is_a_sub_run_on_the_other_half(nano_zoo, tmp_path, spy_trainer):
    config = nano("weak2strong", "pseudo_labels.weak_supervisor=fine-tuned", "pseudo_labels.max_new_tokens=5")
    run = execute(plan_run(config, tmp_path), progress=False)
    assert run.is_completed(), run.status()
    [sub] = read_json(run.provenance_path)["sub_runs"]
    assert sub["method"] == "lora" and sub["state"] == "completed" and "weak supervisor" in sub["purpose"]
    sub_config = read_json(f"{sub['run_dir']}/config.json")
    assert sub_config["model"]["target"] == "code-expert" and sub_config["data"]["train_part"] == "first-half"
    supervisor_records, target_records = spy_trainer  # the sub-run's trainer first, then the parent's
    assert not {r["id"] for r in supervisor_records} & {r["id"] for r in target_records}  # disjoint halves
    assert any(r["response"] for r in target_records)
    report = read_json(run.path / "prepare.json")["pseudo_labels"]
    assert report["weak_supervisor"] == sub["run_dir"] and "fine-tuned on the first half" in report["source"]
    again = execute(plan_run(config, tmp_path), progress=False, force=True)  # the sub-run is skipped now
    assert read_json(again.provenance_path)["sub_runs"][0]["run_dir"] == sub["run_dir"] and len(spy_trainer) == 3


def test_mostly_empty_pseudo_labels_are_flagged(tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    from harness.engine.generate import Decoding

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    records = [{"id": str(i), "instruction": f"task {i}", "response": "x"} for i in range(4)]
    ctx = SimpleNamespace(train_records=records, phase=lambda name: __import__("contextlib").nullcontext())
    plan = pseudolabels.LabelPlan({"weak": {"name": "w"}}, "generate", Decoding(4), 64, 128, reached=(0, 1, 2, 3))
    labelled, report = pseudolabels.pseudo_label(ctx, plan, lambda rs: ["\n\n", "", "  ", "def f(): pass"], "test")
    assert report["empty_labels"] == 3 and "3 of 4 pseudo-labels empty" in report["warning"]
    assert "warning: 3 of 4" in capsys.readouterr().err
    useful = pseudolabels.LabelPlan({"weak": {"name": "w"}}, "generate", Decoding(4), 64, 128, reached=(3,))
    _, fine = pseudolabels.pseudo_label(ctx, useful, lambda rs: ["def f(): pass"], "test")
    assert "warning" not in fine
