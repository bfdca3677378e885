"""Pen2Sword's own commands: ``harness transfer`` (the transfer alone, written as a model directory) and
``harness dpf`` (Table 3: rank the candidate experts for a suite's domain). Registered with the command
line as the ``pen2sword`` command group (the ``harness.commands`` entry point)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.config import ConfigError
from harness.registry import register_commands
from methods.pen2sword.dpf import format_ranking, run_dpf
from methods.pen2sword.transfer import TransferOptions, transfer_to_dir


def cmd_transfer(args: argparse.Namespace) -> int:
    from harness.models import resolve_model

    try:
        options = TransferOptions(**{k: v for k, v in (("alpha", args.alpha), ("seed", args.seed),
                                                       ("expansion", args.expansion), ("compat", args.compat))
                                     if v is not None})
    except ValueError as err:  # a bad option is the user's to fix: exit 2 with the message
        raise ConfigError(str(err).replace("TransferOptions.", "--")) from None
    expert = resolve_model(args.expert, scale=args.scale)
    target = resolve_model(args.target, scale=args.scale)
    report = transfer_to_dir(expert.path, target.path, args.out, options)
    print(json.dumps(report, indent=2, default=str) if args.json else f"transferred model written to {args.out}")
    return 0


def cmd_dpf(args: argparse.Namespace) -> int:
    import sys

    from harness.config import resolve_config
    from harness.registry import SUITES

    config = resolve_config(given={"suite": args.suite, "scale": args.scale}, overrides=list(args.overrides))
    suite = SUITES.get(config.suite)
    if not suite.trainable:
        raise ConfigError(f"suite {suite.name!r} has no training data to hold questions out of; use code or math")
    n_questions = args.n
    if n_questions is None and config.pen2sword.dpf_questions > config.data.n_validation:
        # The scale's validation split is smaller than the default question count (nano holds 4): ask them all.
        n_questions = config.data.n_validation
        print(f"DPF asks all {n_questions} questions of the {config.scale} validation split "
              f"(pen2sword.dpf_questions={config.pen2sword.dpf_questions} is more than it holds)", file=sys.stderr)
    ranking = run_dpf(config, suite, judge=args.judge, n_questions=n_questions, top_k=args.top_k,
                      use_cache=not args.no_cache, say=lambda m: print(m, file=sys.stderr))
    # Table 3 is a result like any other: kept under the results root, where `harness report` reads it.
    from harness.io import atomic_write_json
    from harness.paths import results_dir

    root = Path(args.results_dir) if args.results_dir else results_dir()
    folder = root / "dpf" / suite.name / f"{config.scale}-{ranking.judge.replace(':', '-')}-n{ranking.n_questions}"
    atomic_write_json(folder / "ranking.json", {**ranking.to_dict(), "scale": config.scale,
                                                "candidates": list(config.pen2sword.candidates)})
    print(json.dumps(ranking.to_dict(), indent=2) if args.json else format_ranking(ranking))
    print(f"ranking written to {folder / 'ranking.json'}", file=sys.stderr)
    return 0


def add_parsers(sub) -> None:
    p = sub.add_parser("transfer", help="Pen2Sword transfer only: write the target with the fused embedding")
    p.add_argument("--expert", required=True, help="expert model: registered name, local dir, .gguf or hub id")
    p.add_argument("--target", required=True, help="target model: registered name, local dir, .gguf or hub id")
    p.add_argument("--out", required=True, help="output directory (a loadable HF model)")
    p.add_argument("--alpha", type=float, help="fusion ratio (paper default 0.5)")
    p.add_argument("--seed", type=int)
    p.add_argument("--expansion", choices=["replicate", "noise", "lstsq", "procrustes"])
    p.add_argument("--compat", choices=["paper", "official"])
    p.add_argument("--scale", default="micro", choices=["nano", "micro", "paper"],
                   help="which built-in family registered names refer to")
    p.add_argument("--json", action="store_true", help="print the transfer report")
    p.set_defaults(func=cmd_transfer)

    p = sub.add_parser("dpf", help="rank the candidate experts for a suite's domain (Domain-Preserving Function)")
    p.add_argument("--suite", required=True, help="code or math")
    p.add_argument("--judge", help="openai:<model> (paper: openai:gpt-4o; key from OPENAI_API_KEY), reference, "
                                   "or loss (default: pen2sword.dpf_judge)")
    p.add_argument("--scale", default="micro", choices=["nano", "micro", "paper"])
    p.add_argument("--n", type=int, help="domain questions (default: pen2sword.dpf_questions)")
    p.add_argument("--top-k", type=int, default=1, help="how many experts to select")
    p.add_argument("--no-cache", action="store_true", help="rank again even if this ranking is cached")
    p.add_argument("--results-dir", help="results root the ranking is written under (default ./results)")
    p.add_argument("--json", action="store_true", help="print Table 3's rows as JSON")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. pen2sword.candidates=a,b")
    p.set_defaults(func=cmd_dpf)


register_commands("pen2sword", add_parsers)
