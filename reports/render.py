"""Tables (Markdown, CSV, LaTeX), figures (PNG, PDF) and ``report.md``: ours beside the paper's numbers,
and which of the paper's claims hold on our runs. Everything comes from run directories (via
:mod:`reports.collect`) and the paper's transcribed numbers (``reports/paper_numbers.yaml``).
"""

from __future__ import annotations

import statistics
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from harness.io import atomic_write_text

from reports.claims import checkpoint_step, cost_claims, curve_claims, table_claims
from reports.collect import Found, run_values
from reports.paper_numbers import lookup
from reports.spec import Column, Row, Spec, expert_name


UPARROW = "\\uparrow"  # Table 4's headers keep the paper text's LaTeX arrow
CURVE_LABELS = {"rouge1": "ROUGE-1 (validation)", "rouge2": "ROUGE-2 (validation)", "rougeL": "ROUGE-L (validation)",
                "eval_loss": "eval loss (nats per token)", "eval_bits_per_byte": "eval bits per byte"}


@dataclass
class Rendered:
    spec: Spec
    markdown: str
    files: list[Path] = field(default_factory=list)
    claims: list[dict] = field(default_factory=list)  # {"claim", "holds", "evidence"[, "within_noise"]}
    missing: list[Found] = field(default_factory=list)


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _fmt(value: float | None, digits: int, std: float | None = None) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def _values(found: list[Found]) -> dict[str, list[dict]]:
    """Row label → the values of each of its completed runs (every seed; a row over experts: every expert's), and
    for a row over experts each expert's sub-row label (:meth:`reports.spec.Row.expert_label`) → that expert's."""
    out: dict[str, list[dict]] = {}
    for f in found:
        values = run_values(f.run) if f.run is not None else None
        for label in dict.fromkeys((f.need.row.label, f.need.label)):
            out.setdefault(label, [])
            if values is not None:
                out[label].append(values)
    return out


def _paper(spec: Spec, row: str, column: str) -> float | None:
    hits = lookup(source=spec.paper_source, row=row, column=column) if spec.paper_source else []
    return hits[0]["value"] if hits else None


def table_frame(spec: Spec, found: list[Found], values: dict[str, list[dict]] | None = None):
    """The table as a DataFrame (``values``: :func:`_values` of ``found``, when the caller has them already).

    One record per row of the spec, in its order: ``row`` its printed label, ``method`` its method, ``runs`` how
    many completed runs it has (every seed and, for a row over experts, every expert), and with several suites
    ``runs <suite>`` that suite's. Per column: ``<column>`` ours, ``<column> std`` the standard deviation over the
    runs behind it (None for one run), ``<column> paper`` the paper's number (None where it prints none), and with
    ``spec.change_against`` ``<column> change %`` against that row.

    A row over experts averages all its runs when its ``over_experts`` is "mean" (Figure 7). When it is "best"
    (Table 1), each column holds the mean and std of the one expert whose mean there is highest, and
    ``<column> from`` the label of that expert's sub-row, e.g. "Vanilla Model + LoRA + Pen2Sword (Llama2-7B-Chat)"
    (missing, NaN, while no expert has a value); a bits/byte column takes the expert of its accuracy column, so a
    cell and its companion come from the same runs. ``values`` holds each sub-row's runs under that label too, for
    claims that pair one expert's runs."""
    import pandas as pd

    values = _values(found) if values is None else values
    records = []
    for row in spec.rows:
        runs = values.get(row.label, [])
        record = {"row": row.label, "method": row.method, "runs": len(runs)}
        if len(spec.suites) > 1:  # a claim on one suite's column counts that suite's runs only
            record.update({f"runs {suite}": sum(v["suite"] == suite for v in runs) for suite in spec.suites})
        chosen: dict[str, str | None] = {}  # column → the expert sub-row its cell comes from (a best-of row)
        for col in sorted(spec.columns, key=lambda c: _accuracy_column(spec, c) is not None):  # companions last
            cell_runs = runs
            if row.over_experts == "best":
                accuracy = _accuracy_column(spec, col)
                source = chosen[accuracy.label] if accuracy is not None else _best_expert(spec, row, col, values)
                chosen[col.label] = record[f"{col.label} from"] = source
                cell_runs = values.get(source, []) if source is not None else []
            mean, std = _mean_std([_cell(col, v, spec) for v in cell_runs])
            record[col.label] = mean
            record[f"{col.label} std"] = std
            record[f"{col.label} paper"] = _paper(spec, row.label, col.label)
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    if spec.change_against is not None and (frame["row"] == spec.change_against).any():
        base = frame[frame["row"] == spec.change_against].iloc[0]
        for col in spec.columns:
            ref = _clean(base[col.label])
            frame[f"{col.label} change %"] = [None if _clean(v) is None or not ref else (v - ref) / ref * 100
                                              for v in frame[col.label]]
    return frame


