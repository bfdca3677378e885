"""Table 2: the ablations of Pen2Sword (code), ROUGE at each run's last evaluation, and the order the paper
reads from them."""

from __future__ import annotations

from reports.claims import (MISSING, compared, difference_test, equivalence_test, last_evaluation, runs_text,
                            tested_claim)
from reports.registry import register_table
from reports.render import render_table
from reports.spec import ROUGE, Row, Spec
from reports.stats import clean

# "≈": an equivalence margin, stated in the claim. Table 2's two rows the paper prints as about equal (0.737 and
# 0.743) differ by 0.8%; a margin of 5% of their mean is generous to the paper.
EQUIVALENT_ROUGE = 0.05

SPEC = Spec("table2", "Table 2: ablations (code)", "code",
            (Row("Pen2Sword", "pen2sword"), Row("w/o DPF Selection", "pen2sword-no-dpf"),
             Row("w/o Expansion", "pen2sword-no-expansion"), Row("w/o Fusion", "pen2sword-no-fusion"),
             Row("w/o Embedding Training", "pen2sword-f")),
            ROUGE, paper_source="table2", note="ROUGE at each run's last evaluation (training.max_steps)",
            differences=("Table 2 is read at each run's last evaluation (training.max_steps), the paper's at step 6k",))


def claims(spec: Spec, frame, values: dict[str, list[dict]]) -> list[dict]:
    """The ablation order: w/o Expansion ≪ w/o Fusion < w/o DPF ≈ w/o Embedding Training < Pen2Sword, each link
    tested (a tie is not "<"; "≈" is an equivalence within a stated margin)."""
    claim = ("ablation order (ROUGE-1): w/o Expansion ≪ w/o Fusion < w/o DPF ≈ w/o Embedding Training < Pen2Sword "
             f"(each link tested; ≈ within ±{EQUIVALENT_ROUGE:.0%} of the two rows' mean)")
    names = ("Pen2Sword", "w/o DPF Selection", "w/o Expansion", "w/o Fusion", "w/o Embedding Training")
    value = {r["row"]: clean(r["ROUGE-1"]) for _, r in frame.iterrows()} if "ROUGE-1" in frame else {}
    if any(value.get(k) is None for k in names):
        return [{"claim": claim, "holds": None, "evidence": MISSING}]
    full, dpf, expansion, fusion, embedding = names

    def link(a: str, b: str) -> dict:
        return difference_test(f"{a} − {b}", compared(values, a, b, "rouge1", last_evaluation))

    margin = EQUIVALENT_ROUGE * (value[dpf] + value[embedding]) / 2
    tests = [link(fusion, expansion), link(dpf, fusion), link(embedding, fusion),
             equivalence_test(f"{dpf} − {embedding}", compared(values, dpf, embedding, "rouge1", last_evaluation),
                              margin),
             link(full, dpf), link(full, embedding)]
    runs = runs_text({r["row"]: r["runs"] for _, r in frame.iterrows()})
    evidence = ", ".join(f"{k} {value[k]:.4f}" for k in names) + f"; {runs}"
    return [tested_claim(claim, evidence, tests, values, *names)]


register_table(SPEC, render_table, claims)
