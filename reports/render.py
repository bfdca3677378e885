"""Tables (Markdown, CSV, LaTeX), figures (PNG, PDF) and ``report.md``: ours beside the paper's numbers,
and which of the paper's claims hold on our runs. Everything comes from run directories (via
:mod:`reports.collect`) and the paper's transcribed numbers (``reports/paper_numbers.yaml``).
"""

from __future__ import annotations

import math
import statistics
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from harness.io import atomic_write_text
from harness.runstore import RunDir

from reports.collect import Found, item_values, run_values
from reports.paper_numbers import lookup
from reports.spec import ROLE_BY_NAME, TABLE4_EXPERTS, Spec


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
    """Row label → the values of each completed seed's run."""
    out: dict[str, list[dict]] = {}
    for f in found:
        out.setdefault(f.need.row.label, [])
        if f.run is not None:
            out[f.need.row.label].append(run_values(f.run))
    return out


def _paper(spec: Spec, row: str, column: str) -> float | None:
    hits = lookup(source=spec.paper_source, row=row, column=column) if spec.paper_source else []
    return hits[0]["value"] if hits else None


def table_frame(spec: Spec, found: list[Found], values: dict[str, list[dict]] | None = None):
    """One row per paper row: for each column, ours (mean over seeds), its std, the paper's and n
    (``values``: :func:`_values` of ``found``, when the caller has them already)."""
    import pandas as pd

    values = _values(found) if values is None else values
    records = []
    for row in spec.rows:
        runs = values.get(row.label, [])
        record = {"row": row.label, "method": row.method, "runs": len(runs)}
        if len(spec.suites) > 1:  # a claim on one suite's column counts that suite's runs only
            record.update({f"runs {suite}": sum(v["suite"] == suite for v in runs) for suite in spec.suites})
        for col in spec.columns:
            mean, std = _mean_std([_cell(col, v, spec) for v in runs])
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
    step = _checkpoint_step(index)(run)
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
                ax.plot(steps, means, marker="o", label=f"{row.label} ({len(runs)} seed{'s' * (len(runs) > 1)})")
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
        claims = cost_claims(dict(zip(labels, minutes)), {lab: len(values.get(lab, [])) for lab in labels}, shares)
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


# --- claims ----------------------------------------------------------------------------------------
# Every claim: {"claim", "holds": True/False/None, "evidence"}, and "within_noise": True where the paired
# comparison it rests on cannot tell its rows apart. "holds" is None with "runs missing" when a run it compares
# is absent. Evidence names the numbers and how many runs (seeds × suites) stand behind them.

MISSING = "runs missing"


def _runs_text(counts: dict[str, int]) -> str:
    """How many runs stand behind each compared row: "1 run each" or "runs: LoRA 2, Pen2Sword 1"."""
    if len(set(counts.values())) == 1:
        n = next(iter(counts.values()))
        return f"{n} run{'s' * (n != 1)} each"
    return "runs: " + ", ".join(f"{k} {v}" for k, v in counts.items())


# --- paired differences over items ----------------------------------------------------------------
# A claim compares two rows' means. At micro scale (50 benchmark items, 100 validation items) a gap of
# several points can be noise; pairing the items both rows scored cancels how hard each item is, and the
# interval of the mean difference says whether the gap stands out from what is left.

# The line heading report.md's claims section (reports.cli writes that section).
CLAIMS_HOW_TO_READ = ("How to read the evidence: \"paired over N items: Δ\" is the mean per-item difference between "
                      "the two rows compared (the one the claim is about minus the other, or as named \"A − B\"), "
                      "over the same items both scored, with its 95% interval (mean ± 1.96 standard errors); "
                      "\"within noise\" means the interval holds 0: the data cannot tell the two apart, whatever "
                      "\"holds\" says of the means.")
Z95 = 1.96  # normal quantile of a two-sided 95% interval


def paired_difference(a: dict, b: dict) -> dict | None:
    """``a − b`` over the item ids both have (item id → value each): ``{"n", "mean", "se", "low", "high",
    "distinguishable"}``. ``se`` is the sample standard deviation of the differences / sqrt(n), the interval
    ``mean ± 1.96 se``, and ``distinguishable`` whether it excludes 0. One shared item has no standard error:
    ``se``, the interval and ``distinguishable`` are None. None: no id in common."""
    shared = sorted(a.keys() & b.keys())
    if not shared:
        return None
    differences = [a[item] - b[item] for item in shared]
    mean = statistics.fmean(differences)
    if len(differences) == 1:
        return {"n": 1, "mean": mean, "se": None, "low": None, "high": None, "distinguishable": None}
    se = statistics.stdev(differences) / math.sqrt(len(differences))
    low, high = mean - Z95 * se, mean + Z95 * se
    return {"n": len(differences), "mean": mean, "se": se, "low": low, "high": high,
            "distinguishable": low > 0 or high < 0}


