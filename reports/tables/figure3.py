"""Figure 3: Pen2Sword beside the fine-tuning it extends, QLoRA and DoRA (a), and on two other model families,
Vicuna and Baichuan2 (b): each base row is followed by its Pen2Sword row, and each pair bears two claims."""

from __future__ import annotations

from reports.claims import faster_claim, higher_claim
from reports.registry import register_table
from reports.render import render_curves
from reports.spec import Row, Spec

# LoRA's q_proj is Baichuan2's W_pack there (harness.engine.adapters.FAMILY_TARGETS), so no override of the modules.
BAICHUAN_TARGETS = ("model.target=baichuan2-13b-base",)

FIGURE3A = Spec("figure3a", "Figure 3a: Pen2Sword with QLoRA and DoRA (code, ROUGE-1)", "code",
                (Row("QLoRA", "qlora", needs="cuda"), Row("Pen2Sword + QLoRA", "pen2sword-qlora", needs="cuda"),
                 Row("DoRA", "dora"), Row("Pen2Sword + DoRA", "pen2sword-dora")), paper_source="figure3a",
                note="the expert is the code suite's CodeLlama-7B stand-in (code-expert), as in the paper")
FIGURE3B = Spec("figure3b", "Figure 3b: LoRA and Pen2Sword on the Vicuna and Baichuan2 families (code, ROUGE-1)",
                "code",
                (Row("LoRA (Vicuna)", "lora", ("model.target=vicuna-13b-v1.5",), needs="paper-models"),
                 Row("Pen2Sword (Vicuna)", "pen2sword", ("model.target=vicuna-13b-v1.5",
                                                         "model.expert=vicuna-7b-v1.5"), needs="paper-models"),
                 Row("LoRA (Baichuan2)", "lora", BAICHUAN_TARGETS, needs="paper-models"),
                 Row("Pen2Sword (Baichuan2)", "pen2sword", (*BAICHUAN_TARGETS, "model.expert=baichuan2-7b-chat"),
                     needs="paper-models")), paper_source="figure3b",
                note="targets Vicuna-13B-v1.5 and Baichuan2-13B-Base, experts Vicuna-7B-v1.5 and Baichuan2-7B-Chat; "
                     "LoRA on Baichuan2 adapts W_pack, its packed attention weights, where Llama adapts q_proj",
                stand_in_differences=("Figure 3b's Vicuna and Baichuan2 rows need the paper's models: the built-in "
                                      "family has no stand-in for a second target family, so they do not run at nano "
                                      "or micro",))


def claims(spec: Spec, values: dict[str, list[dict]]) -> list[dict]:
    """Per pair of rows (a base, then its Pen2Sword): Pen2Sword gets there in fewer steps, and higher."""
    out = []
    for base, ours in zip(spec.rows[::2], spec.rows[1::2]):
        out += [faster_claim(values, base.label, ours.label), higher_claim(values, base.label, ours.label)]
    return out


register_table(FIGURE3A, render_curves, claims, group="figure3")
register_table(FIGURE3B, render_curves, claims, group="figure3")
