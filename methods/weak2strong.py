"""Weak2Strong (Burns et al. 2024, as the paper's Table 1 uses it) and Pen2Sword + Weak2Strong (A.5.1).

weak2strong: the small expert (the same one Pen2Sword would use: ``model.expert`` or the suite's
domain expert) writes a response to every training prompt the run will reach; the target is then
LoRA-trained on those pseudo-labels instead of the ground truth, by the shared engine, exactly as
``lora`` is. pen2sword+weak2strong: the same labels, with the target initialised by Pen2Sword's
embedding transfer from that expert first.
"""

from __future__ import annotations

from harness.config import RunConfig
from harness.data import train_part
from harness.method import MethodContext, Prepared, register_method
from harness.suites import Suite
from methods import pseudolabels
from methods.pen2sword import config as pen2sword_config
from methods.pen2sword import method as pen2sword
from methods.pseudolabels import model_writer, plan_labels, pseudo_label, trained_on_labels


def models_needed(config: RunConfig, suite: Suite) -> dict[str, str]:
    return {"target": config.model.target, "weak": pen2sword.choose_expert(config, suite)[0]}


def weak_labels(ctx: MethodContext) -> tuple[list[dict], dict]:
    """The training records relabelled by the weak model (cached across runs).

    ``pseudo_labels.weak_supervisor=fine-tuned`` is Burns et al.'s recipe: the weak model is first
    LoRA-trained on the ground truth of the first half of the training split (a sub-run the engine
    runs, and skips when done), then labels the second half, which is what the target trains on."""
    name = pen2sword.choose_expert(ctx.config, ctx.suite)[0]
    weak = ctx.models["weak"]
    records, identity, supervisor = ctx.train_records, {"weak": weak.identity}, None
    if ctx.config.pseudo_labels.weak_supervisor == "fine-tuned":
        supervisor = ctx.sub_run("lora", {"model.target": name, "data.train_part": "first-half",
                                          "eval.benchmarks": False}, purpose="the weak supervisor (first half)")
        records = train_part(ctx.train_records, "second-half")
        identity = {"weak": weak.identity, "fine_tuned_by": supervisor.path.name}
    plan = plan_labels(ctx, identity, len(records))
    how = "fine-tuned on the first half" if supervisor else "as is"
    source = f"pseudo-labels by {name} ({how}, {plan.mode})"

    def write(chosen):
        if supervisor is not None:

            model, tokenizer, _ = ctx.load_trained_model(supervisor.path, step="latest")
        else:
            model, tokenizer = ctx.load_model(weak, dtype=ctx.config.model.dtype), ctx.load_tokenizer(weak)
        return model_writer(ctx, model, tokenizer, plan)(chosen)

    labelled, report = pseudo_label(ctx, plan, write, source, records=records)
    return labelled, {**report, "weak": name, "source": source,
                      "weak_supervisor": str(supervisor.path) if supervisor else "as-is"}


def prepare(ctx: MethodContext) -> Prepared:
    records, report = weak_labels(ctx)
    target = ctx.models["target"]
    prepared = Prepared(model=ctx.load_model(target, dtype=ctx.config.model.dtype),
                        tokenizer=ctx.load_tokenizer(target),
                        models_used={"target": target.identity, "weak": ctx.models["weak"].identity})
    return trained_on_labels(prepared, records, report)


def prepare_with_pen2sword(ctx: MethodContext) -> Prepared:
    records, report = weak_labels(ctx)
    ctx.models.setdefault("expert", ctx.models["weak"])
    prepared = pen2sword.prepare(ctx)
    prepared.models_used["weak"] = ctx.models["weak"].identity
    return trained_on_labels(prepared, records, report)


# Labels are answers that start and end (methods.pseudolabels.LABEL_RULES): the small experts are base models
# (CodeLlama-7B) or, at micro, too weak to end an answer with EOS, and write blank lines to the budget otherwise.
LABEL_OVERRIDES = {"training.peft": "lora", "pseudo_labels.label_rule": "answer"}

register_method("weak2strong", prepare, models=models_needed, paper_label="Vanilla Model + LoRA + Weak2Strong",
                description="LoRA on pseudo-labels written by the small expert (Burns et al. 2024)",
                overrides=LABEL_OVERRIDES, config_section=pseudolabels.SECTION)
register_method("pen2sword+weak2strong", prepare_with_pen2sword, models=models_needed,
                paper_label="Pen2Sword + Weak2Strong", prepare_phase="transfer",
                description="Pen2Sword's transfer from the expert, then training on its pseudo-labels (A.5.1)",
                overrides=LABEL_OVERRIDES, config_section=(pseudolabels.SECTION, pen2sword_config.SECTION))