def paired_over_runs(a: dict[tuple, dict], b: dict[tuple, dict]) -> dict | None:
    """:func:`paired_difference` of two rows that may each have several runs, keyed by ``(suite, seed)``.

    Items are paired within each run key both rows have (same seed, same suite), and each item's values are
    averaged over those keys before the differences' mean and standard error are taken: with several seeds an
    item still counts once, its difference averaged over seeds, so seeds do not pose as more items. The
    result adds ``runs``, the number of keys paired; None where no item is shared within a shared key."""
    keys = [key for key in a if key in b]
    sums_a: dict[str, float] = {}
    sums_b: dict[str, float] = {}
    counts: dict[str, int] = {}
    for key in keys:
        for item in a[key].keys() & b[key].keys():
            sums_a[item] = sums_a.get(item, 0.0) + a[key][item]
            sums_b[item] = sums_b.get(item, 0.0) + b[key][item]
            counts[item] = counts.get(item, 0) + 1
    stats = paired_difference({i: v / counts[i] for i, v in sums_a.items()},
                              {i: v / counts[i] for i, v in sums_b.items()})
    return None if stats is None else {**stats, "runs": len(keys)}


def items_by_run(runs: list[dict], metric: str, step_of) -> dict[tuple, dict]:
    """``(suite, seed)`` → item id → value (:func:`reports.collect.item_values`) for each of ``runs``
    (:func:`reports.collect.run_values` dicts) at ``step_of(run)``; runs without per-item samples there are
    left out."""
    out = {}
    for run in runs:
        step = step_of(run)
        if run.get("run_dir") is None or step is None:
            continue
        values = item_values(RunDir(Path(run["run_dir"])), step, metric)
        if values:
            out[(run.get("suite"), run.get("seed"))] = values
    return out


def _signed(value: float, digits: int) -> str:
    return f"{value:+.{digits}f}"


def _difference_text(stats: dict, digits: int, scale: float) -> str:
    """The difference and its interval, ``Δ +0.018 [95% CI +0.006, +0.030]``; ``no item differs`` where every
    difference is 0 (both rows failing every item of a hard benchmark: an interval of width 0 would only look
    precise)."""
    if stats["se"] == 0 and stats["mean"] == 0:
        return "no item differs"
    interval = ("" if stats["se"] is None else
                f" [95% CI {_signed(stats['low'] * scale, digits)}, {_signed(stats['high'] * scale, digits)}]")
    return f"Δ {_signed(stats['mean'] * scale, digits)}{interval}"


def paired_text(stats: dict | None, digits: int, scale: float = 1.0) -> str:
    """``paired over 100 items: Δ +0.018 [95% CI +0.006, +0.030], distinguishable from noise`` (or ``within
    noise``), the values ×``scale`` as the claim shows them."""
    if stats is None:
        return "no items scored by both"
    runs = f" × {stats['runs']} runs" if stats.get("runs", 1) > 1 else ""
    head = f"paired over {stats['n']} item{'s' * (stats['n'] != 1)}{runs}: {_difference_text(stats, digits, scale)}"
    if stats["se"] is None:
        return head + ", no standard error from one item"
    return head + (", distinguishable from noise" if stats["distinguishable"] else ", within noise")


@dataclass(frozen=True)
class Paired:
    """A paired comparison as a claim's evidence: its ``text`` and whether it leaves the order of the two rows
    undecided (``within_noise``: an interval holds 0), which :func:`reports.cli.holds_text` reads."""
    text: str
    within_noise: bool = False


def _within_noise(stats: dict | None) -> bool:
    """An interval exists and holds 0 (one shared item has no interval: nothing to decide on)."""
    return stats is not None and stats["se"] is not None and not stats["distinguishable"]


def paired_evidence(ours: list[dict], base: list[dict], metric: str, step_of, digits: int,
                    scale: float = 1.0) -> Paired:
    """Evidence on ``ours − base`` (two rows' runs) over their items of ``metric`` at ``step_of(run)``."""
    ours_items, base_items = items_by_run(ours, metric, step_of), items_by_run(base, metric, step_of)
    if not ours_items or not base_items:
        return Paired("no per-item samples")
    stats = paired_over_runs(ours_items, base_items)
    return Paired(paired_text(stats, digits, scale), _within_noise(stats))


def paired_by_step(ours: list[dict], base: list[dict], metric: str, steps: dict, digits: int,
                   scale: float = 1.0) -> Paired:
    """A summary of ``ours − base`` at several steps (a label → a function of a run giving its step there):
    "paired over 50 items: distinguishable from noise at 1 of 4 steps (1k Δ +2.0 [95% CI -3.1, +7.1], ...)".
    It is ``within_noise`` unless every step's interval excludes 0: the claims it serves speak of every step."""
    parts, distinguishable, compared, items = [], 0, 0, set()
    for label, step_of in steps.items():
        ours_items, base_items = items_by_run(ours, metric, step_of), items_by_run(base, metric, step_of)
        stats = paired_over_runs(ours_items, base_items) if ours_items and base_items else None
        if stats is None:
            continue
        compared += 1
        distinguishable += bool(stats["distinguishable"])
        items.add(stats["n"])
        parts.append(f"{label} {_difference_text(stats, digits, scale)}")
    if not compared:
        return Paired("no per-item samples")
    n = "/".join(str(k) for k in sorted(items))
    return Paired(f"paired over {n} items: distinguishable from noise at {distinguishable} of {compared} "
                  f"step{'s' * (compared != 1)} ({', '.join(parts)})", distinguishable < compared)


