"""Checks reports/paper_numbers.yaml against the paper text it was transcribed from."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from reports.paper_numbers import load_paper_numbers, lookup, paper_info

PAPER_TEXT = Path(__file__).parents[1].parent / "shared" / "paper" / "pen2sword.txt"

TABLE_SOURCES = {f"table{n}" for n in range(1, 7)}
REQUIRED = ("source", "row", "column", "value", "unit")
# "15.9", "15.9 (+25.2%)", "0.745", "100.000"
CELL = re.compile(r"^(-?\d+(?:\.\d+)?)(?: \(([+-]?\d+(?:\.\d+)?)%\))?$")
CAPTION = re.compile(r"^(?:Table|Figure) \d+:")

TABLE1_ROWS = {
    "Vanilla Model",
    "Vanilla Model + Instruction-tuned",
    "Vanilla Model + LoRA",
    "Vanilla Model + LoRA + Weak2Strong",
    "Vanilla Model + LoRA + ProxyTuning",
    "Vanilla Model + LoRA + Pen2Sword",
}


@pytest.fixture(scope="module")
def paper_text() -> str:
    if not PAPER_TEXT.is_file():
        pytest.skip(f"paper text not found at {PAPER_TEXT} (shared/paper is not checked out next to the repo)")
    return PAPER_TEXT.read_text(encoding="utf-8")


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


# -- parsing the tab-separated tables of the text -----------------------------------------


class _Block:
    """One tab-separated table block: header rows, then data rows (with optional group rows)."""

    def __init__(self, lines: list[str]):
        rows = [line.split("\t") for line in lines]
        n_header = 0
        while n_header < len(rows) and any(c and not CELL.match(c) for c in rows[n_header][1:]):
            n_header += 1
        self.headers = rows[:n_header]
        self.data: list[tuple[str | None, list[str], str]] = []  # (group, cells, raw line)
        group = None
        for cells, raw in zip(rows[n_header:], lines[n_header:]):
            if not any(cells[1:]):
                group = cells[0]
            else:
                self.data.append((group, cells, raw))

    def column_index(self, column: str) -> int | None:
        levels = column.split(" / ")
        if len(levels) != len(self.headers):
            return None
        leaf = self.headers[-1]
        if leaf.count(levels[-1]) != 1:
            return None
        j = leaf.index(levels[-1])
        for level, header in zip(levels[:-1], self.headers[:-1]):
            spanning = next((c for c in reversed(header[: j + 1]) if c), None)  # spans fill rightwards
            if spanning != level:
                return None
        return j

    def n_cells(self) -> int:
        return sum(len(cells) - 1 for _, cells, _ in self.data)


def _blocks_of(text: str, table: str) -> list[_Block]:
    """Tab-separated blocks between the caption before ``table``'s caption and that caption."""
    lines = text.splitlines()
    cap = next(i for i, line in enumerate(lines) if line.startswith(f"{table}:"))
    start = max((i for i in range(cap) if CAPTION.match(lines[i])), default=-1) + 1
    blocks, run = [], []
    for line in lines[start:cap] + [""]:
        if "\t" in line:
            run.append(line)
        elif run:
            blocks.append(_Block(run))
            run = []
    return blocks


def _find_cell(text: str, entry: dict) -> tuple[str, str, str | None]:
    """(cell text, whole line, group) for a table entry; fails unless exactly one cell matches."""
    hits = []
    for block in _blocks_of(text, entry["table"]):
        j = block.column_index(entry["column"])
        if j is None:
            continue
        hits += [(cells[j], raw, group) for group, cells, raw in block.data if cells[0] == entry["row"]]
    assert len(hits) == 1, f"{len(hits)} cells in {entry['table']} for {entry['row']!r} / {entry['column']!r}"
    return hits[0]


# -- schema -----------------------------------------------------------------------------------


def test_header_names_the_paper():
    info = paper_info()
    assert info["title"] == "Accelerating LLM Fine-Tuning via Embedding Knowledge Transfer"
    assert info["venue"] == "Findings of ACL 2026"
    assert info["file"].endswith("pen2sword.txt")


def test_every_entry_has_required_fields_and_numeric_value():
    numbers = load_paper_numbers()
    assert len(numbers) > 100
    for e in numbers:
        missing = [k for k in REQUIRED if k not in e]
        assert not missing, f"{e}: missing {missing}"
        assert _is_number(e["value"]), e
        assert isinstance(e["row"], str) and e["row"] and isinstance(e["column"], str) and e["column"], e
        assert any(k in e for k in ("table", "figure", "section")), e
        for k in ("change_pct", "std", "step"):
            if k in e:
                assert _is_number(e[k]), (k, e)
        if "step" in e:
            assert isinstance(e["step"], int) and e["step"] >= 0, e
        src = e["source"]
        assert src in TABLE_SOURCES or src == "text" or re.fullmatch(r"figure\d+[a-z]?", src), e
        if src in TABLE_SOURCES:
            assert e.get("table") == f"Table {src[5:]}", e
        else:
            assert isinstance(e.get("quote"), str) and e["quote"], f"running-text entry without quote: {e}"
        if src.startswith("figure"):
            assert e.get("figure", "").replace(" ", "").lower() == src, e


