"""Launched by tests/test_engine.py under torchrun: trains the tiny model and writes its losses.

Run with 1 process (plain python) or N processes (torchrun); the losses must agree.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from tiny import tiny_llama, tiny_tokenizer  # noqa: E402

from harness.config import resolve_config  # noqa: E402
from harness.engine.adapters import apply_adapters  # noqa: E402
from harness.engine.trainer import Trainer  # noqa: E402


def main(out: str) -> None:
    texts = [f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(64)]
    records = [{"id": str(i), "instruction": f"write f{i}", "response": t} for i, t in enumerate(texts)]
    tok = tiny_tokenizer(texts, vocab_size=300)
    model = apply_adapters(tiny_llama(tok, seed=0), resolve_config(given={"scale": "nano"}).training)
    cfg = resolve_config(given={"scale": "nano"}, overrides=["training.batch_size=4", "training.max_steps=4",
                                                               "training.lora_dropout=0", "eval.benchmarks=false",
                                                               "training.eval_every=100", "training.checkpoint_steps=[]"])
    rows: list[dict] = []
    trainer = Trainer(model, tok, cfg, records, records[:2], checkpoints_dir=None, emit=rows.extend, progress=False)
    trainer.state.evaluated.append(0)  # skip the step-0 validation: only training is compared
    trainer.fit()
    if trainer.is_main:
        losses = [r["value"] for r in rows if r["metric"] == "loss"]
        Path(out).write_text(json.dumps({"world": trainer.world, "losses": losses}))


if __name__ == "__main__":
    main(sys.argv[1])
