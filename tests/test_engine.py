"""The shared engine: loss masking, data order, ROUGE tokenisation, exact resume, data parallelism."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from harness.config import resolve_config
from harness.engine.adapters import apply_adapters, trainable_summary
from harness.data.batches import IGNORE, StepOrder, collate, encode_example
from harness.engine.validation import CodeTokenizer, rouge_f1
from harness.engine.trainer import Trainer
from tiny import tiny_llama, tiny_tokenizer

TESTS = Path(__file__).parent
TEXTS = [f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(48)]
RECORDS = [{"id": str(i), "instruction": f"write f{i}", "response": t} for i, t in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer(TEXTS, vocab_size=300)


def test_response_only_loss_masks_the_prompt(tok):
    e = encode_example(tok, "write f1", "return 1", seq_len=64)
    assert e.input_ids[0] == tok.bos_token_id and e.input_ids[-1] == tok.eos_token_id
    assert all(label == IGNORE for label in e.labels[: e.prompt_len])
    assert e.labels[e.prompt_len:] == e.input_ids[e.prompt_len:]
    full = encode_example(tok, "write f1", "return 1", seq_len=64, loss_on="full")
    assert full.labels == full.input_ids  # the official code's prompt+response loss
    short = encode_example(tok, "write f1", "return 1", seq_len=8)
    assert len(short.input_ids) == 8


def test_collate_pads_without_labels(tok):
    a = encode_example(tok, "a", "x", 32)
    b = encode_example(tok, "a much longer instruction", "y = x + 1", 32)
    batch = collate([a, b], pad=tok.pad_token_id)
    n = len(a.input_ids)
    assert batch["attention_mask"][0, n:].sum() == 0
    assert (batch["labels"][0, n:] == IGNORE).all()


def test_step_order_is_seeded_and_rank_slices_partition_the_batch():
    order = StepOrder(50, 8, seed=3)
    again = StepOrder(50, 8, seed=3)
    assert [order.global_batch(s) for s in range(12)] == [again.global_batch(s) for s in range(12)]
    assert order.global_batch(0) != StepOrder(50, 8, seed=4).global_batch(0)
    epoch0 = sum((order.global_batch(s) for s in range(order.steps_per_epoch)), [])
    assert len(set(epoch0)) == len(epoch0)  # no example twice within an epoch
    halves = order.rank_batch(5, 0, 2) + order.rank_batch(5, 1, 2)
    assert halves == order.global_batch(5)


def test_code_rouge_keeps_operators():
    assert CodeTokenizer().tokenize("x+=1 if a==b else y**2") == ["x", "+=", "1", "if", "a", "==", "b", "else",
                                                                  "y", "**", "2"]
    code = rouge_f1(["x+1"], ["y-1"], "code")["rouge1"]
    default = rouge_f1(["x+1"], ["y-1"], "default")["rouge1"]
    assert code < default  # rouge-score's own tokenizer drops the operators, overrating the match
    assert rouge_f1(["return a == b"], ["return a == b"], "code")["rouge1"] == 1.0


def make_trainer(tok, tmp_path, overrides=(), rows=None):
    cfg = resolve_config(given={"scale": "nano"}, overrides=["training.max_steps=6", "training.eval_every=2",
                                                               "training.checkpoint_steps=[2,4,6]", *overrides])
    model = apply_adapters(tiny_llama(tok, seed=0), cfg.training)
    return Trainer(model, tok, cfg, RECORDS[4:], RECORDS[:4], checkpoints_dir=tmp_path / "checkpoints",
                   emit=(rows if rows is not None else []).extend, progress=False)


def train_rows(rows):
    return sorted((r["step"], r["metric"], r["value"]) for r in rows
                  if r["phase"] in ("train", "eval") and r["metric"] in ("loss", "lr", "grad_norm", "rouge1",
                                                                           "eval_loss"))


def test_resume_is_exact(tok, tmp_path):
    """N straight steps == k steps + kill + resume + N-k steps (identical metrics on CPU)."""
    straight: list[dict] = []
    make_trainer(tok, tmp_path / "a", rows=straight).fit()

    interrupted: list[dict] = []
    first = make_trainer(tok, tmp_path / "b", rows=interrupted)
    real_step = first.train_step

    def dying_step(step):
        if step == 4:  # steps 1-4 done, checkpoint at 4 written: die inside step 5
            raise KeyboardInterrupt("killed")
        return real_step(step)

    first.train_step = dying_step
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    from harness.engine import checkpoint as ckpt

    last = ckpt.latest(tmp_path / "b" / "checkpoints")
    assert last.name == "step-4"
    resumed: list[dict] = []
    second = make_trainer(tok, tmp_path / "b", rows=resumed)  # a fresh process: same init, then load
    second.resume_from(last)
    second.fit()
    combined = [r for r in interrupted if r["step"] <= 4] + resumed
    assert train_rows(combined) == train_rows(straight)
    assert len([r for r in train_rows(straight) if r[1] == "loss"]) == 6


def test_checkpoints_hold_what_resume_needs(tok, tmp_path):
    trainer = make_trainer(tok, tmp_path)
    trainer.fit()
    step = tmp_path / "checkpoints" / "step-4"
    names = {p.name for p in step.iterdir()}
    assert {"trainable.safetensors", "optimizer.pt", "scheduler.pt", "rng-rank0.pt", "trainer_state.json"} <= names
    state = json.loads((step / "trainer_state.json").read_text())
    assert state["step"] == 4 and state["data_position"]["next_step"] == 4
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    best = f"step-{trainer.state.best_step}"
    assert set(kept) == {"step-2", "step-4", "step-6", best}  # listed steps + best only


def test_embedding_trainable_beside_lora(tok):
    cfg = resolve_config(given={"scale": "nano"})
    model = apply_adapters(tiny_llama(tok), cfg.training)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("embed_tokens" in n for n in names) and any("lora_A" in n and "q_proj" in n for n in names)
    assert not any("v_proj" in n for n in names)
    frozen = apply_adapters(tiny_llama(tok), resolve_config(
        given={"scale": "nano"}, overrides=["training.train_embeddings=false"]).training)
    assert trainable_summary(frozen).trainable < trainable_summary(model).trainable
    full = apply_adapters(tiny_llama(tok), resolve_config(given={"scale": "nano"},
                                                          overrides=["training.peft=full"]).training)
    assert trainable_summary(full).percent == 100.0


class _PackedAttention(torch.nn.Module):
    """Baichuan2's layout: q, k and v in one ``W_pack`` linear layer."""

    def __init__(self):
        super().__init__()
        self.config = type("Config", (), {"model_type": "baichuan"})()
        self.W_pack = torch.nn.Linear(8, 24)
        self.o_proj = torch.nn.Linear(8, 8)


