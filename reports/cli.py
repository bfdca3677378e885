"""``harness report`` (render every table and figure that runs exist for) and ``harness reproduce``
(plan the runs a table or figure needs, run the missing ones, then render). Both know no table by name:
each is a :class:`reports.registry.Table` (``reports/tables/``), planned from its spec and drawn by its own
renderer; this module assembles ``report.md`` and ``claims.json`` from what the renderers return."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness.engine.trackers import add_tracker_argument, use_trackers_from_args
from harness.launch import add_launcher_arguments, launcher_from_args
from harness.registry import register_commands

if TYPE_CHECKING:
    from harness.runstore import RunDir
    from reports.collect import Found
    from reports.registry import Table

# Rough wall minutes of one default run per scale, for --dry-run estimates before any run exists here.
DEFAULT_RUN_MINUTES = {"nano": 0.5, "micro": 16.0}


def add_parsers(sub) -> None:
    p = sub.add_parser("report", help="rebuild the paper's tables and figures from run directories")
    p.add_argument("--results-dir", help="results root to read (default ./results or $HARNESS_RESULTS); it must "
                                         "exist (an empty one renders every run as missing)")
    p.add_argument("--out", default="report", help="output directory (default ./report)")
    p.add_argument("--scale", default="micro", choices=["nano", "micro", "paper"])
    p.add_argument("--seeds", default=None,
                   help="comma-separated seeds every table averages (default: each table's own, the paper's count: "
                        "0,1,2 for Table 4 and Figure 7, 0 for the others, and any further seed with completed "
                        "runs here)")
    p.add_argument("--only", default="all", help="comma-separated tables/figures, e.g. table2,figure2 (default all)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides the runs were made with")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("reproduce", help="run what a table or figure needs (skipping completed runs), then render it")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--table", help="table number, e.g. 2")
    which.add_argument("--figure", help="figure number or panel, e.g. 2 or 2a")
    which.add_argument("--all", action="store_true")
    p.add_argument("--scale", default="micro", choices=["nano", "micro", "paper"])
    p.add_argument("--seeds", type=int, default=None,
                   help="how many seeds (0..K-1) every table gets (default: each table's own, the paper's count: "
                        "three for Table 4 and Figure 7, one for the others)")
    p.add_argument("--results-dir", help="results root (default ./results or $HARNESS_RESULTS)")
    p.add_argument("--out", default="report", help="output directory (default ./report)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and an estimate of its time; run nothing")
    add_tracker_argument(p)
    add_launcher_arguments(p)
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=cmd_reproduce)


def _tables(names: list[str]) -> list[Table]:
    """The tables ``names`` call for (``table2``, ``figure2``, ``all``, ...); an unknown name is a RegistryError."""
    import reports.tables  # noqa: F401  # the paper's own tables (also found through the harness.tables entry point)
    from reports.registry import resolve_names

    return resolve_names(names)


def _needs(specs, scale: str, seeds: tuple[int, ...] | None, overrides: tuple[str, ...]):
    """Spec name → its needed runs; ``seeds`` None: each spec's own (the paper's count, :meth:`Spec.seed_list`)."""
    from reports.spec import needed_runs

    return {spec.name: needed_runs(spec, scale=scale, seeds=spec.seed_list() if seeds is None else seeds,
                                   overrides=overrides) for spec in specs}


def render_all(tables: list[Table], needs, *, results, out: Path, scale: str, overrides: tuple[str, ...]) -> Path:
    """Render every table with its own renderer; write report.md (ours beside the paper, claims, missing runs) and
    claims.json."""
    from harness.io import atomic_write_json
    from harness.provenance import hardware

    from reports.collect import find
    from reports.claims import CLAIMS_HOW_TO_READ, finalize, verdict_text
    from reports.registry import Context
    from reports.spec import differences

    context = Context(out=out, results=results, scale=scale)
    sections, all_claims, missing, other_missing = [], [], [], []
    precisions: set[str] = set()
    every_run: dict[Path, RunDir] = {}  # the runs behind the whole report, each once
    for table in tables:
        spec = table.spec
        found = find(needs[spec.name], results) if needs[spec.name] else []
        for f in found:
            if f.run is not None:
                precisions.add(str(json.loads(f.run.config_path.read_text())["training"]["precision"]))
        rendered = table.render(table, found, context)
        figure = "".join(f"\n![{spec.name}]({p.name})\n" for p in rendered.files if p.suffix == ".png")
        runs = {f.run.path: f.run for f in found if f.run is not None}
        every_run.update(runs)
        # A table with rows is made of runs (say what they cost); one without (Table 3, 6) is not.
        behind = f"\n\nBehind it: {compute_text(runs.values())}." if spec.rows else ""
        sections.append(f"## {spec.title}\n\n{rendered.markdown}\n{figure}\n{spec.note}{behind}\n")
        all_claims += [{**c, "source": spec.name} for c in rendered.claims]
        missing += rendered.missing
        other_missing += rendered.todo
    hw = hardware()
    seeds_used = {name: len({n.seed for n in spec_needs}) for name, spec_needs in needs.items()}
    head = [f"# Pen2Sword reproduction report ({scale} scale)", "",
            f"- generated {time.strftime('%Y-%m-%d %H:%M')} on {platform.node()} ({hw.get('cpu', 'cpu ?')}, "
            f"{', '.join(g['name'] for g in hw['gpus']) if hw.get('gpus') else 'no GPU'})",
            f"- scale {scale}: " + ("the paper's models and data" if scale == "paper" else
                                    "the built-in model family on local stand-in datasets (not the paper's "
                                    "Llama-2/CodeLlama or evol-codealpaca/MetaMathQA), subsampled benchmarks"),
            f"- precision of the runs: {', '.join(sorted(precisions)) or 'no runs'}; config overrides: "
            f"{' '.join(overrides) or 'none'}",
            f"- compute behind this report: {compute_text(every_run.values())}",
            *_precision_warning(every_run.values()),
            "- each cell: ours (mean ± std over seeds) beside the paper's number and the difference",
            "- differences from the paper at this scale (the runs' settings, models and protocol):",
            *[f"  - {d}" for d in differences([t.spec for t in tables], scale, seeds_used, overrides) or ["none"]],
            ""]
    # Every test of every claim is one family: Holm's correction over all of them decides the verdicts.
    all_claims = finalize(all_claims)
    n_tests = sum(1 for c in all_claims for t in c.get("tests", ()) if t.get("p") is not None)
    claims = ["## Claims", "", CLAIMS_HOW_TO_READ, "", f"{n_tests} tests in this section's family.", "",
              "| source | claim | holds | evidence |", "|---|---|---|---|"]
    claims += [f"| {c['source']} | {c['claim']} | {verdict_text(c)} | {c['evidence']} |" for c in all_claims]
    needed_by: dict[str, list[str]] = {}
    for f in missing:
        needed_by.setdefault(f.need.run_id, []).append(f.need.spec)
    first = {}  # each missing run once, in the order the specs need it
    for f in missing:
        first.setdefault(f.need.run_id, f)
    todo = ["## Missing runs", ""] + ([_missing_line(f, needed_by[rid], scale, overrides) for rid, f in first.items()]
                                      + other_missing or ["none"])
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.md"
    # The claims for machines too (a dashboard, a test of a reproduction): holds is true, false or null.
    atomic_write_json(out / "claims.json", [
        {"source": c["source"], "claim": c["claim"], "holds": c["holds"], "verdict": verdict_text(c),
         "within_noise": bool(c.get("within_noise")), "provisional": bool(c.get("provisional")),
         "undecided_because": c.get("undecided_because"), "evidence": c["evidence"],
         "tests": [{k: v for k, v in t.items() if k not in ("digits", "scale")} for t in c.get("tests", ())]}
        for c in all_claims])
    path.write_text("\n".join(head) + "\n" + "\n".join(sections) + "\n" + "\n".join(claims) + "\n\n"
                    + "\n".join(todo) + "\n", encoding="utf-8")
    return path


def _missing_line(found: Found, specs: list[str], scale: str, overrides: tuple[str, ...]) -> str:
    """A missing run's line in report.md: its command, or why this machine or scale cannot make it."""
    command = f"`{found.need.command(scale, overrides)}` ({', '.join(specs)}"
    if found.need.not_runnable:
        return f"- not runnable here: {command}): {found.need.not_runnable}"
    return f"- {command}; {found.state})"


