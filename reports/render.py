"""Tables (Markdown, CSV, LaTeX), figures (PNG, PDF) and ``report.md``: ours beside the paper's numbers,
and which of the paper's claims hold on our runs. Everything comes from run directories (via
:mod:`reports.collect`) and the paper's transcribed numbers (``reports/paper_numbers.yaml``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from harness.io import atomic_write_text

from reports.collect import Found, run_values
from reports.paper_numbers import lookup
from reports.spec import Spec


CURVE_LABELS = {"rouge1": "ROUGE-1 (validation)", "rouge2": "ROUGE-2 (validation)", "rougeL": "ROUGE-L (validation)",
                "eval_loss": "eval loss (nats per token)", "eval_bits_per_byte": "eval bits per byte"}


@dataclass
class Rendered:
    spec: Spec
    markdown: str
    files: list[Path] = field(default_factory=list)
    claims: list[dict] = field(default_factory=list)  # {"claim", "holds": True/False/None, "evidence"}
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


def table_frame(spec: Spec, found: list[Found]):
    """One row per paper row: for each column, ours (mean over seeds), its std, the paper's and n."""
    import pandas as pd

    values = _values(found)
    records = []
    for row in spec.rows:
        runs = values.get(row.label, [])
        record = {"row": row.label, "method": row.method, "runs": len(runs)}
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
            ref = base[col.label]
            frame[f"{col.label} change %"] = [None if v is None or v != v or not ref or ref != ref else
                                              (v - ref) / ref * 100 for v in frame[col.label]]
    return frame


def _cell(col, run: dict, spec: Spec) -> float | None:
    """One run's value for a column (None where the run does not feed it)."""
    if col.benchmark is None:
        return run.get(col.metric)
    if run.get("suite") not in (col.suites or spec.suites):
        return None
    value = (run.get("benchmarks", {}).get(col.benchmark) or {}).get(col.metric)
    return None if value is None else value * (100 if col.percent else 1)


def _clean(value):
    return None if value is None or value != value else value  # NaN → None


