"""The paper preset must run: prompt budgets, fp32 master weights under autocast, the loss scale in
checkpoints, and a CPU rehearsal of the preset's exact code path on the nano family."""

from __future__ import annotations

import math

import pytest
import torch

from harness.config import resolve_config
from harness.engine.plan import plan_run
from harness.engine import checkpoint as ckpt
from harness.engine.adapters import apply_adapters
from harness.data.batches import IGNORE, cut_middle, encode_example, encode_prompt
from harness.engine.trainer import Trainer
from harness.io import read_json, read_jsonl
from harness.method import method_overrides
from harness.prompts import format_prompt
from tiny import tiny_llama, tiny_tokenizer
TEXTS = [f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(48)]
RECORDS = [{"id": str(i), "instruction": f"write f{i} " + "and explain it " * (i % 5), "response": t}
           for i, t in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer(TEXTS + [format_prompt("x")], vocab_size=300)


def test_long_prompts_lose_their_middle_and_keep_the_response_marker(tok):
    instruction = "start " + "lorem ipsum dolor " * 200 + "the end"
    ids = encode_prompt(tok, instruction, 64)
    assert len(ids) == 64 and ids[0] == tok.bos_token_id
    text = tok.decode(ids, skip_special_tokens=True)
    assert text.startswith("### Instruction:\nstart") and text.endswith("the end\n\n### Response:\n")
    assert cut_middle(list(range(10)), 4) == [0, 1, 8, 9] and cut_middle([1, 2], 4) == [1, 2]


def test_training_and_generation_see_the_same_prompt(tok):
    instruction = "explain " * 300
    prompt = encode_prompt(tok, instruction, 100)
    example = encode_example(tok, instruction, "return 1", seq_len=160, max_prompt_tokens=100)
    assert example.input_ids[: example.prompt_len] == prompt
    assert example.labels[example.prompt_len:] != [IGNORE] * (len(example.labels) - example.prompt_len)


def test_trainable_weights_are_fp32_masters_under_bf16_autocast(tok, tmp_path):
    """A half-precision model with a trainable embedding trains (fp16 on CUDA stopped at step 1)."""
    cfg = resolve_config(given={"scale": "nano"}, overrides=["training.max_steps=2", "training.eval_every=2",
                                                               "training.checkpoint_steps=[2]",
                                                               "training.precision=bf16", "training.warmup_steps=0"])
    model = tiny_llama(tok, seed=0).to(torch.bfloat16)
    model = apply_adapters(model, cfg.training)
    trainer = Trainer(model, tok, cfg, RECORDS[4:], RECORDS[:4], checkpoints_dir=tmp_path, emit=lambda rows: None,
                      progress=False)
    trainable = [p for p in trainer.model.parameters() if p.requires_grad]
    frozen = [p for p in trainer.model.parameters() if not p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)  # storage stays half: memory as planned
    embedding = trainer.model.get_input_embeddings().weight
    before = embedding.detach().clone()
    out = trainer.train_step(0)
    assert math.isfinite(out["loss"]) and not torch.equal(before, embedding.detach())


def test_checkpoints_carry_the_fp16_loss_scale(tmp_path):
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    final = tmp_path / "step-3"
    ckpt.write_checkpoint(final, trainable={"w": torch.ones(2)}, optimizer_state={}, scheduler_state={},
                          trainer_state={"step": 3}, scaler_state=scaler.state_dict())
    ckpt.write_rng(final, 0)
    ckpt.publish(final)
    restored = torch.amp.GradScaler("cpu")
    restored.load_state_dict(ckpt.load_checkpoint(final, 0)["scaler"])
    assert restored.get_scale() == 1024.0


def test_rehearsal_of_the_paper_preset(nano_zoo, tmp_path):
    """The paper preset's code path with nano models: prompt budgets, finite loss, checkpoints, resume."""
    from harness.engine.run import execute
    from harness.rehearsal import rehearsal_overrides

    config = resolve_config(given={"method": "pen2sword", "suite": "code", "scale": "paper"},
                            overrides=rehearsal_overrides(), method_overrides_for=method_overrides)
    paper = resolve_config(given={"scale": "paper"})
    assert (config.training.seq_len, config.training.lr, config.training.batch_size, config.training.lora_target_modules,
            config.data.max_prompt_tokens) == (paper.training.seq_len, paper.training.lr, paper.training.batch_size,
                                               paper.training.lora_target_modules, paper.data.max_prompt_tokens)
    run = execute(plan_run(config, tmp_path), progress=False)
    assert run.is_completed(), run.status()
    assert read_json(run.config_path)["scale"] == "paper"
    provenance = read_json(run.provenance_path)
    assert provenance["training_data"]["source"] == "offline"
    assert provenance["precision"]["value"] == read_json(run.config_path)["training"]["precision"]

    samples = list(read_jsonl(run.samples_dir / "validation-step-0.jsonl"))
    assert samples and all(64 <= s["prompt_tokens"] <= config.data.max_prompt_tokens for s in samples)
    losses = [r["value"] for r in run.metrics() if r["metric"] == "loss"]
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)
    assert ckpt.is_complete(run.checkpoint_dir(2)) and ckpt.is_complete(run.checkpoint_dir(4))

    # Resume: drop the last checkpoint and the steps after 2, as a kill after step 2 would leave it.
    import shutil

    straight = sorted((r["step"], r["metric"], r["value"]) for r in run.metrics()
                      if r["phase"] in ("train", "eval") and r["metric"] in ("loss", "rouge1", "eval_loss"))
    shutil.rmtree(run.checkpoint_dir(4))
    run.set_status("running", pid=2**22 + 12345)  # a pid that is not alive
    again = execute(plan_run(config, tmp_path), progress=False)
    rows = {}
    for r in again.metrics():  # the latest attempt of each row
        if r["phase"] in ("train", "eval") and r["metric"] in ("loss", "rouge1", "eval_loss"):
            rows[(r["step"], r["metric"])] = r["value"]
    assert sorted((s, m, v) for (s, m), v in rows.items()) == straight
