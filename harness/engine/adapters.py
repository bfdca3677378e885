"""Which parameters train: LoRA, DoRA, QLoRA (through peft), full fine-tuning — the same for every method.

Token embeddings are made trainable on the base model itself (``requires_grad``) rather than through
``modules_to_save`` (which would keep a second full copy); checkpoints save every trainable tensor,
and adapters are exported with ``save_embedding_layers=True`` so the embedding is never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.config import TrainingConfig


class AdapterUnavailableError(RuntimeError):
    """The requested fine-tuning method needs hardware or packages this machine lacks."""


@dataclass(frozen=True)
class TrainableSummary:
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / max(self.total, 1)


def check_qlora_available() -> None:
    if not torch.cuda.is_available():
        raise AdapterUnavailableError(
            "QLoRA needs a CUDA GPU (4-bit bitsandbytes kernels); none is available here. "
            "Use training.peft=lora on CPU, or run on a GPU machine.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise AdapterUnavailableError(
            "QLoRA needs bitsandbytes: pip install -c constraints.txt '.[gpu]'") from err


def quantize_for_qlora(model, tokenizer, work_dir):
    """Reload the prepared model in 4-bit NF4 (QLoRA, Dettmers et al.) for k-bit training."""
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    check_qlora_available()
    path = work_dir / "qlora-base"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=quant, device_map={"": 0})
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)


def apply_adapters(model, training: TrainingConfig):
    """Return the model with exactly the configured parameters trainable."""
    if training.peft == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    for p in model.parameters():
        p.requires_grad_(False)
    if training.peft in ("lora", "dora", "qlora"):
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=training.lora_r, lora_alpha=training.lora_alpha, lora_dropout=training.lora_dropout,
                          target_modules=list(training.lora_target_modules), use_dora=training.peft == "dora",
                          bias="none", task_type="CAUSAL_LM")
        model = get_peft_model(model, lora)
    if training.train_embeddings:
        model.get_input_embeddings().weight.requires_grad_(True)
    return model


def trainable_summary(model) -> TrainableSummary:
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:  # tied weights count once
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return TrainableSummary(trainable, total)


def trainable_state(model) -> dict[str, torch.Tensor]:
    """Every trainable tensor by name (what a checkpoint must hold to restore training)."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in state]
    unknown = [n for n in state if n not in params]
    if missing or unknown:
        raise RuntimeError(f"checkpoint does not match the model: missing {missing[:5]}, unexpected {unknown[:5]}")
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor)
