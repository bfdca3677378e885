"""Which parameters train: LoRA, DoRA, QLoRA (through peft), full fine-tuning — the same for every method.

Token embeddings are made trainable on the base model itself (``requires_grad``) rather than through
``modules_to_save`` (which would keep a second full copy); checkpoints save every trainable tensor
(:func:`trainable_state`), and ``harness export`` merges them into a model directory of its own.

Tokens a method added to the vocabulary (Pen2Sword's expert-only tokens) must also be learnable as
outputs: where the embedding trains and lm_head is a matrix of its own (untied), the lm_head rows of
those tokens train too, through peft's trainable tokens (``LoraConfig.trainable_token_indices``
aimed at the lm_head; ``TrainableTokensConfig`` when no LoRA is applied). peft keeps only those rows
as a parameter (``…lm_head.token_adapter.trainable_tokens_delta.<adapter>``, new tokens × hidden),
starting from the current rows, so logits are unchanged at initialisation, the optimizer holds
state for those rows only, and checkpoints (:func:`trainable_state`) carry them. A tied lm_head
needs nothing: it is the embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.config import TrainingConfig
from harness.engine.sharding import full, like


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


def apply_adapters(model, training: TrainingConfig, new_token_ids=()):
    """Return the model with exactly the configured parameters trainable.

    ``new_token_ids``: ids the method added to the vocabulary. Where the embedding trains
    (``training.train_embeddings``) and lm_head is not tied to it, their lm_head rows train too
    (peft trainable tokens, see the module docstring); with ``peft="full"`` everything trains anyway.
    """
    if training.peft == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    for p in model.parameters():
        p.requires_grad_(False)
    head = _trainable_head_rows(model, new_token_ids) if training.train_embeddings else None
    if training.peft in ("lora", "dora", "qlora"):
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=training.lora_r, lora_alpha=training.lora_alpha, lora_dropout=training.lora_dropout,
                          target_modules=lora_targets(model, training.lora_target_modules),
                          use_dora=training.peft == "dora",
                          bias="none", task_type="CAUSAL_LM",
                          trainable_token_indices={head[0]: head[1]} if head else None)
        model = get_peft_model(model, lora)
    elif head:
        from peft import TrainableTokensConfig, get_peft_model

        model = get_peft_model(model, TrainableTokensConfig(target_modules=[head[0]], token_indices=head[1]))
    if training.train_embeddings:
        model.get_input_embeddings().weight.requires_grad_(True)
    return model


# Families whose attention projections are named otherwise: the configured (Llama) name → theirs.
# Baichuan2 packs q, k and v into one W_pack; the paper adapts that pack where Llama adapts q_proj.
FAMILY_TARGETS = {"baichuan": {"q_proj": "W_pack", "k_proj": "W_pack", "v_proj": "W_pack"}}


def lora_targets(model, configured: tuple[str, ...]) -> list[str]:
    """``training.lora_target_modules`` as this model names them (:data:`FAMILY_TARGETS`), with a clear
    error for a name the model has no module of."""
    # Leaf modules of any type: peft also adapts GPT-2's Conv1D and 4-bit linear layers
    names = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if name and not any(module.children())}
    family = FAMILY_TARGETS.get(getattr(getattr(model, "config", None), "model_type", None), {})
    targets = list(dict.fromkeys(name if name in names else family.get(name, name) for name in configured))
    missing = [t for t in targets if t not in names]
    if missing:
        raise ValueError(f"training.lora_target_modules={list(configured)}: this model has no layer named "
                         f"{', '.join(missing)}; its layers are {', '.join(sorted(names))}. Set "
                         "training.lora_target_modules to some of those")
    return targets


def _trainable_head_rows(model, new_token_ids) -> tuple[str, list[int]] | None:
    """(lm_head module name, sorted ids) when the new tokens need lm_head rows of their own to train;
    None when there are none, or when lm_head is tied to the input embedding (the embedding trains them)."""
    ids = sorted({int(i) for i in new_token_ids})
    head = model.get_output_embeddings()
    if not ids or head is None:
        return None
    weight = head.weight
    if weight.data_ptr() == model.get_input_embeddings().weight.data_ptr():
        return None
    if ids[0] < 0 or ids[-1] >= weight.shape[0]:
        raise ValueError(f"new token ids {ids[0]}..{ids[-1]} are outside the lm_head's {weight.shape[0]} rows")
    return next(name for name, module in model.named_modules() if module is head), ids


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
    """Every trainable tensor by name (what a checkpoint must hold to restore training); a sharded model's whole
    tensors, gathered (then every rank calls it)."""
    return {name: full(p).detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in state]
    unknown = [n for n in state if n not in params]
    if missing or unknown:
        raise RuntimeError(f"checkpoint does not match the model: missing {missing[:5]}, unexpected {unknown[:5]}")
    with torch.no_grad():
        for name, tensor in state.items():  # a sharded parameter takes its shard of the whole tensor
            params[name].copy_(like(params[name], tensor.to(params[name].dtype)))
