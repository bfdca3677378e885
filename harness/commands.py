"""``harness run``: plan one run (``--dry-run`` stops there), then execute it."""

from __future__ import annotations

import argparse
import json
import sys

from harness.engine.trackers import add_tracker_argument, use_trackers_from_args
from harness.launch import add_launcher_arguments, launcher_from_args
from harness.registry import register_commands


def cmd_run(args: argparse.Namespace) -> int:
    from harness.config import ConfigError, resolve_config
    from harness.method import method_overrides
    from harness.engine.plan import format_plan, plan_run
    from harness.registry import METHODS

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
    use_trackers_from_args(args)
    launcher = launcher_from_args(args, args.results_dir, say=lambda m: print(m, file=sys.stderr))
    launcher.check(plan.config)
    if args.dry_run:
        print(json.dumps(plan.to_dict(), indent=2, default=str) if args.json else format_plan(plan))
        if launcher.kind != "local":
            print("\n".join(launcher.describe([plan.config])))
        return 0
    from harness.runstore import RunDir
    from harness.summary import format_summary, summarize

    if launcher.kind != "local":  # a job of its own (through submitit), waited for
        if args.force or args.resume != "auto":
            raise ConfigError("--force and --resume never apply to a launched job; run it with --launcher local")
        (item,) = launcher.launch([config])  # planned again on the node: its precision, its run id
        ok = item.wait()
        print(f"job {item.job_id} {'completed' if ok else 'failed: ' + str(item.error)}; log {item.log}",
              file=sys.stderr)
        if not ok:
            return 1
        run = RunDir(item.run_dir)
    else:
        from harness.engine.run import execute

        run = execute(plan, force=args.force, resume=args.resume, progress=not args.no_progress)
    print(json.dumps(summarize(run), indent=2, default=str) if args.json else format_summary(summarize(run)))
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
    add_tracker_argument(p)
    add_launcher_arguments(p)
    p.set_defaults(func=cmd_run)


register_commands("run", add_run_parsers)