def _last_evaluation(run: dict) -> int | None:
    return run.get("step")


def table_claims(spec: Spec, frame, values: dict[str, list[dict]] | None = None) -> list[dict]:
    """The claims a table bears on; ``values`` (row label → its runs' :func:`run_values`) gives the per-item
    samples the evidence pairs (without them it says "no per-item samples")."""
    values = values or {}
    if spec.name == "table1":
        return table1_claims(spec, frame, values)
    if spec.name == "table4":
        return table4_claims(spec, frame, values)
    col = "ROUGE-1"
    value = {r["row"]: (None if r[col] != r[col] else r[col]) for _, r in frame.iterrows()} if col in frame else {}
    runs = _runs_text({r["row"]: r["runs"] for _, r in frame.iterrows()})
    if spec.name == "table2":
        claim = ("ablation order (ROUGE-1): w/o Expansion ≪ w/o Fusion < w/o DPF ≈ w/o Embedding Training "
                 "< Pen2Sword")
        if any(value.get(k) is None for k in ("Pen2Sword", "w/o DPF Selection", "w/o Expansion", "w/o Fusion",
                                              "w/o Embedding Training")):
            return [{"claim": claim, "holds": None, "evidence": MISSING}]
        full, dpf, exp, fus, emb = (value[k] for k in ("Pen2Sword", "w/o DPF Selection", "w/o Expansion",
                                                       "w/o Fusion", "w/o Embedding Training"))
        # Each link of the claimed chain, paired: the lower of the two "≈" rows against w/o Fusion below them,
        # the two against each other, and Pen2Sword against the higher of them.
        lower, higher = sorted(("w/o DPF Selection", "w/o Embedding Training"), key=value.get)
        links = [("w/o Fusion", "w/o Expansion"), (lower, "w/o Fusion"),
                 ("w/o DPF Selection", "w/o Embedding Training"), ("Pen2Sword", higher)]
        pairs = {(a, b): paired_evidence(values.get(a, []), values.get(b, []), "rouge1", _last_evaluation, 4)
                 for a, b in links}
        paired = "; ".join(f"{a} − {b} {p.text}" for (a, b), p in pairs.items())
        return [{"claim": claim, "holds": exp < fus < min(dpf, emb) and max(dpf, emb) <= full,
                 "within_noise": any(p.within_noise for p in pairs.values()),  # a chain is as firm as its links
                 "evidence": f"expansion {exp:.4f}, fusion {fus:.4f}, dpf {dpf:.4f}, embedding {emb:.4f}, "
                             f"full {full:.4f}; {runs}; {paired}"}]
    if spec.name == "table5":
        return table5_claims(spec, frame, values)
    return []


def _benchmark_step(run: dict) -> int | None:
    return run.get("benchmark_step")


def table1_claims(spec: Spec, frame, values: dict[str, list[dict]] | None = None) -> list[dict]:
    """Pen2Sword is best on HumanEval, MATH, Physics and Politics; its MMLU stays within 5% of the Vanilla Model.
    The evidence pairs Pen2Sword with the runner-up (the best other row) over the benchmark's items, each run
    at its best step, on the score and, where the table has it, the reference's bits per byte."""
    values = values or {}
    claims = []
    p2s, vanilla = "Vanilla Model + LoRA + Pen2Sword", "Vanilla Model"
    rows = {r["row"]: r for _, r in frame.iterrows()}

    def runs_of(row: str, suites: tuple[str, ...]) -> list[dict]:  # the runs that feed a column of those suites
        return [v for v in values.get(row, []) if v.get("suite") in suites]

    for column in ("Code Ability / HumanEval", "Math Ability / MATH", "Specialized Adaptation / Physics",
                   "Specialized Adaptation / Politics"):
        claim = f"Pen2Sword is best on {column} (paper: {_paper(spec, p2s, column):g})"
        scores = {r["row"]: _clean(r[column]) for _, r in frame.iterrows()}
        if any(v is None for v in scores.values()):
            claims.append({"claim": claim, "holds": None, "evidence": MISSING})
            continue
        col = next(c for c in spec.columns if c.label == column)
        runs = _runs_text({r["row"]: sum(r[f"runs {s}"] for s in col.suites) for _, r in frame.iterrows()})
        best = max(scores.values())
        runner_up = max((k for k in scores if k != p2s), key=lambda k: scores[k])
        ours, theirs = runs_of(p2s, col.suites), runs_of(runner_up, col.suites)
        score = paired_evidence(ours, theirs, f"{col.benchmark}/score", _benchmark_step, 1, 100)
        paired = f"Pen2Sword − {runner_up.replace(vanilla, 'VM')} {score.text}"
        bits = f"{column} (bits/byte)"
        if bits in frame and all(_clean(rows[k][bits]) is not None for k in (p2s, runner_up)):
            paired += "; bits/byte " + paired_evidence(ours, theirs, f"{col.benchmark}/bits_per_byte",
                                                       _benchmark_step, 3).text
        claims.append({"claim": claim, "holds": scores[p2s] >= best and list(scores.values()).count(best) == 1,
                       "within_noise": score.within_noise,  # the claim is on the score; bits/byte is a side check
                       "evidence": ", ".join(f"{k.replace(vanilla, 'VM')} {v:.1f}" for k, v in scores.items())
                                   + f"; {runs}; {paired}"})
    column = "General Ability / MMLU"
    paper_change = lookup(source="table1", row=p2s, column=column)[0]["change_pct"]
    claim = f"Pen2Sword's MMLU stays within 5% of the Vanilla Model's (paper: {paper_change:+.1f}%)"
    ours, base = (_clean(rows[k][column]) if k in rows else None for k in (p2s, vanilla))
    if ours is None or base is None:
        claims.append({"claim": claim, "holds": None, "evidence": MISSING})
    else:
        change = _clean(rows[p2s][f"{column} change %"])
        runs = _runs_text({"Pen2Sword": rows[p2s]["runs"], "Vanilla": rows[vanilla]["runs"]})
        col = next(c for c in spec.columns if c.label == column)
        # Not flagged "within noise": a difference the data cannot tell from 0 is no argument against "stays within".
        paired = "Pen2Sword − Vanilla " + paired_evidence(runs_of(p2s, col.suites), runs_of(vanilla, col.suites),
                                                          f"{col.benchmark}/score", _benchmark_step, 1, 100).text
        claims.append({"claim": claim, "holds": change is not None and abs(change) <= 5.0,
                       "evidence": f"Pen2Sword {ours:.1f} vs Vanilla {base:.1f}"
                                   + ("" if change is None else f" ({change:+.1f}%)") + f"; {runs}; {paired}"})
    return claims


