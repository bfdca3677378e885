"""``harness zoo build`` and ``harness zoo list``: build the model family and show what it holds."""

from __future__ import annotations

import argparse
import json
import time

from harness.zoo.recipe import EVAL_DOMAINS, ROLE_BY_NAME, ROLES, SCALES


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``zoo`` (with ``build`` and ``list``) to an argparse sub-parser group; dispatch with :func:`main`."""
    zoo = subparsers.add_parser("zoo", help="the built-in model family (small Llama models mirroring the paper's)")
    sub = zoo.add_subparsers(dest="zoo_command", required=True)
    p = sub.add_parser("build", help="build the family into the cache (resumes an interrupted build)")
    p.add_argument("--scale", choices=SCALES, default="micro", help="micro (default; minutes) or nano (seconds, tests)")
    p.add_argument("--force", action="store_true", help="delete the cached family and rebuild it from scratch")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=main)
    p = sub.add_parser("list", help="roles, sizes, held-out losses and relation checks of a built family")
    p.add_argument("--scale", choices=SCALES, default="micro")
    p.add_argument("--json", action="store_true", help="print the manifest (zoo.json) instead of a table")
    p.set_defaults(func=main)
    return zoo


def main(args: argparse.Namespace) -> int:
    if args.zoo_command == "build":
        return _build(args)
    if args.zoo_command == "list":
        return _list(args)
    raise ValueError(f"unknown zoo command {args.zoo_command!r}")


def _build(args: argparse.Namespace) -> int:
    from harness.zoo.build import build_family, family_manifest

    start = time.perf_counter()
    root = build_family(args.scale, progress=not args.no_progress, force=args.force)
    manifest = family_manifest(args.scale) or {}
    print(f"{args.scale} family ready in {root} ({time.perf_counter() - start:.0f} s this run, "
          f"{manifest.get('build_seconds', 0):.0f} s of building in all)")
    print(format_table(manifest))
    return 0 if manifest.get("relations_hold") is not False or args.scale != "micro" else 1


def _list(args: argparse.Namespace) -> int:
    from harness.zoo.build import family_dir, family_manifest

    manifest = family_manifest(args.scale)
    if manifest is None:
        print(f"the {args.scale} family is not built yet (it would live in {family_dir(args.scale)}); "
              f"build it with `harness zoo build --scale {args.scale}`")
        return 1
    print(json.dumps(manifest, indent=2) if args.json else format_table(manifest))
    return 0


def _fmt_params(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def format_table(manifest: dict) -> str:
    """The manifest as a readable table: one row per role, then the relation checks."""
    headers = ["role", "stands in for", "d", "layers", "params", "vocab", "tokens",
               *[f"{d} bpb" for d in EVAL_DOMAINS]]
    rows = []
    entries = manifest.get("roles", {})
    # A role added after the family was built shares its checkpoint with a role the manifest lists (the recipe, and
    # so the family's cache, did not change): show that checkpoint's entry.
    by_checkpoint = {ROLE_BY_NAME[name].checkpoint: e for name, e in entries.items() if name in ROLE_BY_NAME}
    for role in ROLES:
        e = entries.get(role.name) or by_checkpoint.get(role.checkpoint, {})
        built = e.get("built")
        losses = e.get("heldout", {})
        rows.append([role.name, role.stands_in_for, str(e.get("hidden_size", "-")), str(e.get("layers", "-")),
                     _fmt_params(e.get("params")), str(e.get("vocab_size", "-")),
                     _fmt_params(e.get("tokens_total")) if built else "not built",
                     *[f"{losses[d]['bpb']:.3f}" if d in losses else "-" for d in EVAL_DOMAINS]])
    reference = manifest.get("unigram_reference_bpb") or {}
    if reference:
        rows.append(["(unigram reference)", "token frequencies only", "", "", "", "", "",
                     *[f"{reference[d]:.3f}" if d in reference else "-" for d in EVAL_DOMAINS]])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [f"{manifest.get('scale', '?')} family, recipe {manifest.get('recipe_hash', '?')}: "
             f"{manifest.get('family_dir', '')}",
             "held-out loss in bits per UTF-8 byte (comparable across tokenizers); tokens = all training, "
             "parents included", ""]
    lines.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    lines += ["", "relation checks (required ones must hold for the experiments to mean something):"]
    for rel in manifest.get("relations", []):
        mark = {True: "PASS", False: "FAIL", None: "pending"}[rel["holds"]]
        numbers = f"  {rel['better_bpb']:.3f} vs {rel['than_bpb']:.3f}" if rel["holds"] is not None else ""
        kind = "required" if rel["required"] else "informative"
        lines.append(f"  [{mark}] {rel['name']}{numbers}  ({kind})")
    return "\n".join(lines)
