"""Table 6: GPT-4o scores at 0 steps on larger and newer models (AlpacaEval, MedQuAD): the paper's numbers
only, since no benchmark here can produce ours (an LLM judge)."""

from __future__ import annotations

from harness.io import atomic_write_text

from reports.collect import Found
from reports.paper_numbers import lookup
from reports.registry import Context, Table, register_table
from reports.render import Rendered
from reports.spec import Spec

SPEC = Spec("table6", "Table 6: GPT-4o scores at 0 steps on larger and newer models (AlpacaEval, MedQuAD)", (), (),
            paper_source="table6",
            note="no runs possible yet: needs an LLM-judge benchmark (AlpacaEval, MedQuAD) the harness does not have",
            differences=("Table 6 is not reproduced: it needs an LLM-judge benchmark (AlpacaEval, MedQuAD) the harness "
                         "does not have",))


def claims(spec: Spec, entries: list[dict]) -> list[dict]:
    """Per dataset, the paper's claim that Pen2Sword's transferred embeddings beat the vanilla model: undecided
    here (no runs can make it), the paper's numbers in the claim."""
    out = []
    for group in dict.fromkeys(e.get("group") for e in entries):
        scores = {e["row"]: e["value"] for e in entries if e.get("group") == group}
        vanilla = next((v for k, v in scores.items() if "Pen2Sword" not in k), None)
        p2s = next((v for k, v in scores.items() if "Pen2Sword" in k), None)
        out.append({"claim": f"{group}: Pen2Sword's transferred embeddings beat the vanilla model at 0 steps "
                             f"(paper: {p2s:g} vs {vanilla:g})", "holds": None, "evidence": spec.note})
    return out


def render(table: Table, found: list[Found], context: Context) -> Rendered:
    spec = table.spec
    entries = lookup(source=spec.paper_source)
    column = entries[0]["column"] if entries else "score"
    lines = [f"| dataset | model | paper: {column} | ours |", "|---|---|---|---|"]
    lines += [f"| {e.get('group', '')} | {e['row']} | {e['value']:g} | – |" for e in entries]
    context.out.mkdir(parents=True, exist_ok=True)
    path = context.out / f"{spec.name}.md"
    markdown = "\n".join(lines)
    atomic_write_text(path, f"## {spec.title}\n\n{markdown}\n\n{spec.note}\n")
    return Rendered(spec, markdown, [path], claims(spec, entries),
                    todo=[f"- not runnable here: {spec.note} ({spec.name})"])


register_table(SPEC, render, claims)