def _precision_warning(runs) -> list[str]:
    stale = scored_in_another_precision(runs)
    if not stale:
        return []
    names = ", ".join(f"{r.path.parent.name}/{r.path.name}" for r in stale[:5]) + (" …" if len(stale) > 5 else "")
    return [f"- benchmarks of {len(stale)} {'run' if len(stale) == 1 else 'runs'} record no precision: made before every model "
            f"call of an evaluation ran in the run's precision, they may have been scored partly in fp32 (a PEFT "
            f"method's HumanEval, every benchmark of a method that does not train): {names}. Re-score them with "
            "`harness run ... --force` to compare them on equal terms"]


def scored_in_another_precision(runs) -> list[RunDir]:
    """Runs that trained in bf16 or fp16 but whose benchmark results do not record that precision: scored before
    every model call of an evaluation ran in the run's precision, so partly in fp32 (a PEFT method's sampled or,
    before the harness's decoding loop, greedy HumanEval; every benchmark of a method that does not train)."""
    stale = []
    for run in runs:
        precision = json.loads(run.config_path.read_text()).get("training", {}).get("precision")
        if precision in (None, "fp32"):
            continue
        records = [r["benchmark"] for r in run.metrics()
                   if r.get("phase") == "benchmark" and isinstance(r.get("benchmark"), dict)]
        if any((record.get("extra") or {}).get("precision") != precision for record in records):
            stale.append(run)
    return stale