def _accuracy_column(spec: Spec, col: Column) -> Column | None:
    """The accuracy column a bits-per-byte column accompanies (same benchmark, suites and checkpoint), if any."""
    if col.metric != "bits_per_byte":
        return None
    return next((c for c in spec.columns if c.metric == "score" and (c.benchmark, c.suites, c.checkpoint)
                 == (col.benchmark, col.suites, col.checkpoint)), None)


def _best_expert(spec: Spec, row: Row, col: Column, values: dict[str, list[dict]]) -> str | None:
    """The sub-row label of ``row``'s expert with the highest mean in ``col`` (the first of a tie; None where no
    expert's runs feed the column)."""
    means = {label: _mean_std([_cell(col, v, spec) for v in values.get(label, [])])[0]
             for label in map(row.expert_label, row.experts)}
    scored = {label: mean for label, mean in means.items() if mean is not None}
    return max(scored, key=scored.get) if scored else None


def _cell(col, run: dict, spec: Spec) -> float | None:
    """One run's value for a column (None where the run does not feed it)."""
    if col.benchmark is None:
        return run.get(col.metric)
    if run.get("suite") not in (col.suites or spec.suites):
        return None
    scores = run.get("benchmarks", {}) if col.checkpoint is None else _scores_at_checkpoint(run, col.checkpoint)
    value = (scores.get(col.benchmark) or {}).get(col.metric)
    return None if value is None else value * (100 if col.percent else 1)


def _scores_at_checkpoint(run: dict, index: int) -> dict:
    """The run's benchmark scores at its ``index``-th checkpoint step (none past its last checkpoint). A run
    that did not train was scored at step 0 only, and that score stands for every step (the paper's Vanilla
    Model row)."""
    step = checkpoint_step(index)(run)
    return {} if step is None else run["benchmarks_by_step"].get(step, {})


def _clean(value):
    return None if value is None or value != value else value  # NaN → None


def _cell_text(spec: Spec, r, col) -> str:
    """Ours (± std over seeds), the change against the reference row, the paper's number and the difference."""
    ours, std, paper = (_clean(r[f"{col.label}{k}"]) for k in ("", " std", " paper"))
    cell = _fmt(ours, col.digits, std)
    change = _clean(r.get(f"{col.label} change %"))
    if change is not None and r["row"] != spec.change_against:
        cell += f" ({change:+.1f}%)"
    if paper is not None:
        delta = "" if ours is None else f", Δ {ours - paper:+.{col.digits}f}"
        cell += f" [paper {paper:g}{delta}]"
    source = r.get(f"{col.label} from")
    if isinstance(source, str) and _accuracy_column(spec, col) is None:  # a companion's expert is its column's
        row = next(row for row in spec.rows if row.label == r["row"])
        cell += f" (from {next(expert_name(e) for e in row.experts if row.expert_label(e) == source)})"
    return cell


