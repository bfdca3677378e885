"""Baselines that need no preparation beyond loading a model: Vanilla, Instruction-tuned, LoRA,
DoRA, QLoRA and full fine-tuning. The shared engine applies the adapters the config names."""

from __future__ import annotations

from harness.config import RunConfig
from harness.method import MethodContext, Prepared, register_method
from harness.suites import Suite


def load_target(ctx: MethodContext) -> Prepared:
    """The target model (``ctx.models["target"]``) as it is."""
    resolved = ctx.models["target"]
    model = ctx.load_model(resolved, dtype=ctx.config.model.dtype)
    return Prepared(model=model, tokenizer=ctx.load_tokenizer(resolved),
                    models_used={"target": resolved.identity})


def instruction_tuned_model(config: RunConfig, suite: Suite) -> dict[str, str]:
    """Table 1's "Vanilla Model + Instruction-tuned": the target family's chat model, evaluated as is."""
    return {"target": {"paper": "llama-2-13b-chat"}.get(config.scale, "target-instruct")}


register_method("vanilla", load_target, trains=False, paper_label="Vanilla Model",
                description="the pretrained target, no adaptation (evaluated as is)")
register_method("instruction-tuned", load_target, trains=False, models=instruction_tuned_model,
                paper_label="Vanilla Model + Instruction-tuned",
                description="the target family's instruction-tuned model, evaluated as is")
register_method("lora", load_target, paper_label="Vanilla Model + LoRA",
                description="LoRA on the configured modules (paper: q_proj, r=8, alpha=16) + trainable embeddings",
                overrides={"training.peft": "lora"})
register_method("dora", load_target, paper_label="Vanilla Model + DoRA",
                description="DoRA (weight-decomposed LoRA, through peft), same modules as LoRA",
                overrides={"training.peft": "dora"})
register_method("qlora", load_target, paper_label="Vanilla Model + QLoRA",
                description="LoRA on a 4-bit NF4 target (needs CUDA + bitsandbytes)",
                overrides={"training.peft": "qlora"})
register_method("fft", load_target, paper_label="Vanilla Model + FFT", aliases=("full",),
                description="full fine-tuning of every parameter", overrides={"training.peft": "full"})
