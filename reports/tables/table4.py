"""Table 4: HumanEval and MATH at each checkpoint, per expert, printed as the paper prints it (one table per
benchmark, a column per checkpoint), and whether Pen2Sword beats LoRA at every step, per expert."""

from __future__ import annotations

from harness.zoo.recipe import ROLE_BY_NAME

from reports.claims import MISSING, checkpoint_step, compared, difference_test, runs_text, tested_claim
from reports.collect import Found
from reports.paper_numbers import paper_value
from reports.registry import Context, Table, register_table
from reports.render import Rendered, cell_text, fmt, render_table
from reports.spec import BOTH, Column, Row, Spec, expert_name, expert_override
from reports.stats import clean

# The paper's experts per benchmark (built-in stand-ins; the paper's names are the roles' stands_in_for), and its
# checkpoints, which map in order onto a run's training.checkpoint_steps.
EXPERTS = {"code": ("chat-expert", "code-expert", "code-instruct-expert", "vicuna-v1.3-expert", "vicuna-v1.5-expert"),
           "math": ("chat-expert", "vicuna-v1.3-expert", "vicuna-v1.5-expert")}
BENCHMARKS = (("HumanEval", "humaneval", "code"), ("MATH", "math-l5", "math"))
PAPER_STEPS = ("1k", "2k", "3k", "5k")
UPARROW = "\\uparrow"  # the headers keep the paper text's LaTeX arrow


def _rows() -> tuple[Row, ...]:
    """Vanilla, LoRA, then Weak2Strong, ProxyTuning and Pen2Sword once per expert, as the paper prints them.
    ProxyTuning's anti-expert is each expert's untuned base (methods.proxytuning.anti_expert_for)."""
    rows = [Row("Vanilla Model", "vanilla"), Row("Vanilla Model + LoRA", "lora")]
    for method, name in (("weak2strong", "Weak2Strong"), ("proxytuning", "ProxyTuning"), ("pen2sword", "Pen2Sword")):
        for expert in EXPERTS["code"]:
            suites = tuple(s for s in BOTH if expert in EXPERTS[s])
            overrides = expert_override(expert, suites[0]) if len(suites) == 1 else (f"model.expert={expert}",)
            rows.append(Row(f"Vanilla Model + LoRA + {name} ({expert_name(expert)})", method, overrides, suites))
    return tuple(rows)


def _columns() -> tuple[Column, ...]:
    """Per benchmark and paper step: the score (×100) and its bits-per-byte companion."""
    columns = []
    for label, benchmark, suite in BENCHMARKS:
        for index, step in enumerate(PAPER_STEPS):
            paper_label = f"{label} (\\uparrow) / step={step}"  # exactly as paper_numbers.yaml has it
            columns += [Column(paper_label, "score", 1, benchmark, (suite,), percent=True, checkpoint=index),
                        Column(f"{paper_label} (bits/byte)", "bits_per_byte", 3, benchmark, (suite,),
                               checkpoint=index)]
    return tuple(columns)


SPEC = Spec("table4", "Table 4: HumanEval and MATH at each checkpoint, per expert (accuracy %, change against the "
                      "Vanilla Model)", BOTH, _rows(), _columns(), paper_source="table4",
            change_against="Vanilla Model", seeds=3,
            note="the paper's step=1k/2k/3k/5k are each run's training.checkpoint_steps in order (micro "
                 "100/200/300/500; nano has three, so no 5k); the Vanilla Model does not train: its step-0 score "
                 "stands for every step, as in the paper; after ';' the bits per byte of the reference answer (lower "
                 "is better); experts are the built-in stand-ins (chat-expert, code-expert, code-instruct-expert, "
                 "vicuna-v1.3-expert, vicuna-v1.5-expert) at nano and micro; ProxyTuning's anti-expert is each "
                 "expert's untuned base (`harness reproduce --dry-run` names it)",
            stand_in_differences=(
                "Table 4's two Vicuna stand-ins are tuned from one base (small-base-b), so both get it as "
                "ProxyTuning's anti-expert; the paper's come from two (Vicuna-7B-v1.3 from LLaMA-7B, v1.5 from "
                "Llama-2-7B)",))


