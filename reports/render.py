"""The shared renderers: tables (Markdown, CSV, LaTeX) and figures (PNG, PDF), ours beside the paper's numbers.
Everything comes from run directories (via :mod:`reports.collect`) and the paper's transcribed numbers
(``reports/paper_numbers.yaml``). A table's own module (``reports/tables/``) picks its renderer: the generic
:func:`render_table` (with Markdown of its own where the paper prints the table otherwise: Table 4) or
:func:`render_curves`, or one of its own built from the helpers here (:func:`start_figure`,
:func:`save_figure`, :func:`blocked_rows`). ``report.md`` is assembled by :mod:`reports.cli`.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from harness.io import atomic_write_text

from reports.claims import checkpoint_step
from reports.collect import Found, run_values
from reports.paper_numbers import paper_value
from reports.spec import Column, Row, Spec, expert_name
from reports.stats import clean, mean_std

if TYPE_CHECKING:
    from reports.registry import Context, Table

CURVE_LABELS = {"rouge1": "ROUGE-1 (validation)", "rouge2": "ROUGE-2 (validation)", "rougeL": "ROUGE-L (validation)",
                "eval_loss": "eval loss (nats per token)", "eval_bits_per_byte": "eval bits per byte"}


@dataclass
class Rendered:
    """What the report shows of one table: its Markdown (its files beside it), its claims, its needed runs that
    are missing, and ``todo``: further lines for the report's list of what is missing (a command to run, or why
    nothing here can make it)."""

    spec: Spec
    markdown: str
    files: list[Path] = field(default_factory=list)
    claims: list[dict] = field(default_factory=list)  # {"claim", "holds", "evidence"[, "tests", ...]}
    missing: list[Found] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)


def fmt(value: float | None, digits: int, std: float | None = None) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


# --- tables ------------------------------------------------------------------------------------------

def row_values(found: list[Found]) -> dict[str, list[dict]]:
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


def table_frame(spec: Spec, found: list[Found], values: dict[str, list[dict]] | None = None):
    """The table as a DataFrame (``values``: :func:`row_values` of ``found``, when the caller has them already).

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

    values = row_values(found) if values is None else values
    records = []
    for row in spec.rows:
        runs = values.get(row.label, [])
        record = {"row": row.label, "method": row.method, "runs": len(runs)}
        if len(spec.suites) > 1:  # a claim on one suite's column counts that suite's runs only
            record.update({f"runs {suite}": sum(v["suite"] == suite for v in runs) for suite in spec.suites})
        chosen: dict[str, str | None] = {}  # column → the expert sub-row its cell comes from (a best-of row)
        for col in sorted(spec.columns, key=lambda c: accuracy_column(spec, c) is not None):  # companions last
            cell_runs = runs
            if row.over_experts == "best":
                accuracy = accuracy_column(spec, col)
                source = chosen[accuracy.label] if accuracy is not None else _best_expert(spec, row, col, values)
                chosen[col.label] = record[f"{col.label} from"] = source
                cell_runs = values.get(source, []) if source is not None else []
            mean, std = mean_std([_cell(col, v, spec) for v in cell_runs])
            record[col.label] = mean
            record[f"{col.label} std"] = std
            record[f"{col.label} paper"] = paper_value(spec.paper_source, row.label, col.label)
        records.append(record)
    frame = pd.DataFrame.from_records(records)
    if spec.change_against is not None and (frame["row"] == spec.change_against).any():
        base = frame[frame["row"] == spec.change_against].iloc[0]
        for col in spec.columns:
            ref = clean(base[col.label])
            frame[f"{col.label} change %"] = [None if clean(v) is None or not ref else (v - ref) / ref * 100
                                              for v in frame[col.label]]
    return frame


def accuracy_column(spec: Spec, col: Column) -> Column | None:
    """The accuracy column a bits-per-byte column accompanies (same benchmark, suites and checkpoint), if any."""
    if col.metric != "bits_per_byte":
        return None
    return next((c for c in spec.columns if c.metric == "score" and (c.benchmark, c.suites, c.checkpoint)
                 == (col.benchmark, col.suites, col.checkpoint)), None)