def compute_text(runs) -> str:
    """What the runs cost: "5 runs, 1 h 02 min of wall time in all (4 of them on an idle machine)". Wall time
    is each run's latest attempt; "idle" is a recorded CPU share of at least
    :data:`reports.claims.MIN_CPU_SHARE` (a run that shared its machine took longer than it needed)."""
    from reports.claims import MIN_CPU_SHARE

    runs = list(runs)
    if not runs:
        return "no runs"
    seconds, idle = 0.0, 0
    for run in runs:
        status = run.status() or {}
        seconds += status.get("wall_seconds") or 0.0
        share = (status.get("profile") or {}).get("cpu_share")
        idle += share is not None and share >= MIN_CPU_SHARE
    minutes = round(seconds / 60)
    wall = f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"
    return (f"{len(runs)} run{'s' * (len(runs) != 1)}, {wall} of wall time in all "
            f"({idle} of them recorded an idle machine)")


def plan_minutes(todo, scale: str, results) -> str:
    """An estimate of the plan's wall time: each run at the median of this results root's completed runs of its
    method at ``scale`` (labelling methods cost more than LoRA), else of all its completed runs at ``scale``,
    else :data:`DEFAULT_RUN_MINUTES`."""
    import statistics

    from harness.runstore import find_runs

    walls: dict[str, list[float]] = {}
    for run in find_runs(results):
        status = run.status()
        if run.is_completed() and status.get("wall_seconds") and run.config_path.exists():
            config = json.loads(run.config_path.read_text())
            if config.get("scale") == scale:
                walls.setdefault(config["method"], []).append(status["wall_seconds"] / 60)
    every = [w for ws in walls.values() for w in ws]
    fallback = statistics.median(every) if every else DEFAULT_RUN_MINUTES.get(scale)
    if fallback is None:
        return "time unknown: no completed run at this scale here"
    total = sum(statistics.median(walls[n.row.method]) if n.row.method in walls else fallback for n in todo)
    source = f"from {len(every)} completed runs here" if every else "a default per run"
    return f"about {total:.0f} minutes, {source}"


def _with_seeds_found(specs, needs: dict, scale: str, overrides: tuple[str, ...], results) -> dict:
    """``needs`` (each spec at its own seeds) extended by every completed run of a further seed this results root
    holds: a report averages what was run (`reproduce --seeds 3` on a one-seed figure) without listing the runs of
    those seeds that were not made as missing."""
    from harness.runstore import find_runs

    from reports.collect import find

    found_seeds = {read_seed(run) for run in find_runs(results) if run.is_completed()} - {None}
    out = {}
    for spec in specs:
        own = set(spec.seed_list())
        extra = tuple(sorted(found_seeds - own))
        more = _needs([spec], scale, extra, overrides)[spec.name] if extra else []
        out[spec.name] = needs[spec.name] + [f.need for f in find(more, results) if f.run is not None]
    return out


def read_seed(run) -> int | None:
    try:
        return json.loads(run.config_path.read_text()).get("seed")
    except (OSError, ValueError):
        return None