def beats_at_every_step(ours: dict[str, float | None], base: dict[str, float | None]) -> bool | None:
    """Whether ``ours`` is above ``base`` at every step either has (steps neither has are skipped);
    None when a step has one and not the other, or no step has either."""
    steps = [s for s in ours if ours[s] is not None or base.get(s) is not None]
    if not steps or any(ours[s] is None or base.get(s) is None for s in steps):
        return None
    return all(ours[s] > base[s] for s in steps)


def _checkpoint_step(index: int):
    """A run's step at its ``index``-th checkpoint (as :func:`_scores_at_checkpoint` reads it: 0 for a run that
    did not train; None past its last checkpoint)."""
    def step_of(run: dict) -> int | None:
        steps = run.get("checkpoint_steps") or []
        if index >= len(steps):
            return None
        return steps[index] if run.get("trained") else 0
    return step_of


def table4_claims(spec: Spec, frame, values: dict[str, list[dict]] | None = None) -> list[dict]:
    """Per expert: Pen2Sword beats LoRA on HumanEval at every step. The paper's text says so of its code
    experts; the evidence also says whether the paper's own numbers bear it out for that expert, and at how
    many steps the two are apart beyond noise, paired over HumanEval's items."""
    values = values or {}
    scores = [c for c in spec.columns if c.benchmark == "humaneval" and c.metric == "score"]
    bits = {c.checkpoint: c.label for c in spec.columns if c.benchmark == "humaneval" and c.metric == "bits_per_byte"}
    rows = {r["row"]: r for _, r in frame.iterrows()}
    lora = "Vanilla Model + LoRA"

    def by_step(row: str, label_of) -> dict[str, float | None]:  # "1k" → our value (None: none)
        return {c.label.split("step=")[1]: _clean(rows[row][label_of(c)]) if row in rows else None for c in scores}

    claims = []
    for expert in TABLE4_EXPERTS["code"]:
        name = ROLE_BY_NAME[expert].stands_in_for
        p2s = f"Vanilla Model + LoRA + Pen2Sword ({name})"
        paper = {c.label.split("step=")[1]: _paper(spec, p2s, c.label) for c in scores}
        paper_base = {c.label.split("step=")[1]: _paper(spec, lora, c.label) for c in scores}
        paper_text = ("paper: " + {True: "holds", False: "does not hold", None: "n/a"}[
            beats_at_every_step(paper, paper_base)] + " (" + ", ".join(
            f"{k} {paper[k]:g} vs {paper_base[k]:g}" for k in paper if paper[k] is not None) + ")")
        ours, base = by_step(p2s, lambda c: c.label), by_step(lora, lambda c: c.label)
        holds = beats_at_every_step(ours, base)
        evidence, within_noise = f"{MISSING}; {paper_text}", False
        if holds is not None:
            ours_bits = by_step(p2s, lambda c: bits[c.checkpoint])
            base_bits = by_step(lora, lambda c: bits[c.checkpoint])
            compared = [k for k in ours if ours[k] is not None and None not in (ours_bits[k], base_bits[k])]
            lower = sum(ours_bits[k] < base_bits[k] for k in compared)
            runs = _runs_text({"Pen2Sword": rows[p2s]["runs code"], "LoRA": rows[lora]["runs code"]})
            code_runs = {row: [v for v in values.get(row, []) if v.get("suite") == "code"] for row in (p2s, lora)}
            paired = paired_by_step(code_runs[p2s], code_runs[lora], "humaneval/score",
                                    {c.label.split("step=")[1]: _checkpoint_step(c.checkpoint) for c in scores
                                     if ours[c.label.split("step=")[1]] is not None}, 1, 100)
            evidence = (", ".join(f"{k} {ours[k]:.1f} vs {base[k]:.1f}" for k in ours if ours[k] is not None)
                        + f"; {paired.text}; bits/byte lower at {lower} of {len(compared)} steps; {runs}; "
                        + paper_text)
            within_noise = paired.within_noise
        claims.append({"claim": f"Pen2Sword ({name}) beats LoRA at every step on HumanEval", "holds": holds,
                       "within_noise": within_noise, "evidence": evidence})
    return claims


