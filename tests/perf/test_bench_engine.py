"""Per-step overhead of the shared engine against a bare torch loop on the same model and batch.

Run: pytest -m perf tests/perf/test_bench_engine.py --benchmark-only
Target (issue 4): engine step time <= 1.05x the bare loop. Both are measured in one run,
interleaved, so machine load affects them alike; the ratio is what counts.
"""

import statistics
import time

import pytest
import torch
import torch.nn.functional as F

from harness.config import resolve_config
from harness.engine.adapters import apply_adapters
from harness.data.batches import IGNORE, collate
from harness.engine.trainer import Trainer
from tiny import tiny_llama, tiny_tokenizer

pytestmark = pytest.mark.perf

TEXTS = [f"def function_{i}(values):\n    return sum(v * {i} for v in values) + {i % 11}\n" * 3 for i in range(64)]
RECORDS = [{"id": str(i), "instruction": f"write function {i}", "response": t} for i, t in enumerate(TEXTS)]


def build(tok):
    cfg = resolve_config(given={"scale": "nano"}, overrides=[
        "training.batch_size=8", "training.seq_len=128", "training.lora_dropout=0", "training.precision=fp32"])
    model = apply_adapters(tiny_llama(tok, hidden=128, layers=4, heads=4, seed=0), cfg.training)
    return cfg, model


def test_engine_step_overhead(benchmark):
    torch.set_num_threads(2)
    tok = tiny_tokenizer(TEXTS, vocab_size=400)
    cfg, model = build(tok)
    trainer = Trainer(model, tok, cfg, RECORDS, RECORDS[:2], checkpoints_dir=None, emit=lambda rows: None,
                      progress=False)
    _, bare_model = build(tok)
    params = [p for p in bare_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.training.lr)
    batch = collate([trainer.examples[i] for i in trainer.order.global_batch(0)], trainer.pad)

    def bare_step():
        logits = bare_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), batch["labels"][:, 1:].flatten(),
                               ignore_index=IGNORE)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def engine_step():
        trainer.train_step(0)

    for _ in range(3):  # warm-up both
        bare_step()
        engine_step()
    bare, engine = [], []
    for _ in range(15):  # interleaved so load drifts hit both
        start = time.perf_counter()
        bare_step()
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        engine_step()
        engine.append(time.perf_counter() - start)
    ratio = statistics.median(engine) / statistics.median(bare)
    benchmark.extra_info.update(bare_median_s=statistics.median(bare), engine_median_s=statistics.median(engine),
                                ratio=ratio)
    benchmark.pedantic(engine_step, rounds=5, iterations=1)
    print(f"engine/bare step time ratio: {ratio:.3f} (bare {statistics.median(bare) * 1000:.1f} ms)")
    assert ratio <= 1.05, f"engine step is {ratio:.3f}x the bare loop (target <= 1.05x)"
