"""Table 3: DPF's scores of the candidate experts (code), from the rankings ``harness dpf`` writes under
``<results>/dpf/<suite>/``, and whether DPF ranks the paper's top candidate first."""

from __future__ import annotations

import json
from pathlib import Path

from harness.io import atomic_write_text

from reports.collect import Found
from reports.paper_numbers import lookup
from reports.registry import Context, Table, register_table
from reports.render import Rendered
from reports.spec import Spec

SPEC = Spec("table3", "Table 3: DPF scores of the candidate experts (code)", "code", (),
            paper_source="table3", note="from `harness dpf --suite code` (results/dpf/); the paper's judge is GPT-4o",
            differences=("Table 3 is ranked by `harness dpf`'s judge: the paper's is GPT-4o "
                         "(pen2sword.dpf_judge=openai:gpt-4o); the offline judges rank by reference ROUGE-L or bits "
                         "per byte",))


DPF_COLUMNS = (("Accuracy", "Accuracy"), ("Domain Coverage", "Domain Coverage"), ("Depth", "Domain Depth"),
               ("Terminology Appropriateness", "Terminology Appropriateness"), ("total", "Total Score (0–20)"))


def paper_name(candidate: str) -> str:
    """The paper's name of a candidate (a built-in stand-in or a paper-scale registry name)."""
    from harness.zoo.recipe import ROLES

    for role in ROLES:
        if candidate in (role.name, role.paper_model):
            return role.stands_in_for
    return candidate


def rankings(spec: Spec, results, scale: str) -> list[dict]:
    """The suite's rankings at ``scale``, the paper's kind of judge (an OpenAI model) first."""
    from harness.paths import results_dir

    root = Path(results) if results else results_dir()
    found = [json.loads(p.read_text()) for p in sorted((root / "dpf" / spec.suites[0]).glob("*/ranking.json"))]
    found = [r for r in found if r.get("scale") == scale]
    return sorted(found, key=lambda r: (not r["judge"].startswith("openai:"), r["judge"]))


def claims(spec: Spec, ranking: dict | None) -> list[dict]:
    """DPF ranks the paper's top candidate first (untested: a ranking)."""
    paper_top = max(lookup(source=spec.paper_source, column="Total Score (0–20)"), key=lambda r: r["value"],
                    default=None)
    claim = f"DPF ranks the paper's top candidate first ({paper_top['row'] if paper_top else '?'})"
    if ranking is None:
        return [{"claim": claim, "holds": None, "evidence": "no ranking"}]
    top = paper_name(ranking["rows"][0]["candidate"]) if ranking["rows"] else None
    return [{"claim": claim, "holds": None if paper_top is None or top is None else top == paper_top["row"],
             "evidence": f"ours: {top} first by {ranking['judge']}"}]


def render(table: Table, found: list[Found], context: Context) -> Rendered:
    spec = table.spec
    ranked = rankings(spec, context.results, context.scale)
    if not ranked:
        return Rendered(spec, "(no DPF ranking yet)", claims=claims(spec, None),
                        todo=[f"- `harness dpf --suite {spec.suites[0]} --scale {context.scale}` ({spec.name})"])
    ranking = ranked[0]
    lines = [f"judge {ranking['judge']}, {ranking['n_questions']} questions; other rankings: "
             + (", ".join(r["judge"] for r in ranked[1:]) or "none"), "",
             "| candidate | paper's model | " + " | ".join(p for _, p in DPF_COLUMNS) + " |",
             "|" + "---|" * (2 + len(DPF_COLUMNS))]
    for row in ranking["rows"]:
        name = paper_name(row["candidate"])
        cells = []
        for ours_key, paper_col in DPF_COLUMNS:
            value = row.get(ours_key)
            hits = lookup(source=spec.paper_source, row=name, column=paper_col)
            cell = "–" if value is None else f"{value:.2f}"
            cells.append(cell + (f" [paper {hits[0]['value']:g}]" if hits else ""))
        lines.append(f"| {row['candidate']} | {name} | " + " | ".join(cells) + " |")
    context.out.mkdir(parents=True, exist_ok=True)
    path = context.out / f"{spec.name}.md"
    atomic_write_text(path, f"## {spec.title}\n\n" + "\n".join(lines) + "\n")
    return Rendered(spec, "\n".join(lines), [path], claims(spec, ranking))


register_table(SPEC, render, claims)