# A run whose process got less of its threads' CPU time than this shared the machine or was paused: its wall
# time says more about the other work than about the method.
MIN_CPU_SHARE = 0.8


def timing_caveat(shares: dict[str, list[float | None]]) -> str | None:
    """Why the wall times of these rows (row → each run's CPU share) cannot be compared, or None if they can."""
    unknown = [row for row, values in shares.items() if any(v is None for v in values)]
    busy = {row: min(v for v in values if v is not None) for row, values in shares.items()
            if any(v is not None and v < MIN_CPU_SHARE for v in values)}
    if busy:
        return ("timings not comparable: " + ", ".join(f"{row}'s run got {share:.0%} of its threads' CPU time"
                                                       for row, share in busy.items())
                + " (other work ran beside it, or it was paused); rerun on an idle machine")
    if unknown:
        return (f"CPU share not recorded for {', '.join(unknown)} (runs made before it was): cannot tell whether "
                "other work slowed them; rerun to decide")
    return None


def memory_caveat(before: dict[str, list[int | None]]) -> str | None:
    """Why these rows' memory (row → each run's ``runs_before_in_process``) cannot be compared, or None if it can.
    A run that followed others in its process started with what they left behind: memory they freed that the
    allocator (malloc, or torch's CUDA cache) kept, so its peak is partly theirs."""
    shared = {row: max(v for v in values if v) for row, values in before.items() if any(v for v in values)}
    unknown = [row for row, values in before.items() if any(v is None for v in values)]
    if shared:
        return ("memory not comparable: " + ", ".join(f"{row}'s run followed {n} other run{'s' * (n != 1)} in its "
                                                      "process" for row, n in shared.items())
                + " (its peak includes what they left behind); rerun each in a process of its own (`harness run`, "
                  "or `harness reproduce`, which does)")
    if unknown:
        return (f"not recorded whether {', '.join(unknown)} ran in a process of its own (runs made before it was): "
                "cannot tell whether earlier runs' memory is in its peak; rerun to decide")
    return None


def _ratio_claim(claim: str, ours: float | None, base: float | None, base_name: str, holds_if, runs: str,
                 caveat: str | None = None) -> dict:
    """A claim on ours / base (a cost ratio): ``holds_if(ratio)``; a ``caveat`` (:func:`timing_caveat`: a run
    shared its machine; :func:`memory_caveat`: it shared its process; or it did not record whether it did)
    leaves it undecided."""
    if ours is None or base is None:
        return {"claim": claim, "holds": None, "evidence": MISSING}
    if base == 0:
        return {"claim": claim, "holds": None, "evidence": f"{base_name}'s value is 0: no ratio; {runs}"}
    ratio = ours / base
    evidence = f"{ours:.3g} vs {base_name} {base:.3g}: {ratio:.2f}x; {runs}"
    if caveat is None:
        return {"claim": claim, "holds": holds_if(ratio), "evidence": evidence}
    # A run that shared its machine (or its process), or did not record whether it did, cannot decide a cost
    # claim: its number may measure the other work rather than the method.
    return {"claim": claim, "holds": None, "evidence": f"{evidence}; {caveat}"}