def test_lora_targets_follow_the_family_and_unknown_names_are_clear_errors(tok):
    from harness.engine.adapters import lora_targets

    assert lora_targets(tiny_llama(tok), ("q_proj",)) == ["q_proj"]
    assert lora_targets(_PackedAttention(), ("q_proj",)) == ["W_pack"]  # the paper adapts Baichuan2's W_pack
    assert lora_targets(_PackedAttention(), ("q_proj", "v_proj", "o_proj")) == ["W_pack", "o_proj"]
    with pytest.raises(ValueError, match=r"no layer named qkv.*down_proj.*q_proj"):
        lora_targets(tiny_llama(tok), ("qkv",))


def test_qlora_without_cuda_is_a_clear_error():
    from harness.engine.adapters import AdapterUnavailableError, check_qlora_available

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(AdapterUnavailableError, match="QLoRA needs a CUDA GPU"):
        check_qlora_available()


def test_two_processes_match_one(tmp_path):
    """torchrun with 2 CPU processes (gloo) reaches the single-process losses."""
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    subprocess.run([sys.executable, str(TESTS / "ddp_train.py"), str(one)], check=True, timeout=300)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
                    str(TESTS / "ddp_train.py"), str(two)], check=True, timeout=300)
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert a["world"] == 1 and b["world"] == 2
    assert len(a["losses"]) == len(b["losses"]) == 4
    assert a["losses"] == pytest.approx(b["losses"], rel=1e-5, abs=1e-6)