def table_markdown(spec: Spec, frame) -> str:
    head = ["", *[c.label for c in spec.columns], "runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in frame.iterrows():
        cells = []
        for col in spec.columns:
            ours, std, paper = (_clean(r[f"{col.label}{k}"]) for k in ("", " std", " paper"))
            cell = _fmt(ours, col.digits, std)
            change = _clean(r.get(f"{col.label} change %"))
            if change is not None and r["row"] != spec.change_against:
                cell += f" ({change:+.1f}%)"
            if paper is not None:
                delta = "" if ours is None else f", Δ {ours - paper:+.{col.digits}f}"
                cell += f" [paper {paper:g}{delta}]"
            cells.append(cell)
        lines.append("| " + " | ".join([r["row"], *cells, str(r["runs"])]) + " |")
    return "\n".join(lines)


def render_table(spec: Spec, found: list[Found], out: Path) -> Rendered:
    frame = table_frame(spec, found)
    out.mkdir(parents=True, exist_ok=True)
    files = [out / f"{spec.name}.csv", out / f"{spec.name}.md", out / f"{spec.name}.tex"]
    atomic_write_text(files[0], frame.to_csv(index=False))
    markdown = table_markdown(spec, frame)
    atomic_write_text(files[1], f"## {spec.title}\n\n{markdown}\n\n{spec.note}\n")
    ours = frame[["row", *[c.label for c in spec.columns]]].set_index("row")
    atomic_write_text(files[2], ours.to_latex(float_format="%.3f", na_rep="--"))
    rendered = Rendered(spec, markdown, files, missing=[f for f in found if f.run is None])
    rendered.claims = table_claims(spec, frame)
    return rendered


# --- figures ---------------------------------------------------------------------------------------

def render_figure(spec: Spec, found: list[Found], out: Path) -> Rendered:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = _values(found)
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
        claims = curve_claims(spec, values) if spec.curve_metrics == ("rouge1",) else []
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
        lines = [f"- {lab}: " + ("no run" if m is None else f"{m:.1f} min per 1k steps")
                 + (f", HumanEval {s:.3f}" if s is not None else "")
                 + (f" (paper {p:g})" if (p := _paper(spec, lab, "time per 1k training steps")) is not None else "")
                 for lab, m, s in zip(labels, minutes, scores)]
        claims = cost_claims(labels, [m or 0.0 for m in minutes])
    fig.suptitle(spec.title, fontsize=9)
    fig.tight_layout()
    files = [out / f"{spec.name}.png", out / f"{spec.name}.pdf"]
    for path in files:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return Rendered(spec, "\n".join(lines) or "(no runs yet)", files, claims, [f for f in found if f.run is None])


# --- claims ----------------------------------------------------------------------------------------

def table_claims(spec: Spec, frame) -> list[dict]:
    if spec.name == "table1":
        return table1_claims(frame)
    col = "ROUGE-1"
    value = {r["row"]: (None if r[col] != r[col] else r[col]) for _, r in frame.iterrows()} if col in frame else {}
    if spec.name == "table2" and all(value.get(k) is not None for k in (
            "Pen2Sword", "w/o DPF Selection", "w/o Expansion", "w/o Fusion", "w/o Embedding Training")):
        full, dpf, exp, fus, emb = (value[k] for k in ("Pen2Sword", "w/o DPF Selection", "w/o Expansion",
                                                       "w/o Fusion", "w/o Embedding Training"))
        holds = exp < fus < min(dpf, emb) and max(dpf, emb) <= full
        return [{"claim": "ablation order (ROUGE-1): w/o Expansion ≪ w/o Fusion < w/o DPF ≈ w/o Embedding "
                          "Training < Pen2Sword", "holds": holds,
                 "evidence": f"expansion {exp:.4f}, fusion {fus:.4f}, dpf {dpf:.4f}, embedding {emb:.4f}, "
                             f"full {full:.4f}"}]
    if spec.name == "table5" and value.get("Vanilla Model + LoRA") is not None:
        lora = value["Vanilla Model + LoRA"]
        return [{"claim": f"{row} reaches a higher ROUGE-1 than LoRA", "holds": value[row] > lora,
                 "evidence": f"{value[row]:.4f} vs LoRA {lora:.4f}"}
                for row in ("Vanilla Model + LoRA + Pen2Sword", "Vanilla Model + LoRA + Pen2Sword-F")
                if value.get(row) is not None]
    return [{"claim": f"{spec.title}: needs every row", "holds": None, "evidence": "runs missing"}]


def curve_claims(spec: Spec, values: dict[str, list[dict]]) -> list[dict]:
    lora, p2s = values.get("LoRA") or [], values.get("Pen2Sword") or []
    if not lora or not p2s:
        return [{"claim": f"{spec.title}: Pen2Sword converges faster than LoRA", "holds": None,
                 "evidence": "runs missing"}]
    lora_curve = dict(_mean_curve(lora))
    p2s_curve = dict(_mean_curve(p2s))
    lora_best_step = max(lora_curve, key=lambda s: lora_curve[s])
    target = lora_curve[lora_best_step]
    reach = next((s for s in sorted(p2s_curve) if p2s_curve[s] >= target), None)
    last = max(set(lora_curve) & set(p2s_curve))
    return [
        {"claim": "Pen2Sword reaches LoRA's best ROUGE-1 in fewer steps", "holds": reach is not None and reach < lora_best_step,
         "evidence": f"LoRA's best {target:.4f} at step {lora_best_step}; Pen2Sword reaches it at "
                     f"{'never' if reach is None else f'step {reach}'}"},
        {"claim": "Pen2Sword has the higher ROUGE-1 at the same budget", "holds": p2s_curve[last] > lora_curve[last],
         "evidence": f"step {last}: Pen2Sword {p2s_curve[last]:.4f}, LoRA {lora_curve[last]:.4f}"},
    ]


def _mean_curve(runs: list[dict]) -> list[tuple[int, float]]:
    steps = sorted({s for v in runs for s, _ in v["curve"]})
    return [(s, _mean_std([dict(v["curve"]).get(s) for v in runs])[0]) for s in steps]


def cost_claims(labels: list[str], minutes: list[float]) -> list[dict]:
    cost = dict(zip(labels, minutes))
    if not cost.get("LoRA"):
        return [{"claim": "time per 1k steps against LoRA", "holds": None, "evidence": "LoRA run missing"}]
    ratio = {k: v / cost["LoRA"] for k, v in cost.items() if v}
    claims = []
    if "Pen2Sword" in ratio:
        claims.append({"claim": "Pen2Sword costs about what LoRA costs per 1k steps (paper: 47 vs 47 minutes)",
                       "holds": abs(ratio["Pen2Sword"] - 1) <= 0.15, "evidence": f"{ratio['Pen2Sword']:.2f}x LoRA"})
    for name, paper in (("Weak2Strong", 110 / 47), ("ProxyTuning", 235 / 47)):
        if name in ratio:
            claims.append({"claim": f"{name} costs more than LoRA per 1k steps (paper: {paper:.1f}x)",
                           "holds": ratio[name] > 1.0, "evidence": f"{ratio[name]:.2f}x LoRA"})
    return claims


def table1_claims(frame) -> list[dict]:
    claims = []
    for column in ("Code Ability / HumanEval", "Math Ability / MATH"):
        scores = {r["row"]: _clean(r[column]) for _, r in frame.iterrows()}
        if any(v is None for v in scores.values()):
            claims.append({"claim": f"Pen2Sword is best on {column}", "holds": None, "evidence": "runs missing"})
            continue
        best = max(scores.values())
        p2s = scores["Vanilla Model + LoRA + Pen2Sword"]
        claims.append({"claim": f"Pen2Sword is best on {column} (paper: 19.9 HumanEval, 2.6 MATH)",
                       "holds": p2s >= best and list(scores.values()).count(best) == 1,
                       "evidence": ", ".join(f"{k.replace('Vanilla Model', 'VM')} {v:.1f}" for k, v in scores.items())})
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