def table5_claims(spec: Spec, frame, values: dict[str, list[dict]] | None = None) -> list[dict]:
    """ROUGE-1 above LoRA's (paired over the validation items at each run's last evaluation); time per 1k steps
    and memory within 15% of LoRA's; FFT's memory far above."""
    values = values or {}
    rows = {r["row"]: r for _, r in frame.iterrows()}

    def paper_memory_ratio(row: str) -> float:
        return _paper(spec, row, "Avg. GPU Memory (GB)") / _paper(spec, lora, "Avg. GPU Memory (GB)")

    def value(row: str, column: str) -> float | None:
        return _clean(rows[row][column]) if row in rows else None

    def runs(*names: str) -> str:
        return _runs_text({n: rows[n]["runs"] if n in rows else 0 for n in names})

    def memory_caveat_of(*names: str) -> str | None:
        return memory_caveat({n: [v.get("runs_before_in_process") for v in values.get(n, [])] for n in names})

    lora, fft = "Vanilla Model + LoRA", "Vanilla Model + FFT"
    # The paper measures GPU memory; a CPU run has none, so its peak RSS stands in (the claim says which).
    memory = "Avg. GPU Memory (GB)" if value(lora, "Avg. GPU Memory (GB)") is not None else "Peak RSS in training (GB)"
    claims = []
    for row, short in (("Vanilla Model + LoRA + Pen2Sword", "Pen2Sword"), ("Vanilla Model + LoRA + Pen2Sword-F",
                                                                           "Pen2Sword-F")):
        both = runs(row, lora)
        ours, base = value(row, "ROUGE-1"), value(lora, "ROUGE-1")
        rouge = {"claim": f"{short} reaches a higher ROUGE-1 than LoRA", "holds": None, "evidence": MISSING}
        if None not in (ours, base):
            paired = paired_evidence(values.get(row, []), values.get(lora, []), "rouge1", _last_evaluation, 4)
            rouge.update(holds=ours > base, within_noise=paired.within_noise,
                         evidence=f"{ours:.4f} vs LoRA {base:.4f}; {both}; {paired.text}")
        claims.append(rouge)
        paper_minutes = (f" (paper, Figure 2c: {_paper_minutes('Pen2Sword'):g} vs {_paper_minutes('LoRA'):g})"
                         if short == "Pen2Sword" else "")  # the paper times Pen2Sword-F nowhere
        caveat = timing_caveat({name: [v.get("cpu_share") for v in values.get(name, [])] for name in (row, lora)})
        claims.append(_ratio_claim(f"{short}'s minutes per 1k steps are within 15% of LoRA's{paper_minutes}",
                                   value(row, "Minutes per 1k steps"), value(lora, "Minutes per 1k steps"), "LoRA",
                                   lambda r: abs(r - 1) <= 0.15, both, caveat))
        claims.append(_ratio_claim(f"{short}'s {memory} is within 15% of LoRA's (paper: {paper_memory_ratio(row):.2f}x "
                                   "GPU memory)", value(row, memory), value(lora, memory), "LoRA",
                                   lambda r: abs(r - 1) <= 0.15, both, memory_caveat_of(row, lora)))
    claims.append(_ratio_claim(f"FFT's {memory} is at least 1.5x LoRA's (paper: {paper_memory_ratio(fft):.1f}x GPU "
                               "memory)",
                               value(fft, memory), value(lora, memory), "LoRA", lambda r: r >= 1.5, runs(fft, lora),
                               memory_caveat_of(fft, lora)))
    return claims


def _mean_curve(runs: list[dict], metric: str = "rouge1") -> dict[int, float]:
    """Step → the mean over runs of ``metric`` (steps where no run has a value are left out)."""
    steps = sorted({s for v in runs for s, x in v["curves"].get(metric, []) if x is not None})
    means = {s: _mean_std([dict(v["curves"].get(metric, [])).get(s) for v in runs])[0] for s in steps}
    return {s: m for s, m in means.items() if m is not None}


def convergence_claims(base: str, base_curve: dict[int, float], ours: str, ours_curve: dict[int, float],
                       runs: str, metric: str = "ROUGE-1") -> list[dict]:
    """``ours`` reaches ``base``'s best in fewer steps, and is higher at the last step both evaluated."""
    faster = f"{ours} reaches {base}'s best {metric} in fewer steps"
    higher = f"{ours} has the higher {metric} than {base} at the same budget"
    common = set(base_curve) & set(ours_curve)
    if not common:
        return [{"claim": claim, "holds": None, "evidence": MISSING} for claim in (faster, higher)]
    best_step = max(base_curve, key=lambda s: base_curve[s])
    target = base_curve[best_step]
    reach = next((s for s in sorted(ours_curve) if ours_curve[s] >= target), None)
    last = max(common)
    return [
        {"claim": faster, "holds": reach is not None and reach < best_step,
         "evidence": f"{base}'s best {target:.4f} at step {best_step}; {ours} reaches it at "
                     + ("never" if reach is None else f"step {reach}"
                        + (f" ({best_step / reach:.1f}x fewer steps)" if 0 < reach < best_step else ""))
                     + f"; {runs}"},
        {"claim": higher, "holds": ours_curve[last] > base_curve[last],
         "evidence": f"step {last}: {ours} {ours_curve[last]:.4f}, {base} {base_curve[last]:.4f}; {runs}"},
    ]


def lower_bits_claim(base_curve: dict[int, float], ours_curve: dict[int, float], runs: str) -> dict:
    """The continuous check beside ROUGE: Pen2Sword's validation bits per byte of the reference responses is
    below LoRA's at the last common step. ROUGE-1 at small scale can reward degenerate output (repeated common
    tokens); the likelihood of the references cannot be gamed that way."""
    claim = "Pen2Sword has the lower eval bits per byte than LoRA at the same budget (not a claim of the paper)"
    common = set(base_curve) & set(ours_curve)
    if not common:
        return {"claim": claim, "holds": None, "evidence": MISSING}
    last, first = max(common), min(common)
    return {"claim": claim, "holds": ours_curve[last] < base_curve[last],
            "evidence": f"step {last}: Pen2Sword {ours_curve[last]:.4f}, LoRA {base_curve[last]:.4f} (step {first}: "
                        f"{ours_curve[first]:.4f}, {base_curve[first]:.4f}); {runs}"}


