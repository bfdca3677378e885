"""``harness runs`` (every run under a results root), ``harness show RUN_DIR`` (one run's summary) and
``harness export RUN_DIR --out DIR`` (a trained checkpoint as a model directory of its own).

Wired into the main parser by :func:`add_parsers`; a bad path raises
:class:`harness.config.ConfigError`, which the command line reports with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from harness.config import ConfigError
from harness.paths import results_dir
from harness.registry import register_commands
from harness.runstore import RunDir, find_runs
from harness.summary import format_summary, summarize


def _root(value: str | None) -> Path:
    return Path(value).expanduser() if value else results_dir()


def run_row(run: RunDir) -> dict:
    """One line of ``harness runs``: suite, method, run id, state, last step, best ROUGE-1."""
    try:
        s = summarize(run)
    except (OSError, ValueError) as err:  # a torn or hand-edited file: list it, do not stop the listing
        return {"suite": run.path.parent.parent.name, "method": run.path.parent.name, "run_id": run.path.name,
                "state": f"unreadable ({type(err).__name__})", "last_step": None, "best_step": None,
                "best_rouge1": None, "run_dir": str(run.path)}
    ev = s.get("eval") or {}
    best = ev.get("best") or {}
    last_step = s["last_step"] if s["last_step"] is not None else (ev["steps"][-1] if ev.get("steps") else None)
    status = run.status() or {}
    return {"suite": s["suite"] or run.path.parent.parent.name, "method": s["method"] or run.path.parent.name,
            "run_id": s["run_id"], "scale": s["scale"], "seed": s["seed"], "state": s["state"],
            "last_step": last_step, "max_steps": s["max_steps"], "best_step": s["best_step"],
            "best_rouge1": best.get("rouge1"), "run_dir": s["run_dir"], "job_id": status.get("job_id"),
            "log": status.get("log"), "eta_s": _eta(s["state"], status, last_step, s["max_steps"])}


def _eta(state: str, status: dict, step: int | None, max_steps: int | None) -> float | None:
    """Seconds a running first attempt still needs at its pace so far (None when it cannot be told)."""
    if state != "running" or not step or not max_steps or status.get("attempts", 1) != 1 or not status.get("started"):
        return None
    elapsed = time.time() - float(status["started"])
    return elapsed / step * max(max_steps - step, 0)


def queued_jobs(root: Path, listed: list[dict]) -> list[dict]:
    """Jobs submitted under ``root`` (``<root>/.jobs/jobs.jsonl``) whose run has not started and that have not
    ended: ``harness runs`` lists them as queued, with the job id and the log it will write."""
    from harness.io import read_jsonl
    from harness.launch import JOBS_FILE

    jobs_file = root / ".jobs" / JOBS_FILE
    if not jobs_file.is_file():
        return []
    started = {r["job_id"] for r in listed if r.get("job_id")}
    rows = []
    for job in read_jsonl(jobs_file):
        ended = (jobs_file.parent / f"{job['job_id']}_0_result.pkl").exists()
        if job["job_id"] in started or ended:
            continue
        rows.append({"suite": job["suite"], "method": job["method"], "run_id": "-", "scale": job["scale"],
                     "seed": job["seed"], "state": "queued", "last_step": None, "max_steps": None, "best_step": None,
                     "best_rouge1": None, "run_dir": None, "job_id": job["job_id"], "log": job["log"], "eta_s": None})
    return rows


def list_runs(results_root: str | Path | None = None) -> list[dict]:
    """:func:`run_row` for every run under ``results_root`` (default: ``harness.paths.results_dir()``)."""
    root = Path(results_root).expanduser() if results_root is not None else results_dir()
    rows = [run_row(run) for run in find_runs(root)]
    return rows + queued_jobs(root, rows)


def format_runs(rows: list[dict]) -> str:
    header = ["suite", "method", "run id", "state", "job", "step", "best R-1"]
    table = []
    for r in rows:
        step = "-" if r["last_step"] is None else str(r["last_step"])
        if r.get("max_steps") and r["last_step"] is not None:
            step += f"/{r['max_steps']}"
        if r.get("eta_s") is not None:
            step += f" (ETA {r['eta_s'] / 60:.0f} min)"
        rouge = "-" if r["best_rouge1"] is None else f"{r['best_rouge1']:.4f}"
        table.append([str(r["suite"]), str(r["method"]), str(r["run_id"]), str(r["state"]), str(r.get("job_id") or "-"),
                      step, rouge])
    widths = [max(len(x[i]) for x in [header, *table]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) if i < 5 else c.rjust(w) for i, (c, w) in enumerate(zip(x, widths))).rstrip()
                     for x in [header, *table])


def resolve_run_dir(value: str, results_root: str | Path | None = None) -> RunDir:
    """A run directory from a path, or from a run id (or ``method/run-id``, ``suite/method/run-id``)
    under the results root. Raises :class:`ConfigError` saying what was wrong and how to fix it."""
    path = Path(value).expanduser()
    root = Path(results_root).expanduser() if results_root is not None else results_dir()
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{value} is a file, not a run directory; pass the directory that holds its "
                              "config.json (results/<suite>/<method>/<run-id>); `harness runs` lists them")
        if not (path / "config.json").is_file():
            runs = find_runs(path)
            hint = (f"; it holds {len(runs)} run(s), e.g. {runs[0].path}" if runs else
                    "; `harness runs --results-dir DIR` lists the runs under a results root")
            raise ConfigError(f"{value} is not a run directory (no config.json in it): a run directory is "
                              f"<results>/<suite>/<method>/<run-id>{hint}")
        return RunDir(path)
    parts = Path(value).parts
    matches = [r for r in find_runs(root) if parts and r.path.parts[-len(parts):] == parts] if len(parts) <= 3 else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(f"{value} names {len(matches)} runs under {root}: "
                          + ", ".join(str(m.path) for m in matches[:5]) + "; pass the full run directory")
    raise ConfigError(f"no run directory {value}: not a path, nor a run id under the results root {root}; "
                      "`harness runs` lists the runs (--results-dir DIR or $HARNESS_RESULTS for another root)")


def cmd_runs(args: argparse.Namespace) -> int:
    if args.results_dir is not None and not _root(args.results_dir).is_dir():
        raise ConfigError(f"results directory {args.results_dir} does not exist (or is not a directory); "
                          "pass the --results-dir that `harness run` wrote to")
    root = _root(args.results_dir)
    rows = list_runs(root)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
    elif rows:
        print(format_runs(rows))
    else:
        print(f"no runs under {root}", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    run = resolve_run_dir(args.run_dir, args.results_dir)
    try:
        summary = summarize(run)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{run.path}: cannot read the run's files ({type(err).__name__}: {err})") from err
    print(json.dumps(summary, indent=2, default=str) if args.json else format_summary(summary))
    return 0


def export_model(run: RunDir, out: Path, step: int | str = "best") -> dict:
    """Write the model ``run`` holds at ``step`` to ``out`` as a plain Hugging Face model directory: the
    method's prepared model (Pen2Sword's transferred base and extended tokenizer included), adapters merged in,
    so ``harness eval --model OUT``, lm-eval or vLLM load it with no harness code. Written beside ``out`` and
    moved into place at the end: an interrupted export leaves no half model. Returns what ``export.json`` in
    ``out`` records (the run, its step)."""
    import shutil

    from harness.engine.run import load_run_model
    from harness.io import atomic_write_json

    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} exists and is not empty; pick a new directory (or remove it)")
    model, tokenizer, info = load_run_model(run.path, step)
    if hasattr(model, "merge_and_unload"):  # peft: fold LoRA (and trainable token rows) into the weights
        model = model.merge_and_unload()
    staging = out.with_name(f".{out.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    atomic_write_json(staging / "export.json", info)
    if out.exists():
        out.rmdir()
    staging.rename(out)
    return info


def cmd_export(args: argparse.Namespace) -> int:
    run = resolve_run_dir(args.run_dir, args.results_dir)
    step = args.step if args.step in ("best", "latest") else _step_number(args.step)
    try:
        info = export_model(run, Path(args.out).expanduser(), step)
    except ValueError as err:  # not completed, no such checkpoint, a decode-time combination
        raise ConfigError(str(err)) from err
    # The run scored its benchmarks in its own precision; the same flag gives the same model calls.
    print(f"exported {info['method']} step {info['step']} of {run.path} to {args.out}; score it as the run did with "
          f"`harness eval --model {args.out} --suite {info['suite']} --precision {info['precision']}`")
    return 0


def _step_number(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"--step {value!r}: give best, latest or a checkpoint's step number") from None


def add_parsers(sub) -> None:
    """Add ``runs``, ``show`` and ``export`` to the ``harness`` sub-command parsers ``sub``."""
    p = sub.add_parser("runs", help="list every run under the results root, with its state")
    p.add_argument("--results-dir", help="results root (default ./results or $HARNESS_RESULTS)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("show", help="summarize one run: scores, benchmarks, time and memory per phase")
    p.add_argument("run_dir", metavar="RUN_DIR",
                   help="a run directory (results/<suite>/<method>/<run-id>), or a run id under the results root")
    p.add_argument("--results-dir", help="where to look up a run id (default ./results or $HARNESS_RESULTS)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("export", help="write a trained run's checkpoint as a model directory (adapters merged)")
    p.add_argument("run_dir", metavar="RUN_DIR",
                   help="a completed run directory, or a run id under the results root")
    p.add_argument("--out", required=True, help="the directory to write (new or empty)")
    p.add_argument("--step", default="best",
                   help="best (the best step by ROUGE-1; default), latest, or a kept checkpoint's step number")
    p.add_argument("--results-dir", help="where to look up a run id (default ./results or $HARNESS_RESULTS)")
    p.set_defaults(func=cmd_export)


register_commands("runs", add_parsers)
