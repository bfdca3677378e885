"""Figure 7: Pen2Sword combined with Weak2Strong (a) and with ProxyTuning (b), HumanEval at each checkpoint,
each row averaged over the paper's three experts and three seeds (A.5)."""

from __future__ import annotations

from reports.claims import at_every_checkpoint_claim
from reports.registry import register_table
from reports.render import render_curves
from reports.spec import Row, Spec

# A.5's experts: "Llama2-7B-Chat, Vicuna-7B-v1.5, and CodeLlama-7B-Instruct", each run three times.
EXPERTS = ("chat-expert", "vicuna-v1.5-expert", "code-instruct-expert")


def _rows(other: str, method: str) -> tuple[Row, ...]:
    return (Row("Pen2Sword", "pen2sword", experts=EXPERTS), Row(other, method, experts=EXPERTS),
            Row(f"Pen2Sword + {other}", f"pen2sword+{method}", experts=EXPERTS))


NOTE = ("each row averages its runs over the paper's three experts (Llama2-7B-Chat, Vicuna-7B-v1.5, "
        "CodeLlama-7B-Instruct; stand-ins chat-expert, vicuna-v1.5-expert, code-instruct-expert) and three "
        "seeds each, as A.5 does")

FIGURE7A = Spec("figure7a", "Figure 7a: Pen2Sword, Weak2Strong and both (code, HumanEval at checkpoints)", "code",
                _rows("Weak2Strong", "weak2strong"), paper_source="figure7a",
                curve_metrics=("humaneval",), seeds=3, note=NOTE)
FIGURE7B = Spec("figure7b", "Figure 7b: Pen2Sword, ProxyTuning and both (code, HumanEval at checkpoints)", "code",
                _rows("ProxyTuning", "proxytuning"), paper_source="figure7b",
                curve_metrics=("humaneval",), seeds=3,
                note=f"{NOTE}; ProxyTuning's anti-expert is each expert's untuned base (Llama-2-7B, Llama-2-7B, "
                     "CodeLlama-7B)")


def claims(spec: Spec, values: dict[str, list[dict]]) -> list[dict]:
    """Pen2Sword, alone and combined, outperforms the other method (the second row) at every checkpoint."""
    base = spec.rows[1].label  # Weak2Strong or ProxyTuning
    return [at_every_checkpoint_claim(values, ours, base, f"{ours} outperforms {base} on HumanEval at every "
                                                          "checkpoint")
            for ours in ("Pen2Sword", f"Pen2Sword + {base}")]


def weak2strong_claims(spec: Spec, values: dict[str, list[dict]]) -> list[dict]:
    """:func:`claims`, and A.5.1's "Pen2Sword alone consistently outperforms ... the combined approach"."""
    combined = f"Pen2Sword + {spec.rows[1].label}"
    return [*claims(spec, values),
            at_every_checkpoint_claim(values, "Pen2Sword", combined, f"Pen2Sword alone outperforms {combined} at "
                                                                     "every checkpoint")]


register_table(FIGURE7A, render_curves, weak2strong_claims, group="figure7")
register_table(FIGURE7B, render_curves, claims, group="figure7")
