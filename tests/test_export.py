"""A finished run rebuilt from its directory, and exported as a model directory that loads without the
harness: the same model the run evaluated, Pen2Sword's transferred base and new tokens included."""

from __future__ import annotations

import json

import pytest
import torch

from harness.cli import main
from harness.engine.plan import plan_run
from harness.config import resolve_config
from harness.method import method_overrides
QUICK = ["training.max_steps=2", "training.eval_every=1", "training.checkpoint_steps=[1,2]", "eval.benchmarks=false",
         "data.n_validation=4", "eval.max_new_tokens=4"]


@pytest.fixture(scope="module")
def pen2sword_run(nano_zoo, tmp_path_factory):
    from harness.engine.run import execute

    config = resolve_config(given={"method": "pen2sword", "suite": "code", "scale": "nano"}, overrides=QUICK,
                            method_overrides_for=method_overrides)
    return execute(plan_run(config, tmp_path_factory.mktemp("export") / "results"), progress=False)


def logged(run, step: int, metric: str) -> float:
    return next(r["value"] for r in run.latest_metrics()
                if r["phase"] == "eval" and r["step"] == step and r["metric"] == metric)


def test_a_rebuilt_run_scores_what_the_run_logged(pen2sword_run):
    from harness.config import config_from_dict
    from harness.data import load_dataset, train_validation_split
    from harness.suites import SUITES
    from harness.engine.run import load_run_model
    from harness.engine.validation import eval_loss
    from harness.io import read_json

    run = pen2sword_run
    assert read_json(run.path / "prepare.json")  # a real transfer happened (its report)
    config = config_from_dict(read_json(run.config_path))
    records = train_validation_split(load_dataset(SUITES.get("code").train_dataset, config.data.source),
                                     config.data.n_validation, config.data.split_seed).validation
    assert [r["id"] for r in records] == read_json(run.path / "split.json")["validation_ids"]
    for step in (1, 2):
        model, tokenizer, info = load_run_model(run.path, step)
        assert info["step"] == step and info["method"] == "pen2sword"
        loss = eval_loss(model, tokenizer, records, seq_len=config.training.seq_len,
                         batch_size=config.eval.eval_batch_size, loss_on=config.training.loss_on,
                         max_prompt_tokens=config.data.max_prompt_tokens, precision=config.training.precision)
        # The replayed prepare (transfer, new tokens) and the step's trainable tensors give the model the run
        # evaluated at that step; a base without the transfer, or another step's tensors, would not.
        assert loss["eval_loss"] == pytest.approx(logged(run, step, "eval_loss"), abs=1e-5)


def test_export_writes_a_model_directory_that_loads_without_the_harness(pen2sword_run, tmp_path, capsys):
    from benchmarks.cli import load_model_and_tokenizer
    from harness.engine.run import load_run_model

    out = tmp_path / "exported"
    assert main(["export", str(pen2sword_run.path), "--out", str(out), "--step", "2"]) == 0
    assert (out / "config.json").is_file() and (out / "export.json").is_file()
    precision = json.loads((pen2sword_run.path / "config.json").read_text())["training"]["precision"]
    assert precision in ("fp32", "bf16") and json.loads((out / "export.json").read_text())["precision"] == precision
    assert f"--precision {precision}`" in capsys.readouterr().out  # the command that scores it as the run did
    assert not list(tmp_path.glob(".*partial"))
    exported, exported_tok = load_model_and_tokenizer(str(out))
    rebuilt, tokenizer, _ = load_run_model(pen2sword_run.path, 2)
    assert len(exported_tok) == len(tokenizer)  # the extended vocabulary travels with it
    ids = tokenizer("def add(a, b):\n    return a + b", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(exported(ids).logits, rebuilt(ids).logits, atol=1e-4)
    assert not hasattr(exported, "peft_config")  # merged: a plain transformers model


def test_export_refuses_what_it_cannot_write(pen2sword_run, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    assert main(["export", str(pen2sword_run.path), "--out", str(tmp_path / "taken")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["export", str(pen2sword_run.path), "--out", str(tmp_path / "a"), "--step", "7"]) == 2
    err = capsys.readouterr().err
    kept = sorted(int(d.name.removeprefix("step-")) for d in pen2sword_run.checkpoints_dir.iterdir())
    assert f"no checkpoint at step 7; it kept steps {kept}" in err and {1, 2} <= set(kept)
    assert main(["export", str(pen2sword_run.path), "--out", str(tmp_path / "b"), "--step", "soon"]) == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
