"""The Pen2Sword paper's published numbers, as transcribed in ``paper_numbers.yaml``.

Each entry is a mapping with at least ``source`` ("table1".."table6", "figure2a".., or
"text"), ``row``, ``column``, ``value`` and ``unit``; optional keys are ``table``,
``figure``, ``section``, ``change_pct`` (the signed percentage printed in parentheses),
``std``, ``step``, ``group``, ``quote`` (an exact substring of the paper text) and
``note``.  See the YAML file's ``paper.notes`` for the transcription conventions.

    >>> from reports.paper_numbers import lookup
    >>> [e["value"] for e in lookup(source="figure2c", row="ProxyTuning")]
    [235]
"""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DATA_FILE = Path(__file__).with_name("paper_numbers.yaml")


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    with DATA_FILE.open(encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or not isinstance(doc.get("numbers"), list):
        raise ValueError(f"{DATA_FILE}: expected a mapping with a 'numbers' list")
    return doc


def paper_info() -> dict[str, Any]:
    """The ``paper:`` header (title, venue, file, notes) of the data file."""
    return copy.deepcopy(_document()["paper"])


def load_paper_numbers() -> list[dict[str, Any]]:
    """All transcribed entries, in file order (fresh copies; safe to mutate)."""
    return copy.deepcopy(_document()["numbers"])


def lookup(
    source: str | None = None,
    row: str | None = None,
    column: str | None = None,
    step: int | None = None,
) -> list[dict[str, Any]]:
    """Entries matching every given filter exactly (``None`` means "any").

    ``step`` only matches entries that carry that ``step`` key.
    """
    return [
        e
        for e in load_paper_numbers()
        if (source is None or e.get("source") == source)
        and (row is None or e.get("row") == row)
        and (column is None or e.get("column") == column)
        and (step is None or e.get("step") == step)
    ]


def paper_value(source: str | None, row: str, column: str) -> float | None:
    """The paper's number in ``source`` (a table's or figure's ``paper_source``) at ``row`` and ``column``;
    None where the paper prints none (or ``source`` is None)."""
    hits = lookup(source=source, row=row, column=column) if source else []
    return hits[0]["value"] if hits else None