def steps_markdown(spec: Spec, frame, found: list[Found]) -> str:
    """Table 4 as the paper prints it: one table per benchmark, a row per method and expert, a column per
    checkpoint (the paper's step and ours); after ';' the bits per byte of the reference answer."""
    checkpoints: dict[str, tuple[int, ...]] = {}  # suite → the runs' training.checkpoint_steps
    for f in found:
        checkpoints.setdefault(f.need.config.suite, f.need.config.training.checkpoint_steps)
    groups: dict[str, list] = {}  # "HumanEval (\uparrow)" (the paper's LaTeX) → its score columns, by step
    for col in spec.columns:
        if col.metric == "score":
            groups.setdefault(col.label.split(" / ")[0], []).append(col)
    companion = {(c.benchmark, c.checkpoint): c for c in spec.columns if c.metric == "bits_per_byte"}
    rows = {row.label: row for row in spec.rows}
    blocks = []
    for title, columns in groups.items():
        suite = columns[0].suites[0]
        steps = checkpoints.get(suite, ())
        head = ["", *[f"{c.label.split(' / ')[1]} (ours {steps[c.checkpoint] if c.checkpoint < len(steps) else '–'})"
                      for c in columns], "runs"]
        lines = [f"**{title.replace(UPARROW, '↑')}** ({suite} suite, ×100)", "",
                 "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for _, r in frame.iterrows():
            if suite not in (rows[r["row"]].suites or spec.suites):
                continue
            cells = []
            for col in columns:
                bits = companion.get((col.benchmark, col.checkpoint))
                cell = cell_text(spec, r, col)
                if bits is not None and clean(r[bits.label]) is not None:
                    cell += "; " + fmt(clean(r[bits.label]), bits.digits, clean(r[f"{bits.label} std"]))
                cells.append(cell)
            lines.append("| " + " | ".join([r["row"], *cells, str(r[f"runs {suite}"])]) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def render(table: Table, found: list[Found], context: Context) -> Rendered:
    return render_table(table, found, context, markdown=steps_markdown)


def paper_beats_at_every_step(ours: dict[str, float | None], base: dict[str, float | None]) -> bool | None:
    """Whether the paper's own numbers have ``ours`` above ``base`` at every step either has (None: no step, or
    a step with one and not the other)."""
    steps = [s for s in ours if ours[s] is not None or base.get(s) is not None]
    if not steps or any(ours[s] is None or base.get(s) is None for s in steps):
        return None
    return all(ours[s] > base[s] for s in steps)


def claims(spec: Spec, frame, values: dict[str, list[dict]] | None = None) -> list[dict]:
    """Per expert: Pen2Sword beats LoRA on HumanEval at every step (a test per checkpoint, each strict). The
    evidence also says whether the paper's own numbers bear it out for that expert."""
    values = values or {}
    scores = [c for c in spec.columns if c.benchmark == "humaneval" and c.metric == "score"]
    rows = {r["row"]: r for _, r in frame.iterrows()}
    lora = "Vanilla Model + LoRA"

    def step_name(column) -> str:
        return column.label.split("step=")[1]

    out = []
    for expert in EXPERTS["code"]:
        name = ROLE_BY_NAME[expert].stands_in_for
        p2s = f"Vanilla Model + LoRA + Pen2Sword ({name})"
        paper = {step_name(c): paper_value(spec.paper_source, p2s, c.label) for c in scores}
        paper_base = {step_name(c): paper_value(spec.paper_source, lora, c.label) for c in scores}
        paper_text = ("paper: " + {True: "holds", False: "does not hold", None: "n/a"}[
            paper_beats_at_every_step(paper, paper_base)] + " (" + ", ".join(
            f"{k} {paper[k]:g} vs {paper_base[k]:g}" for k in paper if paper[k] is not None) + ")")
        claim = f"Pen2Sword ({name}) beats LoRA at every step on HumanEval"
        ours = {step_name(c): clean(rows[p2s][c.label]) if p2s in rows else None for c in scores}
        base = {step_name(c): clean(rows[lora][c.label]) if lora in rows else None for c in scores}
        steps = [c for c in scores if ours[step_name(c)] is not None]
        if not steps or any(base[step_name(c)] is None for c in steps):
            out.append({"claim": claim, "holds": None, "evidence": f"{MISSING}; {paper_text}"})
            continue
        tests = [difference_test(f"{step_name(c)}: Pen2Sword − LoRA",
                                 compared(values, p2s, lora, "humaneval/score", checkpoint_step(c.checkpoint),
                                          ("code",)), digits=1, scale=100) for c in steps]
        runs = runs_text({"Pen2Sword": rows[p2s]["runs code"], "LoRA": rows[lora]["runs code"]})
        evidence = (", ".join(f"{step_name(c)} {ours[step_name(c)]:.1f} vs {base[step_name(c)]:.1f}" for c in steps)
                    + f"; {runs}; {paper_text}")
        out.append(tested_claim(claim, evidence, tests, values, p2s, lora))
    return out


register_table(SPEC, render, claims)