def table_markdown(spec: Spec, frame) -> str:
    head = ["", *[c.label for c in spec.columns], "runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in frame.iterrows():
        cells = [_cell_text(spec, r, col) for col in spec.columns]
        lines.append("| " + " | ".join([r["row"], *cells, str(r["runs"])]) + " |")
    return "\n".join(lines)


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
                cell = _cell_text(spec, r, col)
                if bits is not None and _clean(r[bits.label]) is not None:
                    cell += "; " + _fmt(_clean(r[bits.label]), bits.digits, _clean(r[f"{bits.label} std"]))
                cells.append(cell)
            lines.append("| " + " | ".join([r["row"], *cells, str(r[f"runs {suite}"])]) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def render_table(spec: Spec, found: list[Found], out: Path) -> Rendered:
    values = _values(found)
    frame = table_frame(spec, found, values)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / f"{spec.name}.csv", out / f"{spec.name}.md", out / f"{spec.name}.tex"]
    atomic_write_text(files[0], frame.to_csv(index=False))
    markdown = steps_markdown(spec, frame, found) if spec.kind == "steps" else table_markdown(spec, frame)
    atomic_write_text(files[1], f"## {spec.title}\n\n{markdown}\n\n{spec.note}\n")
    ours = frame[["row", *[c.label for c in spec.columns]]].set_index("row")
    atomic_write_text(files[2], ours.to_latex(float_format="%.3f", na_rep="--"))
    rendered = Rendered(spec, markdown, files, missing=[f for f in found if f.run is None])
    rendered.claims = table_claims(spec, frame, values)
    return rendered


# --- figures ---------------------------------------------------------------------------------------

def render_figure(spec: Spec, found: list[Found], out: Path) -> Rendered:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = _values(found)
    blocked = {f.need.row.label: f.need.not_runnable for f in found if f.run is None and f.need.not_runnable}
    out.mkdir(parents=True, exist_ok=True)
    panels = len(spec.curve_metrics) if spec.kind == "curve" else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    ax = axes[0][0]
    lines, claims = [], []
    if spec.kind == "curve":
        for ax, metric in zip(axes[0], spec.curve_metrics):
            plotted = False
            for row in spec.rows:
                runs = values.get(row.label, [])
                curves = [dict(v["curves"].get(metric, [])) for v in runs]
                steps = sorted({s for c in curves for s, x in c.items() if x is not None})
                if not steps:
                    continue
                per_step = [[c.get(s) for c in curves] for s in steps]
                means = [_mean_std(p)[0] for p in per_step]
                counted = (f"{len(runs)} run{'s' * (len(runs) > 1)} over {len(row.experts)} experts" if row.experts
                           else f"{len(runs)} seed{'s' * (len(runs) > 1)}")
                ax.plot(steps, means, marker="o", label=f"{row.label} ({counted})")
                if len(runs) > 1:
                    lows = [min(x for x in p if x is not None) for p in per_step]
                    highs = [max(x for x in p if x is not None) for p in per_step]
                    ax.fill_between(steps, lows, highs, alpha=0.2)
                lines.append(f"- {row.label}, {metric}: " + ", ".join(f"step {s} {m:.4f}" for s, m in zip(steps, means)))
                plotted = True
            ax.set_xlabel("training step")
            ax.set_ylabel(CURVE_LABELS.get(metric, f"{metric} score (checkpoints)"))
            if plotted:
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, "no runs yet", ha="center", va="center", transform=ax.transAxes)
            if blocked:  # say on the figure itself which curves cannot be there
                ax.text(0.01, 0.01, textwrap.fill("not runnable here: " + ", ".join(blocked), 90), fontsize=7,
                        color="gray", transform=ax.transAxes)
        claims = curve_claims(spec, values)
    else:  # cost: minutes per 1k steps, HumanEval written on the bars
        labels, minutes, scores = [], [], []
        for row in spec.rows:
            runs = values.get(row.label, [])
            labels.append(row.label)
            minutes.append(_mean_std([v["minutes_per_1k"] for v in runs])[0])
            scores.append(_mean_std([v["humaneval"] for v in runs])[0])
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
                 + (f" (paper {p:g})" if (p := _paper(spec, lab, "time per 1k training steps")) is not None else "")
                 + "".join(f"; CPU share {c:.0%}" for c in shares[lab] if c is not None)
                 for lab, m, s in zip(labels, minutes, scores)]
        claims = cost_claims(values)
    lines += [f"- {label}: not runnable here: {why}" for label, why in blocked.items()]
    fig.suptitle(spec.title, fontsize=9)
    fig.tight_layout()
    files = [out / f"{spec.name}.png", out / f"{spec.name}.pdf"]
    for path in files:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return Rendered(spec, "\n".join(lines) or "(no runs yet)", files, claims, [f for f in found if f.run is None])


