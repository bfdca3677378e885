"""Figure 6: ROUGE-2, ROUGE-L and eval loss against training steps, LoRA beside Pen2Sword (code, math). The paper
draws no claim from it."""

from __future__ import annotations

from reports.registry import register_table
from reports.render import render_curves
from reports.spec import Row, Spec

FIGURE6A = Spec("figure6a", "Figure 6: ROUGE-2, ROUGE-L and eval loss (code)", "code",
                (Row("LoRA", "lora"), Row("Pen2Sword", "pen2sword")), paper_source="figure6",
                curve_metrics=("rouge2", "rougeL", "eval_loss"))
FIGURE6B = Spec("figure6b", "Figure 6: ROUGE-2, ROUGE-L and eval loss (math)", "math",
                (Row("LoRA", "lora"), Row("Pen2Sword", "pen2sword")), paper_source="figure6",
                curve_metrics=("rouge2", "rougeL", "eval_loss"))

register_table(FIGURE6A, render_curves, group="figure6")
register_table(FIGURE6B, render_curves, group="figure6")
