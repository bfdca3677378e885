"""Pen2Sword as a registered method, with its ablations and variants as configurations.

prepare = choose the expert → load target and expert → transfer the fused embedding (eq. 2–7) into
the target; the shared engine then fine-tunes it exactly as it fine-tunes every other method.
"""

from __future__ import annotations

import dataclasses
import random

from harness.config import ConfigError, RunConfig
from harness.method import MethodContext, Prepared, defer_selection, register_method
from harness.suites import Suite
from methods.baselines import load_target
from methods.pen2sword.config import SECTION, Pen2SwordConfig
from methods.pen2sword.transfer import TransferOptions, transfer


def choose_expert(config: RunConfig, suite: Suite) -> tuple[str, str]:
    """(expert name, how it was chosen).

    ``select=random`` is the paper's "w/o DPF Selection": an expert drawn by seed among the candidates
    *other than* the one selection would give (the suite's domain expert), so the ablation never
    equals the full method."""
    if config.pen2sword.select == "random":  # w/o DPF
        chosen = config.model.expert or suite.expert_for(config.scale)
        others = [c for c in config.pen2sword.candidates if c != chosen]
        if not others:
            raise ConfigError(f"pen2sword.select=random draws among pen2sword.candidates other than {chosen!r}, "
                              f"but pen2sword.candidates={list(config.pen2sword.candidates)} has no other; add candidates")
        return (random.Random(config.seed).choice(others),
                f"random among {others} (seed {config.seed}; {chosen!r}, the selected expert, excluded)")
    if config.pen2sword.select == "dpf" and not config.model.expert:
        from methods.pen2sword.dpf import cached_ranking, run_dpf

        ranking = cached_ranking(config, suite)  # ranked once per candidates, judge and questions
        if ranking is None:
            judge = f"DPF ({config.pen2sword.dpf_judge})"
            if defer_selection("expert", judge, config.pen2sword.candidates):  # planning: rank when the run starts
                return config.pen2sword.candidates[0], f"{judge}, when the run starts"
            ranking = run_dpf(config, suite, progress=False)
        if not ranking.selected:
            raise ConfigError(f"DPF ({ranking.judge}) scored no candidate of {list(config.pen2sword.candidates)}; "
                              "see the judgments in the DPF cache or choose the expert with --expert NAME")
        return ranking.selected[0], f"DPF ({ranking.judge}, {ranking.n_questions} questions): top of {len(ranking.rows)}"
    if config.model.expert:
        return config.model.expert, "given (model.expert)"
    default = suite.expert_for(config.scale)
    if default is None:
        raise ConfigError(f"suite {suite.name!r} has no default expert at scale {config.scale!r}; pass --expert NAME")
    return default, f"the {suite.name} suite's domain expert"


def models_needed(config: RunConfig, suite: Suite) -> dict[str, str]:
    return {"target": config.model.target, "expert": choose_expert(config, suite)[0]}


def transfer_options(ctx: MethodContext) -> TransferOptions:
    return ctx.config.pen2sword.transfer_options(seed=ctx.seed)


def warmed_up_expert(ctx: MethodContext, expert_name: str):
    """§4.5 stage (i), embedding domain adaptation: the expert with its embedding layer pre-trained further
    (``pen2sword.embedding_warmup_steps`` steps, every other weight frozen, loss on the whole text) on the
    suite's training split, which stands in for the paper's domain corpus. It runs as a sub-run of its own
    (method ``embedding-warmup``), skipped when done; returns (model, tokenizer, its run directory)."""
    steps = ctx.config.pen2sword.embedding_warmup_steps
    # One warm-up per expert and data, whatever the transfer after it is configured with: the pen2sword
    # section goes back to its defaults in the sub-run, so an α sweep shares one warm-up.
    defaults = {f"pen2sword.{key}": value for key, value in dataclasses.asdict(Pen2SwordConfig()).items()}
    run = ctx.sub_run("embedding-warmup", {**defaults, "model.target": expert_name, "training.max_steps": steps,
                                           "training.checkpoint_steps": [steps], "training.eval_every": steps,
                                           "training.schedule_steps": None},
                      purpose="the expert's embedding domain adaptation (§4.5)")
    model, tokenizer, _ = ctx.load_trained_model(run.path, step="latest")
    return model, tokenizer, run