def _best_expert(spec: Spec, row: Row, col: Column, values: dict[str, list[dict]]) -> str | None:
    """The sub-row label of ``row``'s expert with the highest mean in ``col`` (the first of a tie; None where no
    expert's runs feed the column)."""
    means = {label: mean_std([_cell(col, v, spec) for v in values.get(label, [])])[0]
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


def cell_text(spec: Spec, r, col) -> str:
    """Ours (± std over seeds), the change against the reference row, the paper's number and the difference."""
    ours, std, paper = (clean(r[f"{col.label}{k}"]) for k in ("", " std", " paper"))
    cell = fmt(ours, col.digits, std)
    change = clean(r.get(f"{col.label} change %"))
    if change is not None and r["row"] != spec.change_against:
        cell += f" ({change:+.1f}%)"
    if paper is not None:
        delta = "" if ours is None else f", Δ {ours - paper:+.{col.digits}f}"
        cell += f" [paper {paper:g}{delta}]"
    source = r.get(f"{col.label} from")
    if isinstance(source, str) and accuracy_column(spec, col) is None:  # a companion's expert is its column's
        row = next(row for row in spec.rows if row.label == r["row"])
        cell += f" (from {next(expert_name(e) for e in row.experts if row.expert_label(e) == source)})"
    return cell


def table_markdown(spec: Spec, frame, found: list[Found] | None = None) -> str:
    """One line per spec row, one column per spec column (:func:`cell_text`), and the runs behind each row."""
    head = ["", *[c.label for c in spec.columns], "runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in frame.iterrows():
        cells = [cell_text(spec, r, col) for col in spec.columns]
        lines.append("| " + " | ".join([r["row"], *cells, str(r["runs"])]) + " |")
    return "\n".join(lines)


Markdown = Callable[[Spec, "object", "list[Found]"], str]  # (spec, frame, found) → the table's Markdown


def render_table(table: Table, found: list[Found], context: Context, *,
                 markdown: Markdown = table_markdown) -> Rendered:
    """``<name>.csv`` (the frame, :func:`table_frame`), ``<name>.md`` (``markdown(spec, frame, found)``) and
    ``<name>.tex``; the claims are ``table.claims(spec, frame, values)``."""
    spec, out = table.spec, context.out
    values = row_values(found)
    frame = table_frame(spec, found, values)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / f"{spec.name}.csv", out / f"{spec.name}.md", out / f"{spec.name}.tex"]
    atomic_write_text(files[0], frame.to_csv(index=False))
    text = markdown(spec, frame, found)
    atomic_write_text(files[1], f"## {spec.title}\n\n{text}\n\n{spec.note}\n")
    ours = frame[["row", *[c.label for c in spec.columns]]].set_index("row")
    atomic_write_text(files[2], ours.to_latex(float_format="%.3f", na_rep="--"))
    claims = table.claims(spec, frame, values) if table.claims else []
    return Rendered(spec, text, files, claims, missing=[f for f in found if f.run is None])


# --- figures ---------------------------------------------------------------------------------------

def start_figure(panels: int = 1):
    """A figure of ``panels`` axes side by side, drawn headless: ``(figure, axes)``, ``axes[0][i]`` the i-th."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)


def save_figure(fig, spec: Spec, out: Path) -> list[Path]:
    """``<name>.png`` and ``<name>.pdf`` under ``out``, titled with the spec's title; the figure is closed."""
    import matplotlib.pyplot as plt

    fig.suptitle(spec.title, fontsize=9)
    fig.tight_layout()
    files = [out / f"{spec.name}.png", out / f"{spec.name}.pdf"]
    for path in files:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return files


def blocked_rows(found: list[Found]) -> dict[str, str]:
    """Row label → why this machine or scale cannot make the row's missing runs."""
    return {f.need.row.label: f.need.not_runnable for f in found if f.run is None and f.need.not_runnable}


def render_curves(table: Table, found: list[Found], context: Context) -> Rendered:
    """``<name>.png``/``.pdf``, a panel per ``spec.curve_metrics``: each row's mean over its runs against the
    training step (the runs' range shaded), the same listed in the Markdown; the claims are
    ``table.claims(spec, values)``."""
    spec, out = table.spec, context.out
    values = row_values(found)
    blocked = blocked_rows(found)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = start_figure(len(spec.curve_metrics))
    lines = []
    for ax, metric in zip(axes[0], spec.curve_metrics):
        plotted = False
        for row in spec.rows:
            runs = values.get(row.label, [])
            curves = [dict(v["curves"].get(metric, [])) for v in runs]
            steps = sorted({s for c in curves for s, x in c.items() if x is not None})
            if not steps:
                continue
            per_step = [[c.get(s) for c in curves] for s in steps]
            means = [mean_std(p)[0] for p in per_step]
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
    claims = table.claims(spec, values) if table.claims else []
    lines += [f"- {label}: not runnable here: {why}" for label, why in blocked.items()]
    files = save_figure(fig, spec, out)
    return Rendered(spec, "\n".join(lines) or "(no runs yet)", files, claims, [f for f in found if f.run is None])