# --- Table 6: the paper's numbers only (no benchmark here can produce ours) ------------------------

def render_paper_only(spec: Spec, out: Path) -> Rendered:
    entries = lookup(source=spec.paper_source)
    column = entries[0]["column"] if entries else "score"
    lines = [f"| dataset | model | paper: {column} | ours |", "|---|---|---|---|"]
    lines += [f"| {e.get('group', '')} | {e['row']} | {e['value']:g} | – |" for e in entries]
    claims = []
    for group in dict.fromkeys(e.get("group") for e in entries):
        scores = {e["row"]: e["value"] for e in entries if e.get("group") == group}
        vanilla = next((v for k, v in scores.items() if "Pen2Sword" not in k), None)
        p2s = next((v for k, v in scores.items() if "Pen2Sword" in k), None)
        claims.append({"claim": f"{group}: Pen2Sword's transferred embeddings beat the vanilla model at 0 steps "
                                f"(paper: {p2s:g} vs {vanilla:g})", "holds": None, "evidence": spec.note})
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{spec.name}.md"
    markdown = "\n".join(lines)
    atomic_write_text(path, f"## {spec.title}\n\n{markdown}\n\n{spec.note}\n")
    return Rendered(spec, markdown, [path], claims, [])


# --- Table 3: DPF rankings (written by `harness dpf` under <results>/dpf/) --------------------------

DPF_COLUMNS = (("Accuracy", "Accuracy"), ("Domain Coverage", "Domain Coverage"), ("Depth", "Domain Depth"),
               ("Terminology Appropriateness", "Terminology Appropriateness"), ("total", "Total Score (0–20)"))


def paper_name(candidate: str) -> str:
    """The paper's name of a candidate (a built-in stand-in or a paper-scale registry name)."""
    from harness.zoo.recipe import ROLES

    for role in ROLES:
        if candidate in (role.name, role.paper_model):
            return role.stands_in_for
    return candidate


def render_dpf(spec: Spec, results, scale: str, out: Path) -> Rendered:
    import json

    from harness.paths import results_dir

    root = Path(results) if results else results_dir()
    rankings = [json.loads(p.read_text()) for p in sorted((root / "dpf" / spec.suites[0]).glob("*/ranking.json"))]
    rankings = [r for r in rankings if r.get("scale") == scale]
    rankings.sort(key=lambda r: (not r["judge"].startswith("openai:"), r["judge"]))  # the paper's kind of judge first
    paper_top = max(lookup(source="table3", column="Total Score (0–20)"), key=lambda r: r["value"], default=None)
    claim = f"DPF ranks the paper's top candidate first ({paper_top['row'] if paper_top else '?'})"
    if not rankings:
        return Rendered(spec, "(no DPF ranking yet)", claims=[{"claim": claim, "holds": None, "evidence": "no ranking"}],
                        missing=[], files=[])
    ranking = rankings[0]
    lines = [f"judge {ranking['judge']}, {ranking['n_questions']} questions; other rankings: "
             + (", ".join(r["judge"] for r in rankings[1:]) or "none"), "",
             "| candidate | paper's model | " + " | ".join(p for _, p in DPF_COLUMNS) + " |",
             "|" + "---|" * (2 + len(DPF_COLUMNS))]
    for row in ranking["rows"]:
        name = paper_name(row["candidate"])
        cells = []
        for ours_key, paper_col in DPF_COLUMNS:
            value = row.get(ours_key)
            hits = lookup(source="table3", row=name, column=paper_col)
            cell = "–" if value is None else f"{value:.2f}"
            cells.append(cell + (f" [paper {hits[0]['value']:g}]" if hits else ""))
        lines.append(f"| {row['candidate']} | {name} | " + " | ".join(cells) + " |")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "table3.md"
    atomic_write_text(path, f"## {spec.title}\n\n" + "\n".join(lines) + "\n")
    top = paper_name(ranking["rows"][0]["candidate"]) if ranking["rows"] else None
    claims = [{"claim": claim, "holds": None if paper_top is None or top is None else top == paper_top["row"],
               "evidence": f"ours: {top} first by {ranking['judge']}"}]
    return Rendered(spec, "\n".join(lines), [path], claims, [])
