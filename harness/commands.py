"""Sub-commands that drive the engine and the other packages: run, transfer, dpf."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cmd_run(args: argparse.Namespace) -> int:
    from harness.catalog import load_builtins
    from harness.config import ConfigError, resolve_config
    from harness.method import method_overrides
    from harness.plan import format_plan, plan_run
    from harness.registry import METHODS

    load_builtins()
    given = {k: v for k, v in (("method", args.method), ("suite", args.suite), ("scale", args.scale),
                               ("seed", args.seed)) if v is not None}
    if "method" in given:  # aliases (full → fft) run, skip and tabulate as one method
        given["method"] = METHODS.canonical(given["method"])
    if args.expert is not None:
        given["model"] = {"expert": args.expert}
    overrides = list(args.overrides)
    if args.rehearsal:
        if (args.scale or "micro") != "paper":
            raise ConfigError("--rehearsal rehearses the paper preset: pass --scale paper with it")
        from harness.rehearsal import rehearsal_overrides

        overrides = rehearsal_overrides() + overrides  # the user's own key=value still win
    config = resolve_config(yaml_path=args.config, overrides=overrides, given=given,
                            method_overrides_for=method_overrides)
    plan = plan_run(config, args.results_dir)  # every check before anything is created
    if args.dry_run:
        print(json.dumps(plan.to_dict(), indent=2, default=str) if args.json else format_plan(plan))
        return 0
    from harness.engine.run import execute
    from harness.summary import format_summary, summarize

    run = execute(plan, force=args.force, resume=args.resume, progress=not args.no_progress)
    print(json.dumps(summarize(run), indent=2, default=str) if args.json else format_summary(summarize(run)))
    return 0


def cmd_transfer(args: argparse.Namespace) -> int:
    from harness.models import resolve_model
    from methods.pen2sword.transfer import TransferOptions, transfer_to_dir

    options = TransferOptions(**{k: v for k, v in (("alpha", args.alpha), ("seed", args.seed),
                                                   ("expansion", args.expansion), ("compat", args.compat))
                                 if v is not None})
    expert = resolve_model(args.expert, scale=args.scale)
    target = resolve_model(args.target, scale=args.scale)
    report = transfer_to_dir(expert.path, target.path, args.out, options)
    print(json.dumps(report, indent=2, default=str) if args.json else f"transferred model written to {args.out}")
    return 0


def cmd_dpf(args: argparse.Namespace) -> int:
    import sys

    from harness.config import resolve_config
    from harness.registry import SUITES
    from methods.pen2sword.dpf import format_ranking, run_dpf

    config = resolve_config(given={"suite": args.suite, "scale": args.scale}, overrides=list(args.overrides))
    suite = SUITES.get(config.suite)
    if not suite.trainable:
        from harness.config import ConfigError

        raise ConfigError(f"suite {suite.name!r} has no training data to hold questions out of; use code or math")
    ranking = run_dpf(config, suite, judge=args.judge, n_questions=args.n, top_k=args.top_k,
                      use_cache=not args.no_cache, say=lambda m: print(m, file=sys.stderr))
    # Table 3 is a result like any other: kept under the results root, where `harness report` reads it.
    from harness.io import atomic_write_json
    from harness.paths import results_dir

    root = Path(args.results) if args.results else results_dir()
    folder = root / "dpf" / suite.name / f"{config.scale}-{ranking.judge.replace(':', '-')}-n{ranking.n_questions}"
    atomic_write_json(folder / "ranking.json", {**ranking.to_dict(), "scale": config.scale,
                                                "candidates": list(config.model.candidates)})
    print(json.dumps(ranking.to_dict(), indent=2) if args.json else format_ranking(ranking))
    print(f"ranking written to {folder / 'ranking.json'}", file=sys.stderr)
    return 0


def add_run_parsers(sub) -> None:
    p = sub.add_parser("run", help="fine-tune and evaluate one method on one suite")
    p.add_argument("--method", help="a registered method (harness list methods)")
    p.add_argument("--suite", help="a registered suite (harness list suites)")
    p.add_argument("--config", help="YAML run config; command-line values override it")
    p.add_argument("--scale", choices=["nano", "micro", "paper"], help="preset scale (default micro)")
    p.add_argument("--seed", type=int)
    p.add_argument("--expert", help="the expert model for transfer methods (name, path or hub id)")
    p.add_argument("--force", action="store_true", help="re-run even if this config already completed")
    p.add_argument("--resume", choices=["auto", "never"], default="auto",
                   help="auto: continue from the latest checkpoint of an interrupted run")
    p.add_argument("--results-dir", help="results root (default ./results or $HARNESS_RESULTS)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--dry-run", action="store_true",
                   help="resolve and check the whole run (config, precision, models, data) and print it; "
                        "create, load and train nothing")
    p.add_argument("--rehearsal", action="store_true",
                   help="with --scale paper: the paper preset's code path on the built-in nano models, a few steps")
    p.add_argument("--json", action="store_true", help="print the plan (--dry-run) or the summary as JSON")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. training.lr=3e-4 alpha=0.25")
    p.set_defaults(func=cmd_run)

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
    p.add_argument("--results", help="results root the ranking is written under (default ./results)")
    p.add_argument("--json", action="store_true", help="print Table 3's rows as JSON")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. model.candidates=a,b")
    p.set_defaults(func=cmd_dpf)
