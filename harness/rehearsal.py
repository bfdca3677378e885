"""A rehearsal of the paper preset on a machine without the paper's models: the same code path, cheap.

``harness run --scale paper --rehearsal`` keeps every setting of ``presets/paper.yaml`` (sequence length,
prompt budget, batch, LoRA, schedule, evaluation and checkpoint logic) and swaps only what such a machine
cannot have: the built-in nano family stands in for the 13B target and the 7B candidates (by local
path, so the paper scale's hub ids are never asked for), the offline stand-in data for the hub sets,
fp32 where there is no CUDA (fp16 needs a GPU), and a few steps instead of 10,000.
"""

from __future__ import annotations

import json

import torch

REHEARSAL_SCALE = "nano"
STEPS = 4


def rehearsal_overrides(steps: int = STEPS) -> list[str]:
    """``key=value`` overrides that turn the paper preset into its rehearsal (builds the nano family's
    roles it needs on first use, in seconds)."""
    from harness.zoo import zoo_role_path

    def path(role: str) -> str:
        return str(zoo_role_path(role, REHEARSAL_SCALE))

    candidates = [path(r) for r in ("chat-expert", "code-expert", "code-instruct-expert")]
    overrides = [
        f"model.target={path('target-base')}",
        f"model.expert={path('code-expert')}",
        f"pen2sword.candidates={json.dumps(candidates)}",
        f"model.anti_expert={path('small-base')}",
        "data.source=offline",
        "data.n_validation=4",
        "data.max_train_samples=64",
        f"training.max_steps={steps}",
        f"training.eval_every={max(steps // 2, 1)}",
        f"training.checkpoint_steps={json.dumps(sorted({max(steps // 2, 1), steps}))}",
        "training.log_every=1",
        # The nano family's context is 512 positions: the paper's 256-token prompt budget stays, and
        # generations are shortened to fit beside it.
        "eval.max_new_tokens=32",
        "eval.benchmark_limit=2",
        "eval.benchmark_max_new_tokens=32",
        "eval.eval_batch_size=4",
    ]
    if not torch.cuda.is_available():
        overrides += ["model.dtype=float32", "training.precision=fp32"]
    return overrides