def best_at_last_common_step(curves: dict[str, dict[int, float]], expected: str, runs: str) -> tuple[bool | None, str]:
    """Whether ``expected`` is strictly highest at the last step every curve has; the evidence also says
    which curve is best over all its steps (its own maximum), the other way to read "best"."""
    if any(not c for c in curves.values()):
        return None, MISSING
    common = set.intersection(*(set(c) for c in curves.values()))
    if not common:
        return None, "no step that every run evaluated"
    last = max(common)
    at_last = {k: c[last] for k, c in curves.items()}
    best_over = {k: max(c.values()) for k, c in curves.items()}
    holds = all(at_last[expected] > v for k, v in at_last.items() if k != expected)
    top = [k for k, v in best_over.items() if v == max(best_over.values())]
    return holds, (f"step {last}: " + ", ".join(f"{k} {v:.4f}" for k, v in at_last.items())
                   + "; best over steps: " + ", ".join(f"{k} {v:.4f}" for k, v in best_over.items())
                   + (f" ({top[0]} highest)" if len(top) == 1 else f" ({', '.join(top)} tied)") + f"; {runs}")


def at_least_at_every_step(ours: dict[int, float], base: dict[int, float], steps: list[int]) -> bool | None:
    """Whether ``ours`` ≥ ``base`` at each of ``steps`` (None: no step, or a step missing from either)."""
    if not steps or any(s not in ours or s not in base for s in steps):
        return None
    return all(ours[s] >= base[s] for s in steps)


def _last_common_step(*curves: dict[int, float]) -> int | None:
    common = set.intersection(*(set(c) for c in curves))
    return max(common) if common else None


def curve_claims(spec: Spec, values: dict[str, list[dict]]) -> list[dict]:
    def curve(label: str, metric: str = "rouge1") -> dict[int, float]:
        return _mean_curve(values.get(label) or [], metric)

    def runs(*labels: str) -> str:
        return _runs_text({label: len(values.get(label) or []) for label in labels})

    def paired_rouge(ours: str, base: str) -> Paired:
        """``ours − base`` over the validation items at the last step both curves have."""
        step = _last_common_step(curve(ours), curve(base))
        paired = paired_evidence(values.get(ours) or [], values.get(base) or [], "rouge1", lambda run: step, 4)
        return Paired(f"{ours} − {base} {paired.text}", paired.within_noise)

    def add(claim: dict, paired: Paired) -> dict:
        """``claim`` with ``paired`` appended to its evidence and deciding its ``within_noise``."""
        return {**claim, "evidence": f"{claim['evidence']}; {paired.text}", "within_noise": paired.within_noise}

    def pair(base: str, ours: str) -> list[dict]:
        faster, higher = convergence_claims(base, curve(base), ours, curve(ours), runs(base, ours))
        if higher["holds"] is not None:  # "higher at the same budget": is the gap at that step beyond noise?
            higher = add(higher, paired_rouge(ours, base))
        return [faster, higher]

    def best_of(labels: dict[str, str], expected: str, claim: str) -> dict:
        """``expected`` is the highest of ``labels`` (short names → rows) at their last common step, paired with
        the next highest there."""
        curves = {k: curve(v) for k, v in labels.items()}
        holds, evidence = best_at_last_common_step(
            curves, expected, _runs_text({k: len(values.get(v) or []) for k, v in labels.items()}))
        result = {"claim": claim, "holds": holds, "evidence": evidence}
        if holds is None:
            return result
        step = _last_common_step(*curves.values())
        runner_up = max((k for k in curves if k != expected), key=lambda k: curves[k][step])
        return add(result, paired_rouge(labels[expected], labels[runner_up]))

    if spec.name in ("figure2a", "figure2b"):
        claims = pair("LoRA", "Pen2Sword")
        stated = {r["row"]: r["value"] for r in lookup(source=spec.paper_source)}
        if {"LoRA", "Pen2Sword"} <= set(stated):  # the paper: "from 10k to 1k" (code), "from 3k to 2k" (math)
            claims[0]["claim"] += (f" (paper: {stated['Pen2Sword']:g} steps instead of LoRA's {stated['LoRA']:g}, "
                                   f"{stated['LoRA'] / stated['Pen2Sword']:.1f}x fewer)")
        return [*claims, lower_bits_claim(curve("LoRA", "eval_bits_per_byte"),
                                          curve("Pen2Sword", "eval_bits_per_byte"), runs("LoRA", "Pen2Sword"))]
    if spec.name == "figure3a":
        return [*pair("QLoRA", "Pen2Sword + QLoRA"), *pair("DoRA", "Pen2Sword + DoRA")]
    if spec.name == "figure3b":
        return [*pair("LoRA (Vicuna)", "Pen2Sword (Vicuna)"), *pair("LoRA (Baichuan2)", "Pen2Sword (Baichuan2)")]
    if spec.name == "figure4":
        labels = {"DR 80%": "Pen2Sword, DR 80%", "DR 67%": "Pen2Sword, DR 67%"}  # short name → row
        return [best_of(labels, "DR 80%", "DR 80% reaches a higher ROUGE-1 than DR 67% at the last common step "
                                          "(paper: DR 67% degrades significantly)")]
    if spec.name == "figure5":
        # short name ("α=0.5") → row
        labels = {r.label.removeprefix("Pen2Sword "): r.label for r in spec.rows if r.label != "LoRA"}
        return [best_of(labels, "α=0.5", "α=0.5 has the highest ROUGE-1 of the three α at the last common step"),
                convergence_claims("LoRA", curve("LoRA"), "Pen2Sword α=0.5", curve("Pen2Sword α=0.5"),
                                   runs("LoRA", "Pen2Sword α=0.5"))[0]]  # paper: 1k steps to LoRA's 8k level
    if spec.name in ("figure7a", "figure7b"):
        base = spec.rows[1].label  # Weak2Strong or ProxyTuning
        checkpoints = {s for v in (values.get(r.label) or [] for r in spec.rows) for run in v
                       for s in run["checkpoint_steps"]}
        claims = []
        for ours in ("Pen2Sword", f"Pen2Sword + {base}"):
            ours_curve, base_curve = curve(ours, "humaneval"), curve(base, "humaneval")
            steps = sorted(checkpoints & set(ours_curve) & set(base_curve))
            holds = at_least_at_every_step(ours_curve, base_curve, steps)
            claim = f"{ours} ≥ {base} on HumanEval at every checkpoint"
            if holds is None:
                claims.append({"claim": claim, "holds": None, "evidence": MISSING})
                continue
            ties = all(ours_curve[s] == base_curve[s] for s in steps)
            paired = paired_by_step(values.get(ours) or [], values.get(base) or [], "humaneval/score",
                                    {f"step {s}": (lambda run, s=s: s) for s in steps}, 3)
            claims.append({"claim": claim, "holds": holds, "within_noise": paired.within_noise,
                           "evidence": ", ".join(f"step {s} {ours_curve[s]:.3f} vs {base_curve[s]:.3f}" for s in steps)
                                       + (" (tied at every step)" if ties else "")
                                       + f"; {paired.text}; {runs(ours, base)}"})
        return claims
    return []  # Figure 6: ROUGE-2, ROUGE-L and eval loss are shown, the paper draws no claim from them


