"""§4.5 stage (i): the expert's embedding layer pre-trained further before the transfer, as a sub-run."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from harness.config import resolve_config
from harness.engine.plan import plan_run
from harness.engine.run import execute
from harness.io import read_json
from harness.method import method_overrides
from harness.runstore import find_runs
QUICK = ["training.max_steps=2", "training.eval_every=2", "training.checkpoint_steps=[2]", "eval.benchmarks=false",
         "data.n_validation=4", "eval.max_new_tokens=4"]


def nano(*overrides: str):
    return resolve_config(given={"method": "pen2sword", "suite": "code", "scale": "nano"},
                          overrides=[*QUICK, *overrides], method_overrides_for=method_overrides)


def eval_loss_at_0(run) -> float:
    return next(r["value"] for r in run.metrics() if r["phase"] == "eval" and r["step"] == 0
                and r["metric"] == "eval_loss")


def test_the_warmup_trains_the_experts_embedding_alone_and_feeds_the_transfer(nano_zoo, tmp_path):
    from harness import models

    plain = execute(plan_run(nano(), tmp_path), progress=False)
    warmed = execute(plan_run(nano("pen2sword.embedding_warmup_steps=3"), tmp_path), progress=False)
    warmups = [r for r in find_runs(tmp_path) if r.path.parent.name == "embedding-warmup"]
    assert len(warmups) == 1
    warmup = warmups[0]
    config = read_json(warmup.config_path)
    assert config["model"]["target"] == "code-expert" and config["training"]["max_steps"] == 3
    assert (config["training"]["peft"], config["training"]["train_embeddings"]) == ("none", True)
    assert config["training"]["loss_on"] == "full"  # pre-training on the text, not instruction tuning

    # Only the embedding trained, and it moved away from the expert's own.
    state = load_file(warmup.checkpoint_dir(3) / "trainable.safetensors")
    assert list(state) == ["model.embed_tokens.weight"]
    expert = models.load_model(models.resolve_model("code-expert", scale="nano"))
    assert not torch.equal(state["model.embed_tokens.weight"], expert.get_input_embeddings().weight.detach())

    # The transfer took the warmed expert: recorded, and the transferred model starts elsewhere.
    info = read_json(warmed.path / "prepare.json")["embedding_warmup"]
    assert info == {"run_dir": str(warmup.path), "steps": 3}
    assert read_json(warmed.provenance_path)["models"]["expert"]["embedding_warmup"] == warmup.path.name
    assert eval_loss_at_0(warmed) != eval_loss_at_0(plain)
    assert "embedding_warmup" not in read_json(plain.path / "prepare.json")

    # Another Pen2Sword run on the same expert and data reuses the warm-up instead of training it again.
    execute(plan_run(nano("pen2sword.embedding_warmup_steps=3", "alpha=0.25"), tmp_path), progress=False)
    assert len([r for r in find_runs(tmp_path) if r.path.parent.name == "embedding-warmup"]) == 1