def test_no_duplicate_table_cells():
    keys = Counter(
        (e["source"], e["row"], e["column"]) for e in load_paper_numbers() if e["source"] in TABLE_SOURCES
    )
    assert [k for k, n in keys.items() if n > 1] == []


def test_lookup_filters():
    hits = lookup(source="table1", row="Vanilla Model + LoRA + Pen2Sword", column="Code Ability / HumanEval")
    assert [(h["value"], h["change_pct"]) for h in hits] == [(19.9, 25.2)]
    at_2k = lookup(source="table4", step=2000)
    assert at_2k and all(h["step"] == 2000 for h in at_2k)
    assert lookup(source="no-such-source") == []
    lookup(source="table1")[0]["value"] = -1.0  # returned entries are copies
    assert lookup(source="table1")[0]["value"] != -1.0


# -- content ----------------------------------------------------------------------------------


def test_table1_has_all_six_methods_and_seven_columns():
    rows = Counter(e["row"] for e in lookup(source="table1"))
    assert set(rows) == TABLE1_ROWS
    assert set(rows.values()) == {7}
    assert all("change_pct" in e for e in lookup(source="table1"))


def test_figure2c_minutes_per_1k_steps():
    got = {e["row"]: e["value"] for e in lookup(source="figure2c", column="time per 1k training steps")}
    assert got == {"LoRA": 47, "Weak2Strong": 110, "ProxyTuning": 235, "Pen2Sword": 47}
    assert all(e["unit"] == "minutes per 1k steps" for e in lookup(source="figure2c", row="ProxyTuning")
               if e["column"] == "time per 1k training steps")


def test_figure2c_gains_agree_with_table1():
    """The text's 17.7% / 9.9% / 5.3% are Pen2Sword's HumanEval gains over the Table 1 baselines.

    Within 0.1 point: the paper prints 17.7 where 19.9 / 16.9 - 1 = 17.75%.
    """
    he = {e["row"]: e["value"] for e in lookup(source="table1", column="Code Ability / HumanEval")}
    ours = he["Vanilla Model + LoRA + Pen2Sword"]
    for base, row in (("LoRA", "Vanilla Model + LoRA"), ("Weak2Strong", "Vanilla Model + LoRA + Weak2Strong"),
                      ("ProxyTuning", "Vanilla Model + LoRA + ProxyTuning")):
        (gain,) = lookup(source="figure2c", column=f"HumanEval pass@1 relative gain over {base}")
        assert abs(100 * (ours / he[row] - 1) - gain["value"]) <= 0.1, (base, gain)


def test_table4_step_matches_column():
    entries = lookup(source="table4")
    assert len(entries) == 4 * (17 + 11)
    for e in entries:
        m = re.search(r"step=(\d+)k$", e["column"])
        assert m and e["step"] == int(m.group(1)) * 1000, e


def test_quotes_are_exact_substrings_and_contain_the_value(paper_text):
    quoted = [e for e in load_paper_numbers() if "quote" in e]
    assert len(quoted) >= 20
    for e in quoted:
        q = e["quote"]
        assert q in paper_text, f"quote not in paper text: {q!r}"
        v = e["value"]
        printed = {str(v), f"{v:g}"}
        if e["unit"] == "steps" and v >= 1000:
            printed.add(f"{v // 1000}k")
        assert any(p in q for p in printed), f"value {v} not in quote {q!r}"
        if "change_pct" in e:
            assert f"{e['change_pct']:+g}%" in q.replace("+0%", "0%"), e


def test_table_entries_match_the_printed_cell(paper_text):
    """Every table entry: the row's line in the text has the value (and change) in that column."""
    checked = 0
    for e in load_paper_numbers():
        if e["source"] not in TABLE_SOURCES:
            continue
        cell, line, group = _find_cell(paper_text, e)
        assert str(e["value"]) in line or f"{e['value']:g}" in line
        m = CELL.match(cell)
        assert m, f"unparsable cell {cell!r} in line {line!r}"
        assert float(m.group(1)) == e["value"], (cell, e)
        if m.group(2) is None:
            assert "change_pct" not in e, (cell, e)
        else:
            assert float(m.group(2)) == e.get("change_pct"), (cell, e)
        assert group == e.get("group"), (group, e)
        checked += 1
    assert checked >= 20


def test_every_printed_table_cell_is_transcribed(paper_text):
    per_source = Counter(e["source"] for e in load_paper_numbers())
    for n in range(1, 7):
        printed = sum(b.n_cells() for b in _blocks_of(paper_text, f"Table {n}"))
        assert printed > 0, f"Table {n}: no tab-separated rows found"
        assert per_source[f"table{n}"] == printed, f"Table {n}: {per_source[f'table{n}']} entries, {printed} cells"