def prepare(ctx: MethodContext) -> Prepared:
    expert_name, chosen_by = choose_expert(ctx.config, ctx.suite)
    options = transfer_options(ctx)
    target, expert = ctx.models["target"], ctx.models["expert"]
    dtype = ctx.config.model.dtype
    expert_used, info = expert.identity, {"expert": expert_name, "expert_chosen_by": chosen_by}
    if ctx.config.pen2sword.embedding_warmup_steps:
        expert_model, expert_tokenizer, warmup = warmed_up_expert(ctx, expert_name)
        expert_used = {**expert.identity, "embedding_warmup": warmup.path.name}
        info["embedding_warmup"] = {"run_dir": str(warmup.path),
                                    "steps": ctx.config.pen2sword.embedding_warmup_steps}
    else:
        expert_model, expert_tokenizer = ctx.load_model(expert, dtype=dtype), ctx.load_tokenizer(expert)
    result = transfer(expert_model, expert_tokenizer, ctx.load_model(target, dtype=dtype), ctx.load_tokenizer(target),
                      options)
    return Prepared(model=result.model, tokenizer=result.tokenizer, info={**info, "transfer": result.report},
                    models_used={"target": target.identity, "expert": expert_used},
                    new_token_ids=result.new_token_ids)


def register_variant(name: str, **kwargs) -> None:
    """Pen2Sword or one of its ablations/variants (a configuration of the same prepare)."""
    register_method(name, prepare, prepare_phase="transfer", models=models_needed, config_section=SECTION, **kwargs)


register_method("embedding-warmup", load_target,
                description="§4.5 stage (i): a model's embedding layer pre-trained further on the suite's training "
                            "text, all else frozen (Pen2Sword's pen2sword.embedding_warmup_steps runs it on the expert)",
                overrides={"training.peft": "none", "training.train_embeddings": True, "training.loss_on": "full",
                           "eval.benchmarks": False})

PAPER = "Vanilla Model + LoRA + Pen2Sword"
register_variant("pen2sword", paper_label=PAPER,
                 description="embedding transfer from a small expert (eq. 2-7), then LoRA + embedding fine-tuning")
register_variant("pen2sword-no-dpf", paper_label="w/o DPF Selection",
                 overrides={"pen2sword.select": "random"},
                 description="ablation: expert drawn at random among the candidates instead of DPF selection")
register_variant("pen2sword-no-expansion", paper_label="w/o Expansion",
                 overrides={"pen2sword.expansion": "noise"},
                 description="ablation: no hidden-size expansion; the missing dimensions are Gaussian noise")
register_variant("pen2sword-no-fusion", paper_label="w/o Fusion",
                 overrides={"pen2sword.fusion": False},
                 description="ablation: no weighted fusion; the expanded expert embedding E_S^2 alone")
register_variant("pen2sword-f", paper_label="w/o Embedding Training",
                 overrides={"training.train_embeddings": False}, aliases=("pen2sword-no-embedding-training",),
                 description="ablation (Pen2Sword-F): embedding frozen after transfer; LoRA only")
register_variant("pen2sword-fft", paper_label="Vanilla Model + FFT + Pen2Sword",
                 overrides={"training.peft": "full"},
                 description="Pen2Sword transfer followed by full fine-tuning (Table 5)")
register_variant("pen2sword-dora", paper_label="DoRA + Pen2Sword",
                 overrides={"training.peft": "dora"}, description="Pen2Sword with DoRA (Figure 3a)")
register_variant("pen2sword-qlora", paper_label="QLoRA + Pen2Sword",
                 overrides={"training.peft": "qlora"},
                 description="Pen2Sword with QLoRA (Figure 3a; needs CUDA + bitsandbytes)")
register_variant("pen2sword-procrustes", paper_label="Pen2Sword (Procrustes map)",
                 overrides={"pen2sword.expansion": "procrustes"},
                 description="variant: expand d_S to d_T with an orthogonal map fitted on the shared vocabulary")
register_variant("pen2sword-lstsq", paper_label="Pen2Sword (least-squares map)",
                 overrides={"pen2sword.expansion": "lstsq"},
                 description="variant: expand d_S to d_T with a least-squares map fitted on the shared vocabulary")
