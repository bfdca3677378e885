"""Figure 2: ROUGE-1 against training steps, LoRA beside Pen2Sword (a: code, b: math), and what each method
costs per 1k training steps (c), with the claims the paper reads from them: Pen2Sword reaches LoRA's best in
fewer steps, and costs about what LoRA costs."""

from __future__ import annotations

from reports.claims import (COST_MARGIN, faster_claim, higher_claim, less_degenerate_claim, lower_bits_claim,
                            minutes_claim, paper_minutes)
from reports.collect import Found
from reports.paper_numbers import lookup, paper_value
from reports.registry import Context, Table, register_table
from reports.render import Rendered, blocked_rows, render_curves, row_values, save_figure, start_figure
from reports.spec import Row, Spec
from reports.stats import mean_std

FIGURE2A = Spec("figure2a", "Figure 2a: ROUGE-1 against training steps (code)", "code",
                (Row("LoRA", "lora"), Row("Pen2Sword", "pen2sword")), paper_source="figure2a")
FIGURE2B = Spec("figure2b", "Figure 2b: ROUGE-1 against training steps (math)", "math",
                (Row("LoRA", "lora"), Row("Pen2Sword", "pen2sword")), paper_source="figure2b")
FIGURE2C = Spec("figure2c", "Figure 2c: minutes per 1k training steps and HumanEval (code)", "code",
                (Row("LoRA", "lora"), Row("Weak2Strong", "weak2strong"), Row("ProxyTuning", "proxytuning"),
                 Row("Pen2Sword", "pen2sword")), paper_source="figure2c",
                note="minutes are each run's wall time less model building and benchmarks, validation included: "
                     "compare runs made on the same otherwise idle machine; `pytest -m perf "
                     "tests/perf/test_bench_methods.py` measures the four methods in one session",
                differences=("Figure 2c's minutes are this machine's (the paper's: an NVIDIA A800)",))


PAPER_COLUMN = "time per 1k training steps"  # Figure 2c's numbers in paper_numbers.yaml


def rouge_claims(spec: Spec, values: dict[str, list[dict]]) -> list[dict]:
    """Pen2Sword reaches LoRA's best ROUGE-1 in fewer steps and is higher at the same budget (the paper's), and
    two checks of ours beside them: lower eval bits per byte, less often degenerate generations."""
    stated = {r["row"]: r["value"] for r in lookup(source=spec.paper_source)}
    paper = ""
    if {"LoRA", "Pen2Sword"} <= set(stated):  # the paper: "from 10k to 1k" (code), "from 3k to 2k" (math)
        paper = (f" (paper: {stated['Pen2Sword']:g} steps instead of LoRA's {stated['LoRA']:g}, "
                 f"{stated['LoRA'] / stated['Pen2Sword']:.1f}× fewer)")
    return [faster_claim(values, "LoRA", "Pen2Sword", paper), higher_claim(values, "LoRA", "Pen2Sword"),
            lower_bits_claim(values), less_degenerate_claim(values)]


def cost_claims(spec: Spec, values: dict[str, list[dict]]) -> list[dict]:
    """Pen2Sword costs what LoRA costs per 1k steps (within 15%); Weak2Strong and ProxyTuning cost more (their
    labelling included, also when it came from a cache another run made)."""
    lora = paper_minutes("LoRA")
    return [minutes_claim(f"Pen2Sword costs about what LoRA costs per 1k steps (paper: {paper_minutes('Pen2Sword'):g}"
                          f" vs {lora:g} minutes; within {COST_MARGIN:.0%})", values, "Pen2Sword", "LoRA",
                          side="within"),
            *(minutes_claim(f"{name} costs more than LoRA per 1k steps (paper: {paper_minutes(name) / lora:.1f}x)",
                            values, name, "LoRA", side="above") for name in ("Weak2Strong", "ProxyTuning"))]


def render_cost(table: Table, found: list[Found], context: Context) -> Rendered:
    """A bar per row: its minutes per 1k training steps, its HumanEval pass@1 written on the bar."""
    spec, out = table.spec, context.out
    values = row_values(found)
    blocked = blocked_rows(found)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = start_figure()
    ax = axes[0][0]
    labels, minutes, scores = [], [], []
    for row in spec.rows:
        runs = values.get(row.label, [])
        labels.append(row.label)
        minutes.append(mean_std([v["minutes_per_1k"] for v in runs])[0])
        scores.append(mean_std([v["humaneval"] for v in runs])[0])
    bars = ax.bar(labels, [m or 0.0 for m in minutes])
    for bar, m, score in zip(bars, minutes, scores):
        text = "no run" if m is None else ("" if score is None else f"pass@1 {score:.3f}")
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom",
                    fontsize=8)
    ax.set_ylabel("minutes per 1k training steps")
    ax.tick_params(axis="x", labelsize=8)
    shares = {lab: [v.get("cpu_share") for v in values.get(lab, [])] for lab in labels}
    lines = [f"- {lab}: " + ("no run" if m is None else f"{m:.1f} min per 1k steps")
             + (f", HumanEval {s:.3f}" if s is not None else "")
             + (f" (paper {p:g})" if (p := paper_value(spec.paper_source, lab, PAPER_COLUMN)) is not None else "")
             + "".join(f"; CPU share {c:.0%}" for c in shares[lab] if c is not None)
             for lab, m, s in zip(labels, minutes, scores)]
    lines += [f"- {label}: not runnable here: {why}" for label, why in blocked.items()]
    files = save_figure(fig, spec, out)
    return Rendered(spec, "\n".join(lines) or "(no runs yet)", files, table.claims(spec, values),
                    [f for f in found if f.run is None])


register_table(FIGURE2A, render_curves, rouge_claims, group="figure2")
register_table(FIGURE2B, render_curves, rouge_claims, group="figure2")
register_table(FIGURE2C, render_cost, cost_claims, group="figure2")
