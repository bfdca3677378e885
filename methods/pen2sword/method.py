"""Pen2Sword as a registered method, with its ablations and variants as configurations.

prepare = choose the expert → load target and expert → transfer the fused embedding (eq. 2–7) into
the target; the shared engine then fine-tunes it exactly as it fine-tunes every other method.
"""

from __future__ import annotations

import random

from harness.engine.context import MethodContext, Prepared
from harness.method import register_method
from methods.pen2sword.transfer import TransferOptions, transfer


def choose_expert(ctx: MethodContext) -> tuple[str, str]:
    """(expert name, how it was chosen). ``select=random`` is the paper's "w/o DPF Selection"."""
    cfg = ctx.config
    if cfg.pen2sword.select == "random":
        candidates = list(cfg.model.candidates)
        return random.Random(cfg.seed).choice(candidates), f"random among {candidates} (seed {cfg.seed})"
    if cfg.pen2sword.select == "dpf":
        raise NotImplementedError(
            "pen2sword.select=dpf (GPT-4o domain-preserving selection) is not available yet; "
            "choose the expert with --expert NAME or pen2sword.select=fixed")
    if cfg.model.expert:
        return cfg.model.expert, "given (model.expert)"
    default = ctx.suite.expert_for(cfg.scale)
    if default is None:
        raise ValueError(f"suite {ctx.suite.name!r} has no default expert at scale {cfg.scale!r}; pass --expert NAME")
    return default, f"the {ctx.suite.name} suite's domain expert"


def transfer_options(ctx: MethodContext) -> TransferOptions:
    p = ctx.config.pen2sword
    return TransferOptions(compat=p.compat, expansion=p.expansion, fusion=p.fusion, alpha=p.alpha,
                           seed=ctx.seed if p.transfer_seed is None else p.transfer_seed,
                           missing_std=p.missing_std, tie_word_embeddings=p.tie_word_embeddings)


def prepare(ctx: MethodContext) -> Prepared:
    expert_name, chosen_by = choose_expert(ctx)
    options = transfer_options(ctx)
    target = ctx.resolve_model(ctx.config.model.target)
    expert = ctx.resolve_model(expert_name)
    dtype = ctx.config.model.dtype
    result = transfer(ctx.load_model(expert, dtype=dtype), ctx.load_tokenizer(expert),
                      ctx.load_model(target, dtype=dtype), ctx.load_tokenizer(target), options)
    return Prepared(model=result.model, tokenizer=result.tokenizer,
                    info={"expert": expert_name, "expert_chosen_by": chosen_by, "transfer": result.report},
                    models_used={"target": target.identity, "expert": expert.identity})


PAPER = "Vanilla Model + LoRA + Pen2Sword"
register_method("pen2sword", prepare, prepare_phase="transfer", paper_label=PAPER,
                description="embedding transfer from a small expert (eq. 2-7), then LoRA + embedding fine-tuning")
register_method("pen2sword-no-dpf", prepare, prepare_phase="transfer", paper_label="w/o DPF Selection",
                overrides={"pen2sword.select": "random"},
                description="ablation: expert drawn at random among the candidates instead of DPF selection")
register_method("pen2sword-no-expansion", prepare, prepare_phase="transfer", paper_label="w/o Expansion",
                overrides={"pen2sword.expansion": "noise"},
                description="ablation: no hidden-size expansion; the missing dimensions are Gaussian noise")
register_method("pen2sword-no-fusion", prepare, prepare_phase="transfer", paper_label="w/o Fusion",
                overrides={"pen2sword.fusion": False},
                description="ablation: no weighted fusion; the expanded expert embedding E_S^2 alone")
register_method("pen2sword-f", prepare, prepare_phase="transfer", paper_label="w/o Embedding Training",
                overrides={"training.train_embeddings": False}, aliases=("pen2sword-no-embedding-training",),
                description="ablation (Pen2Sword-F): embedding frozen after transfer; LoRA only")
register_method("pen2sword-fft", prepare, prepare_phase="transfer", paper_label="Vanilla Model + FFT + Pen2Sword",
                overrides={"training.peft": "full"},
                description="Pen2Sword transfer followed by full fine-tuning (Table 5)")
register_method("pen2sword-dora", prepare, prepare_phase="transfer", paper_label="DoRA + Pen2Sword",
                overrides={"training.peft": "dora"}, description="Pen2Sword with DoRA (Figure 3a)")
register_method("pen2sword-qlora", prepare, prepare_phase="transfer", paper_label="QLoRA + Pen2Sword",
                overrides={"training.peft": "qlora"},
                description="Pen2Sword with QLoRA (Figure 3a; needs CUDA + bitsandbytes)")
register_method("pen2sword-procrustes", prepare, prepare_phase="transfer", paper_label="Pen2Sword (Procrustes map)",
                overrides={"pen2sword.expansion": "procrustes"},
                description="variant: expand d_S to d_T with an orthogonal map fitted on the shared vocabulary")
register_method("pen2sword-lstsq", prepare, prepare_phase="transfer", paper_label="Pen2Sword (least-squares map)",
                overrides={"pen2sword.expansion": "lstsq"},
                description="variant: expand d_S to d_T with a least-squares map fitted on the shared vocabulary")