def _results_root(results: str | None) -> Path:
    """The results root a report reads: it must exist (a mistyped path is an error, not an empty report); one
    without runs renders every needed run as missing, with the command that makes it."""
    from harness.config import ConfigError
    from harness.paths import results_dir
    from harness.runstore import find_runs

    root = Path(results) if results else results_dir()
    if not root.is_dir():
        raise ConfigError(f"results directory {str(root)!r} does not exist: make runs there first (`harness run`, "
                          "`harness reproduce`), or give the results root that holds them with --results-dir")
    if not find_runs(root):
        print(f"harness: note: no runs under {root}: the report lists every run it needs as missing", file=sys.stderr)
    return root


def cmd_report(args: argparse.Namespace) -> int:
    tables = _tables(args.only.split(","))
    results = _results_root(args.results_dir)
    specs = [table.spec for table in tables]
    seeds = None if args.seeds is None else tuple(int(s) for s in args.seeds.split(","))
    overrides = tuple(args.overrides)
    needs = _needs(specs, args.scale, seeds, overrides)
    if seeds is None:
        needs = _with_seeds_found(specs, needs, args.scale, overrides, results)
    path = render_all(tables, needs, results=results, out=Path(args.out), scale=args.scale, overrides=overrides)
    print(f"report written to {path}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from reports.collect import find
    from reports.spec import differences

    name = "all" if args.all else (f"table{args.table}" if args.table else f"figure{args.figure}")
    tables = _tables([name])
    specs = [table.spec for table in tables]
    seeds = None if args.seeds is None else tuple(range(args.seeds))
    overrides = tuple(args.overrides)
    needs = _needs(specs, args.scale, seeds, overrides)
    unique = {}
    for spec_needs in needs.values():
        for need in spec_needs:
            unique.setdefault(need.run_id, need)
    found = {f.need.run_id: f for f in find(list(unique.values()), args.results_dir)}
    absent = [n for rid, n in unique.items() if found[rid].run is None]
    todo = [n for n in absent if n.not_runnable is None]
    blocked = [n for n in absent if n.not_runnable is not None]
    estimate = plan_minutes(todo, args.scale, args.results_dir)
    print(f"{name} at {args.scale}: {len(unique)} runs needed, {len(unique) - len(absent)} completed, "
          f"{len(todo)} to run ({estimate}), {len(blocked)} not runnable here")
    for need in todo:  # ProxyTuning's lines name the anti-expert each expert gets (its untuned base by default)
        note = "; ".join(filter(None, (found[need.run_id].state, need.models_note())))
        print(f"  {need.command(args.scale, overrides)}   [{note}]")
    for need in blocked:
        note = "; ".join(filter(None, (need.not_runnable, need.models_note())))
        print(f"  not runnable here: {need.command(args.scale, overrides)}   [{note}]")
    for spec in specs:
        if not spec.rows:  # made of no runs (Table 3: `harness dpf`; Table 6: the paper's numbers only)
            print(f"  {spec.name}: {spec.note}")
    seeds_used = {spec_name: len({n.seed for n in spec_needs}) for spec_name, spec_needs in needs.items()}
    print("seeds per cell (each table's own unless --seeds): "
          + ", ".join(f"{spec.name} {seeds_used[spec.name]}" for spec in specs if needs[spec.name]))
    print(f"differences from the paper at {args.scale}:")
    for difference in differences(specs, args.scale, seeds_used, overrides) or ["none"]:
        print(f"  - {difference}")
    launcher = launcher_from_args(args, args.results_dir, say=lambda m: print(m, file=sys.stderr))
    use_trackers_from_args(args)
    if args.dry_run:
        if launcher.kind != "local":
            print("\n".join(launcher.describe([need.config for need in todo])))
        return 0
    from tqdm.auto import tqdm

    # local: each run in a process of its own, one after another (fresh memory, its own threads); otherwise one
    # submitit job per run. Either way an interrupted run resumes, and the report waits for the last one.
    launched = launcher.launch([need.config for need in todo])
    failed = [need for need, item in tqdm(list(zip(todo, launched)), desc=f"reproduce {name}", unit="run",
                                          file=sys.stderr) if not item.wait()]
    path = render_all(tables, needs, results=args.results_dir, out=Path(args.out), scale=args.scale,
                      overrides=overrides)
    print(f"report written to {path}")
    if failed:
        print(f"{len(failed)} of {len(todo)} runs failed (their run directories hold the error; `harness runs` "
              "lists them): " + "; ".join(need.command(args.scale, overrides) for need in failed), file=sys.stderr)
        return 1
    return 0


register_commands("reports", add_parsers)
