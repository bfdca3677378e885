"""The report's tables and figures by name (``TABLES``): each one :class:`Table`, registered by its own
module (``reports/tables/``, ``docs/adding-a-table.md``) with its spec, its renderer and its claims.

``harness report`` and ``harness reproduce`` know no table by name: they plan each table's runs from its
spec (:func:`reports.spec.needed_runs`), find them, and hand them to the table's renderer, which writes
its files and returns its Markdown and its claims (:class:`reports.render.Rendered`). Sections follow the
order of registration: the built-in tables in the order :mod:`reports.tables` imports them (the paper's;
:mod:`reports.cli` imports it), then any other, e.g. a package's declared in the ``harness.tables``
entry-point group, which the registry loads on its first lookup.

A figure with several panels registers one table per panel, each naming the figure as its ``group``:
``--only figure2`` (``reproduce --figure 2``) renders them all, ``figure2a`` one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from harness.registry import Registry, RegistryError

from reports.spec import Spec

if TYPE_CHECKING:
    from reports.collect import Found
    from reports.render import Rendered


@dataclass(frozen=True)
class Context:
    """Where a renderer writes (``out``) and what it may read beside its runs: the results root and the scale
    (Table 3 reads ``harness dpf``'s rankings there)."""

    out: Path
    results: str | Path | None = None
    scale: str = "micro"


# A renderer: (the table, its needed runs as found, where to write) → what the report shows of it.
Renderer = Callable[["Table", "list[Found]", Context], "Rendered"]


@dataclass(frozen=True)
class Table:
    """One table or figure panel of the report.

    ``spec``: what it shows and which runs it needs (:class:`reports.spec.Spec`); ``render``: writes its files
    and returns a :class:`reports.render.Rendered` (the shared ones: :func:`reports.render.render_table`,
    :func:`reports.render.render_curves`); ``claims``: the claims it bears on, called by its renderer with what
    the renderer computed (``render_table``: ``claims(spec, frame, values)``; ``render_curves``:
    ``claims(spec, values)``; ``values`` maps each row label to its runs' :func:`reports.collect.run_values`);
    ``group``: the paper's figure a panel belongs to (None: the table stands alone)."""

    spec: Spec
    render: Renderer
    claims: Callable[..., list[dict]] | None = None
    group: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name


class _Tables(Registry):
    """A :class:`harness.registry.Registry` that lists its entries in registration order: the report's order."""

    def names(self) -> list[str]:
        self._load_entry_points()
        return list(self._entries)


# Third-party tables plug in through the ``harness.tables`` entry point group (a module that registers its
# tables on import), loaded on the first lookup.
TABLES: Registry = _Tables("table", "harness.tables")


def register_table(spec: Spec, render: Renderer, claims: Callable[..., list[dict]] | None = None, *,
                   group: str | None = None) -> Table:
    """Register a table (or a figure panel) under its spec's name; the name must be new."""
    return TABLES.register(spec.name, Table(spec, render, claims, group))


def unregister_table(name: str) -> None:
    TABLES.unregister(name)


def groups() -> dict[str, list[str]]:
    """Each table's or figure's name → the names of its registered tables (a figure's panels, in order)."""
    out: dict[str, list[str]] = {}
    for name, table in TABLES.items():
        out.setdefault(table.group or name, []).append(name)
    return out


def resolve_names(names: list[str]) -> list[Table]:
    """``table2``, ``figure2`` (its panels), ``figure2a``, ``all``, ... → tables, each once; an unknown
    name is a :class:`harness.registry.RegistryError` naming the known ones (the command line exits 2)."""
    by_group = groups()
    chosen: list[str] = []
    for name in names:
        key = name.strip().lower().replace(" ", "")
        if key == "all":
            chosen += TABLES.names()
        elif key in by_group:
            chosen += by_group[key]
        elif key in TABLES:
            chosen.append(TABLES.canonical(key))
        else:
            known = [group if panels == [group] else f"{group} ({', '.join(panels)})"
                     for group, panels in by_group.items()]
            raise RegistryError(f"unknown table or figure {name!r}; known: {', '.join(known)}, or all")
    return [TABLES.get(n) for n in dict.fromkeys(chosen)]


def specs() -> dict[str, Spec]:
    """Every registered table's spec by name, in the report's order."""
    return {name: table.spec for name, table in TABLES.items()}