def _paper_minutes(name: str) -> float:
    """The paper's minutes per 1k training steps (Figure 2c's text) of LoRA, Weak2Strong, ProxyTuning or Pen2Sword."""
    return lookup(source="figure2c", row=name, column="time per 1k training steps")[0]["value"]


def cost_claims(minutes: dict[str, float | None], counts: dict[str, int],
                shares: dict[str, list[float | None]] | None = None) -> list[dict]:
    """Figure 2c: Pen2Sword costs what LoRA costs per 1k steps; Weak2Strong and ProxyTuning cost more.
    ``shares``: row → each run's CPU share (:func:`timing_caveat`)."""
    shares = shares or {}
    lora = _paper_minutes("LoRA")
    claims = []
    for name, claim, holds_if in (
            ("Pen2Sword", f"Pen2Sword costs about what LoRA costs per 1k steps (paper: {_paper_minutes('Pen2Sword'):g} "
                          f"vs {lora:g} minutes)", lambda r: abs(r - 1) <= 0.15),
            ("Weak2Strong", f"Weak2Strong costs more than LoRA per 1k steps (paper: "
                            f"{_paper_minutes('Weak2Strong') / lora:.1f}x)", lambda r: r > 1.0),
            ("ProxyTuning", f"ProxyTuning costs more than LoRA per 1k steps (paper: "
                            f"{_paper_minutes('ProxyTuning') / lora:.1f}x)", lambda r: r > 1.0)):
        caveat = timing_caveat({n: shares[n] for n in (name, "LoRA") if n in shares})
        claims.append(_ratio_claim(claim, minutes.get(name), minutes.get("LoRA"), "LoRA", holds_if,
                                   _runs_text({name: counts.get(name, 0), "LoRA": counts.get("LoRA", 0)}), caveat))
    return claims


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
    if not rankings:
        return Rendered(spec, "(no DPF ranking yet)", claims=[{"claim": "DPF ranks CodeLlama-7B's stand-in first "
                                                                        "for code", "holds": None,
                                                               "evidence": "no ranking"}],
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
    paper_top = max(lookup(source="table3", column="Total Score (0–20)"), key=lambda r: r["value"], default=None)
    claims = [{"claim": f"DPF ranks the paper's top candidate first ({paper_top['row'] if paper_top else '?'})",
               "holds": None if paper_top is None or top is None else top == paper_top["row"],
               "evidence": f"ours: {top} first by {ranking['judge']}"}]
    return Rendered(spec, "\n".join(lines), [path], claims, [])
