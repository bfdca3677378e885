"""One registry type for everything the harness looks up by name: methods, suites, models, datasets,
benchmarks, benchmark kinds, config sections and command-line commands.

Names are lowercase and unique, aliases are allowed, duplicates are rejected, an unknown name is
answered with the closest valid names. Entries arrive through an entry-point group per registry
(``harness.methods``, ``harness.benchmarks``, ...), loaded on the first lookup: the built-in packages
(``methods``, ``benchmarks``, ``reports``) are declared there in ``pyproject.toml`` exactly as a
third-party package declares its own, so the core never imports the packages built on it.
"""

from __future__ import annotations

import difflib
import re
from importlib.metadata import entry_points
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")

_NAME = re.compile(r"^[a-z0-9][a-z0-9._+=-]*$")


class RegistryError(KeyError):
    """A registry lookup or registration failed; the message says why and what to do."""

    def __str__(self) -> str:  # KeyError would repr() the message, quotes and all
        return str(self.args[0]) if self.args else ""


class Registry(Generic[T]):
    """A name → object mapping with aliases, suggestions and entry-point discovery."""

    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._entry_points_loaded = entry_point_group is None

    def register(self, name: str, obj: T, *, aliases: tuple[str, ...] = ()) -> T:
        """Register ``obj`` under ``name`` (and ``aliases``); a name already taken is an error."""
        for key in (name, *aliases):
            if not _NAME.match(key):
                raise RegistryError(
                    f"invalid {self.kind} name {key!r}: use lowercase letters, digits and . _ + = -"
                )
            if key in self._entries or key in self._aliases:
                raise RegistryError(
                    f"{self.kind} {key!r} is already registered; pick another name or unregister it first"
                )
        self._entries[name] = obj
        for alias in aliases:
            self._aliases[alias] = name
        return obj

    def unregister(self, name: str) -> None:
        """Remove ``name`` (or the entry an alias names) and its aliases, e.g. to replace a built-in."""
        canonical = self.canonical(name)
        del self._entries[canonical]
        for alias in [a for a, target in self._aliases.items() if target == canonical]:
            del self._aliases[alias]

    def canonical(self, name: str) -> str:
        """The registered name that ``name`` (a name or an alias, any case) refers to."""
        self._load_entry_points()
        key = name.strip().lower()
        if key in self._entries:
            return key
        if key in self._aliases:
            return self._aliases[key]
        known = sorted([*self._entries, *self._aliases])
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise RegistryError(
            f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(sorted(self._entries)) or '(none)'}."
        )

    def get(self, name: str) -> T:
        return self._entries[self.canonical(name)]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.canonical(name)
        except RegistryError:
            return False
        return True

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._entries)

    def aliases_of(self, name: str) -> list[str]:
        canonical = self.canonical(name)
        return sorted(a for a, target in self._aliases.items() if target == canonical)

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self._entries[name]

    def _load_entry_points(self) -> None:
        """Import third-party plugins once; each entry point is called (or imported) to register itself."""
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in entry_points(group=self.entry_point_group):
            loaded: Any = ep.load()
            if callable(loaded):
                loaded(self)


METHODS: Registry = Registry("method", "harness.methods")
SUITES: Registry = Registry("suite", "harness.suites")
MODELS: Registry = Registry("model", "harness.models")
DATASETS: Registry = Registry("dataset", "harness.datasets")
# Methods' own config sections (harness.config.ConfigSection), registered with their methods.
CONFIG_SECTIONS: Registry = Registry("config section")
BENCHMARKS: Registry = Registry("benchmark", "harness.benchmarks")
BENCHMARK_KINDS: Registry = Registry("benchmark kind", "harness.benchmark_kinds")
# Command-line commands: name → ``add_parsers(subparsers)``, which adds one or more sub-commands to
# ``harness`` (the core's run/runs/zoo, the benchmarks' eval/score, the reports' report/reproduce,
# Pen2Sword's transfer/dpf).
COMMANDS: Registry = Registry("command group", "harness.commands")


def register_commands(name: str, add_parsers: Callable[[Any], None]) -> Callable[[Any], None]:
    """Register ``add_parsers(subparsers)`` as the command group ``name`` of the ``harness`` command line."""
    return COMMANDS.register(name, add_parsers)
