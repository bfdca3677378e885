"""Launched by tests/test_sharding.py, as ddp_train.py is: trains the tiny model, with training.fsdp under torchrun
or plainly in one process, validating and checkpointing on the way, and writes what it logged and what it saved.

    fsdp_train.py OUT PEFT CHECKPOINTS [RESUME_FROM]

PEFT: lora or full. CHECKPOINTS: the run's checkpoint directory. RESUME_FROM (optional): a checkpoint to resume
from before training on.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from tiny import tiny_llama, tiny_tokenizer  # noqa: E402

from harness.config import resolve_config  # noqa: E402
from harness.engine.adapters import apply_adapters, trainable_state  # noqa: E402
from harness.engine.trainer import Trainer  # noqa: E402


def main(out: str, peft: str, checkpoints: str, resume_from: str | None = None) -> None:
    texts = [f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(64)]
    records = [{"id": str(i), "instruction": f"write f{i}", "response": t} for i, t in enumerate(texts)]
    tok = tiny_tokenizer(texts, vocab_size=300)
    sharded = int(os.environ.get("WORLD_SIZE", "1")) > 1
    cfg = resolve_config(given={"scale": "nano"}, overrides=[
        "training.batch_size=4", "training.max_steps=4", "training.lora_dropout=0", "eval.benchmarks=false",
        f"training.peft={peft}", "training.lr=1e-3", "training.warmup_steps=0", "training.eval_every=2",
        "training.checkpoint_steps=[2,4]", "eval.max_new_tokens=6", "training.precision=fp32",
        *(["training.fsdp=true"] if sharded else [])])
    model = apply_adapters(tiny_llama(tok, seed=0), cfg.training)
    rows: list[dict] = []
    trainer = Trainer(model, tok, cfg, records, records[:3], checkpoints_dir=Path(checkpoints), emit=rows.extend,
                      progress=False)
    if resume_from:
        trainer.resume_from(Path(resume_from))
    trainer.fit()
    final = trainable_state(trainer.model)  # every rank gathers; the main one writes
    if trainer.is_main:
        Path(out).write_text(json.dumps({
            "world": trainer.world, "sharded": trainer.sharded,
            "rows": [{k: r[k] for k in ("step", "metric", "value")} for r in rows
                     if r["metric"] in ("loss", "grad_norm", "rouge1", "eval_loss")],
            "final": {name: t.flatten().tolist() for name, t in final.items()}}))


if __name__ == "__main__":
    main(*sys.argv[1:])
