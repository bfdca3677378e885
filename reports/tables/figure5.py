"""Figure 5: the fusion ratio α (code, ROUGE-1): Pen2Sword at α = 0.25, 0.5 and 0.75 beside LoRA on the same
target."""

from __future__ import annotations

from reports.claims import best_of_claim, faster_claim
from reports.paper_numbers import lookup
from reports.registry import register_table
from reports.render import render_curves
from reports.spec import Row, Spec

# The caption's pair: "The small model is Vicuna-7B-v1.5 and the large model is Vicuna-13B-v1.3".
TARGET = "model.target=alpha-target"
PAIR = (TARGET, "model.expert=vicuna-v1.5-expert")

SPEC = Spec("figure5", "Figure 5: fusion ratio α (code, ROUGE-1)", "code",
            (Row("LoRA", "lora", (TARGET,)),
             *[Row(f"Pen2Sword α={a}", "pen2sword", (f"pen2sword.alpha={a}", *PAIR)) for a in (0.25, 0.5, 0.75)]),
            paper_source="figure5",
            note="Vicuna-7B-v1.5 → Vicuna-13B-v1.3 (4096 / 5120), LoRA on the same target; built-in stand-ins "
                 "vicuna-v1.5-expert → alpha-target (the instruction-tuned target, 256 / 320)",
            stand_in_differences=(
                "Figure 5's target Vicuna-13B-v1.3 stands in as the instruction-tuned target (alpha-target = "
                "target-instruct): the family's only instruction-tuned model of the target's width, and of another "
                "lineage than the Vicuna-7B-v1.5 stand-in (small-base-b), as Vicuna-13B-v1.3 (from LLaMA-13B) is to "
                "Vicuna-7B-v1.5 (from Llama-2-7B); it is Table 1's 'Instruction-tuned' model too",))


def claims(spec: Spec, values: dict[str, list[dict]]) -> list[dict]:
    labels = {r.label.removeprefix("Pen2Sword "): r.label for r in spec.rows if r.label.startswith("Pen2Sword")}
    lora = next(r.label for r in spec.rows if r.label.startswith("LoRA"))
    stated = {r["row"]: r["value"]
              for r in lookup(source=spec.paper_source, column="training steps to matched performance")}
    paper = (f" (paper: {stated['Pen2Sword']:g} steps to LoRA's level at {stated['LoRA']:g})"
             if {"LoRA", "Pen2Sword"} <= set(stated) else "")
    return [best_of_claim(values, labels, "α=0.5", "α=0.5 has the highest ROUGE-1 of the three α at the last "
                                                   "common step"),
            faster_claim(values, lora, labels["α=0.5"], paper)]


register_table(SPEC, render_curves, claims)
