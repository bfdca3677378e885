"""The end of a run, in one screen: what ran, how well, how long, how much memory.

:func:`summarize` reads a run directory (config.json, status.json, metrics.jsonl) into a plain,
JSON-serialisable dict; :func:`format_summary` renders that dict as a fixed-width text block.
Both work on any run directory, finished or not: a run with no benchmarks, an evaluation-only
method with only step 0, a run killed mid-way or one written by an older harness renders with
whatever it has (missing numbers show as ``-``).

Rows are read through :func:`harness.runstore.latest_metrics`: after a resume, the latest attempt's
row wins for each ``(step, phase, metric)``.

The summary dict::

    {"run_dir", "run_id", "method", "suite", "scale", "seed", "max_steps",
     "state",                 # RunDir.state(): completed | failed | running | interrupted | ...
     "attempts", "host", "started", "finished", "error",
     "last_step",             # the last training step logged (None: nothing trained)
     "params": {"trainable", "total", "percent"} | None,
     "best_step",             # by ROUGE-1: status best_step, else the eval rows' best_step, else argmax
     "eval": {"steps": [...], "first": E, "best": E, "last": E,
              "degenerate_share": {step: share}, "degenerate_steps": [steps where over half are degenerate]} | None,
         # E = {"step", "rouge1", "rouge2", "rougeL", "eval_loss", "eval_bits_per_byte"} (None: absent)
     "benchmarks": {"names": [...], "rows": [{"step", "scores": {name: B}}]},
         # B = {"score", "stderr", "n", "metric", "bits_per_byte", "bits_per_byte_stderr", "p_correct", ...}
     "phases": [{"name", "parent", "depth", "count", "self_seconds", "total_seconds",
                 "peaks": {metric: value}, "unavailable": {metric: reason}}],   # pipeline order
     "unavailable": {metric: reason},   # what this machine could not measure in any phase
     "wall_seconds",          # finished - started of the latest attempt (None until it ends)
     "elapsed_seconds",       # unfinished runs: how long the latest attempt has run (so far / until it died)
     "phase_seconds_sum",     # the sum of every phase's self seconds
     "other_seconds"}         # wall - phase sum, when positive: time in no phase
"""

from __future__ import annotations

import math
import time
from typing import Any

from harness.engine.degeneracy import MAX_SHARE
from harness.io import read_json
from harness.runstore import COMPLETED, FAILED, RUNNING, RunDir, latest_metrics

EVAL_METRICS = ("rouge1", "rouge2", "rougeL", "eval_loss", "eval_bits_per_byte")
# Phases whose rows are not per-phase profiling: metrics of the model, not of the pipeline.
CONTINUOUS = ("bits_per_byte", "p_correct")  # benchmark metrics beside the score (harness.engine.evaluation)
NON_PROFILE_PHASES = frozenset({"eval", "train", "setup", "benchmark", "profiler"})
PROFILER_PHASE = "profiler"  # run-wide rows: profiler settings and metrics unavailable on this machine
# The memory columns of the phase table: (label, metric, older metric names that mean the same).
MEMORY_COLUMNS = (
    ("RSS peak MB", "rss_peak_mb", ("peak_rss_mb",)),
    ("CUDA alloc MB", "cuda_max_allocated_mb", ("cuda_peak_allocated_mb",)),
    ("GPU mem MB", "gpu_mem_peak_mb", ()),
    ("GPU util %", "gpu_util_mean_pct", ("gpu_utilization_pct",)),
)
_MEAN_METRICS = frozenset({"gpu_util_mean_pct", "rss_mean_mb", "gpu_mem_mean_mb"})


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def _read_json_or_none(path) -> Any:
    try:
        return read_json(path) if path.exists() else None
    except (OSError, ValueError):
        return None


# --- pieces ------------------------------------------------------------------------------------------

def _steps_text(steps: list[int]) -> str:
    """``[50, 100, 150, 200]`` → "50, 100, …, 200"; a few steps are listed whole."""
    return ", ".join(map(str, steps)) if len(steps) <= 4 else f"{steps[0]}, {steps[1]}, …, {steps[-1]}"


def _eval_summary(rows: list[dict], status: dict) -> tuple[dict | None, int | None]:
    by_step: dict[int, dict] = {}
    best_rows: dict[int, Any] = {}
    degenerate: dict[int, float] = {}
    for row in rows:
        if row.get("phase") != "eval" or not isinstance(row.get("step"), int):
            continue
        if row.get("metric") == "best_step":
            best_rows[row["step"]] = row.get("value")
        elif row.get("metric") == "degenerate_share" and _number(row.get("value")) is not None:
            degenerate[row["step"]] = _number(row.get("value"))
        elif row.get("metric") in EVAL_METRICS:
            by_step.setdefault(row["step"], {})[row["metric"]] = _number(row.get("value"))
    if not by_step:
        return None, status.get("best_step")
    steps = sorted(by_step)

    def entry(step: int) -> dict:
        return {"step": step, **{m: by_step[step].get(m) for m in EVAL_METRICS}}

    best = status.get("best_step")
    if best not in by_step and best_rows:
        best = best_rows[max(best_rows)]
    if best not in by_step:
        scored = [s for s in steps if by_step[s].get("rouge1") is not None]
        best = max(scored, key=lambda s: (by_step[s]["rouge1"], -s)) if scored else None
    # Where most generations are empty or loops, ROUGE scores nothing the model wrote: the summary says so.
    return ({"steps": steps, "first": entry(steps[0]), "best": entry(best) if best is not None else None,
             "last": entry(steps[-1]), "degenerate_share": {step: degenerate[step] for step in sorted(degenerate)},
             "degenerate_steps": [step for step in sorted(degenerate) if degenerate[step] > MAX_SHARE]}, best)


def _benchmark_summary(rows: list[dict]) -> dict:
    names: list[str] = []
    by_step: dict[int, dict] = {}
    for row in rows:
        if row.get("phase") != "benchmark":
            continue
        record = row.get("benchmark") if isinstance(row.get("benchmark"), dict) else {}
        name, _, metric = str(row.get("metric", "")).rpartition("/")
        name = record.get("name") or name
        if name not in names:
            names.append(name)
        cell = by_step.setdefault(row.get("step"), {}).setdefault(name, {})
        value = _number(row.get("value") if row.get("value") is not None else record.get("score"))
        if metric == "score":
            cell.update({"score": value, "stderr": _number(row.get("stderr")),
                         "n": row.get("n") if row.get("n") is not None else record.get("n_items", record.get("n")),
                         "metric": record.get("metric")})
        elif metric in CONTINUOUS:  # bits_per_byte, p_correct
            cell.update({metric: value, f"{metric}_stderr": _number(row.get("stderr"))})
    return {"names": names, "rows": [{"step": s, "scores": by_step[s]}
                                     for s in sorted(by_step, key=lambda s: (s is None, s or 0))]}


def _params(rows: list[dict]) -> dict | None:
    setup = {r.get("metric"): r.get("value") for r in rows if r.get("phase") == "setup"}
    if not any(k in setup for k in ("trainable_params", "total_params", "trainable_percent")):
        return None
    return {"trainable": setup.get("trainable_params"), "total": setup.get("total_params"),
            "percent": setup.get("trainable_percent")}


def _phase_summary(rows: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """Per phase name: summed self/total seconds, max of peaks, sample-weighted means, unavailable."""
    run_unavailable: dict[str, str] = {}
    phases: dict[str, dict] = {}
    has_self_time = any(r.get("metric") == "phase_total_seconds" for r in rows)
    for index, row in enumerate(rows):
        name, metric, value = row.get("phase"), row.get("metric"), row.get("value")
        if name == PROFILER_PHASE:
            if row.get("unavailable") is not None:
                run_unavailable[metric] = str(row["unavailable"])
            continue
        if name in NON_PROFILE_PHASES or not isinstance(name, str) or not isinstance(metric, str):
            continue
        p = phases.setdefault(name, {"name": name, "parent": row.get("parent"), "count": 0,
                                     "self_seconds": 0.0, "total_seconds": 0.0, "peaks": {},
                                     "unavailable": {}, "_order": None, "_weights": {}})
        if row.get("unavailable") is not None:
            p["unavailable"][metric] = str(row["unavailable"])
            continue
        number = _number(value)
        if number is None:
            continue
        if metric == "phase_seconds":
            p["count"] += 1
            p["self_seconds"] += number
            if not has_self_time:  # an older harness: phase_seconds was the inclusive time
                p["total_seconds"] += number
        elif metric == "phase_total_seconds":
            p["total_seconds"] += number
        elif metric in _MEAN_METRICS:  # a mean over all occurrences, weighted by their samples
            weight = _number(row.get("samples")) or 1.0
            total, n = p["_weights"].get(metric, (0.0, 0.0))
            p["_weights"][metric] = (total + number * weight, n + weight)
        else:
            p["peaks"][metric] = max(p["peaks"].get(metric, number), number)
        if metric in ("phase_seconds", "phase_total_seconds"):
            # when it started: (attempt, row time - its inclusive seconds); rows come at a phase's end
            t = _number(row.get("time"))
            start = (row.get("attempt") or 1, (t - number) if t is not None else math.inf, index)
            if metric == "phase_total_seconds" or not has_self_time:
                p["_order"] = start if p["_order"] is None else min(p["_order"], start)
    for p in phases.values():
        for metric, (total, n) in p.pop("_weights").items():
            p["peaks"][metric] = total / n if n else None
        if p["_order"] is None:
            p["_order"] = (math.inf, math.inf, math.inf)
    # a tree in pipeline order: top-level phases by start, each followed by the phases nested in it
    children: dict[str | None, list[dict]] = {}
    for p in phases.values():
        parent = p["parent"] if p["parent"] in phases and p["parent"] != p["name"] else None
        children.setdefault(parent, []).append(p)
    ordered: list[dict] = []

    def walk(parent: str | None, depth: int) -> None:
        for p in sorted(children.get(parent, []), key=lambda p: p["_order"]):
            if any(q is p for q in ordered):
                continue
            p["depth"] = depth
            ordered.append(p)
            walk(p["name"], depth + 1)

    walk(None, 0)
    for p in phases.values():  # a parent cycle (never written by the profiler): list them flat
        if not any(q is p for q in ordered):
            p["depth"] = 0
            ordered.append(p)
    for p in ordered:
        p.pop("_order")
    return ordered, run_unavailable


def _times(run: RunDir, status: dict, rows: list[dict]) -> dict:
    started, finished = _number(status.get("started")), _number(status.get("finished"))
    wall = elapsed = None
    if finished is not None and started is not None and finished >= started and status.get("state") in (
            COMPLETED, FAILED):
        wall = finished - started
    elif started is not None:
        # not finished: running, or killed (the last row the latest attempt wrote bounds its life)
        attempt = status.get("attempts")
        times = [t for r in rows if r.get("attempt") == attempt and (t := _number(r.get("time"))) is not None]
        if status.get("state") == RUNNING and run.state() == RUNNING:
            elapsed = max(time.time() - started, 0.0)
        elif times:
            elapsed = max(times)
    return {"wall_seconds": wall, "elapsed_seconds": elapsed}


# --- the summary ---------------------------------------------------------------------------------------

def summarize(run: RunDir) -> dict:
    """Read ``run`` into the summary dict described in the module docstring (JSON-serialisable)."""
    config = _read_json_or_none(run.config_path) or {}
    status = _read_json_or_none(run.status_path) or {}
    rows = latest_metrics(run.metrics())
    training = config.get("training") if isinstance(config.get("training"), dict) else {}
    evaluation, best_step = _eval_summary(rows, status)
    train_steps = [r["step"] for r in rows if r.get("phase") == "train" and isinstance(r.get("step"), int)]
    phases, unavailable = _phase_summary(rows)
    phase_sum = sum(p["self_seconds"] for p in phases)
    times = _times(run, status, rows)
    other = None
    if times["wall_seconds"] is not None and phases and times["wall_seconds"] - phase_sum > 0.0005:
        other = times["wall_seconds"] - phase_sum
    error = status.get("error") if status.get("state") == FAILED else None
    return {
        "run_dir": str(run.path), "run_id": run.path.name,
        "method": config.get("method"), "suite": config.get("suite"), "scale": config.get("scale"),
        "seed": config.get("seed"), "max_steps": training.get("max_steps"),
        "state": run.state(), "attempts": status.get("attempts"), "host": status.get("host"),
        "started": status.get("started"), "finished": status.get("finished") if times["wall_seconds"] is not None
        else None, "error": error,
        "last_step": max(train_steps) if train_steps else None,
        "params": _params(rows), "best_step": best_step, "eval": evaluation,
        "benchmarks": _benchmark_summary(rows),
        "phases": phases, "unavailable": unavailable,
        **times, "phase_seconds_sum": phase_sum, "other_seconds": other,
    }


# --- text -----------------------------------------------------------------------------------------------

def _fmt(value: Any, spec: str = ".4f") -> str:
    number = _number(value)
    return "-" if number is None else format(number, spec)


def _count(n: Any) -> str:
    n = _number(n)
    if n is None:
        return "-"
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def _duration(seconds: Any) -> str:
    s = _number(seconds)
    if s is None:
        return "-"
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{s % 60:04.1f}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m{int(s % 60):02d}s"


def _table(header: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for r in [header, *rows]:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def _first_line(text: str, limit: int = 100) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 3] + "..."


def format_summary(summary: dict) -> str:
    """A fixed-width text block (about 25-40 lines for a normal run) of a :func:`summarize` dict."""
    s = summary
    lines = []
    what = f"{s.get('method') or '?'} on {s.get('suite') or '?'}"
    details = [f"scale {s['scale']}" if s.get("scale") else None,
               f"seed {s['seed']}" if s.get("seed") is not None else None, s.get("run_id")]
    lines.append(f"run     {what} ({', '.join(d for d in details if d)})")
    state = str(s.get("state"))
    if (s.get("attempts") or 0) > 1:
        state += f", {s['attempts']} attempts"
    if s.get("last_step") is not None:
        state += f", last step {s['last_step']}" + (f" of {s['max_steps']}" if s.get("max_steps") else "")
    lines.append(f"state   {state}")
    if s.get("error"):
        lines.append(f"error   {_first_line(s['error'])}")
    lines.append(f"dir     {s.get('run_dir')}")
    if s.get("params"):
        p = s["params"]
        lines.append(f"params  {_count(p.get('trainable'))} trainable of {_count(p.get('total'))} "
                     f"({_fmt(p.get('percent'), '.3f')}%)")

    ev = s.get("eval")
    lines.append("")
    if ev:
        labels: dict[int, list[str]] = {}
        for which in ("first", "best", "last"):
            if ev.get(which):
                labels.setdefault(ev[which]["step"], []).append(which)
        entries = {e["step"]: e for e in (ev.get("first"), ev.get("best"), ev.get("last")) if e}
        table = [["/".join(labels[step]), str(step), *(_fmt(entries[step].get(m)) for m in EVAL_METRICS)]
                 for step in sorted(entries)]
        lines.append(f"validation ({len(ev.get('steps', []))} evaluations; best by ROUGE-1)")
        lines += _table(["", "step", "ROUGE-1", "ROUGE-2", "ROUGE-L", "loss", "bits/byte"], table)
        bad = ev.get("degenerate_steps") or []
        if bad:
            shares = ev.get("degenerate_share") or {}
            lines.append(f"  degenerate: at {len(bad)} of {len(ev.get('steps', []))} evaluations (steps "
                         f"{_steps_text(bad)}) over half of the generations are empty or loops (up to "
                         f"{_fmt(100 * max(shares.get(b, 0.0) for b in bad), '.0f')}%):")
            lines.append("  ROUGE there scores next to nothing the model wrote; eval loss and bits/byte still "
                         "measure it")
    else:
        lines.append("validation  none recorded")

    bench = s.get("benchmarks") or {}
    if bench.get("rows"):
        names = bench["names"]

        def cell(entry: dict | None, key: str, spec: str) -> str:
            if not entry or entry.get(key) is None:
                return "-"
            se = entry.get("stderr" if key == "score" else f"{key}_stderr")
            return _fmt(entry.get(key), spec) + (f"±{_fmt(se, spec)}" if se is not None else "")

        tables = [("score", ".3f", "score ± standard error per checkpoint step"),
                  ("bits_per_byte", ".3f", "bits per byte of the reference answer (lower is better)"),
                  ("p_correct", ".3f", "probability on the correct choice")]
        for key, spec, title in tables:
            shown = [n for n in names if any((r["scores"].get(n) or {}).get(key) is not None for r in bench["rows"])]
            if not shown:
                continue
            table = []
            for r in bench["rows"]:
                step = f"{r['step']} (best)" if r["step"] == s.get("best_step") and len(bench["rows"]) > 1 else str(
                    r["step"])
                table.append([step, *(cell(r["scores"].get(n), key, spec) for n in shown)])
            if key == "score":
                ns = {n: next((r["scores"][n].get("n") for r in bench["rows"] if r["scores"].get(n)), None)
                      for n in shown}
                title += " (n: " + ", ".join(f"{n} {ns[n]}" for n in shown if ns[n] is not None) + ")"
            lines += ["", f"benchmarks: {title}"]
            lines += _table(["step", *shown], table)
    else:
        lines += ["", "benchmarks  none recorded"]

    phases = s.get("phases") or []
    wall, elapsed = s.get("wall_seconds"), s.get("elapsed_seconds")
    lines.append("")
    if phases:
        run_unavailable = s.get("unavailable") or {}
        columns, notes = [], []
        for label, metric, older in MEMORY_COLUMNS:
            names = (metric, *older)
            have = any(any(m in p["peaks"] for m in names) for p in phases)
            missing_everywhere = all(metric in p["unavailable"] for p in phases)
            if not have and (metric in run_unavailable or missing_everywhere):
                reason = run_unavailable.get(metric) or next(iter(p["unavailable"][metric] for p in phases))
                notes.append(f"{label.rsplit(' ', 1)[0]}: n/a ({reason})")
            elif have or any(metric in p["unavailable"] for p in phases):
                columns.append((label, names, metric))
        basis = wall if wall is not None else None
        table = []
        for p in phases:
            share = f"{100 * p['self_seconds'] / basis:.0f}%" if basis else "-"
            row = ["  " * p.get("depth", 0) + p["name"] + (f" x{p['count']}" if p.get("count", 1) > 1 else ""),
                   f"{p['self_seconds']:.1f}", share]
            for label, names, metric in columns:
                value = next((p["peaks"][m] for m in names if p["peaks"].get(m) is not None), None)
                if value is None and metric in p["unavailable"]:
                    row.append("n/a")
                    notes.append(f"{p['name']} {label.rsplit(' ', 1)[0]}: n/a ({p['unavailable'][metric]})")
                else:
                    row.append(_fmt(value, ".0f"))
            table.append(row)
        if s.get("other_seconds") is not None:
            table.append(["other (in no phase)", f"{s['other_seconds']:.1f}",
                          f"{100 * s['other_seconds'] / wall:.0f}%" if wall else "-", *["" for _ in columns]])
        lines.append("time and memory per phase (self seconds: nested phases excluded)")
        lines += _table(["phase", "self s", "%wall", *(c[0] for c in columns)], table)
        lines += [f"  {n}" for n in dict.fromkeys(notes)]
    else:
        lines.append("phases  none recorded")
    if wall is not None:
        lines.append(f"wall    {_duration(wall)} (latest attempt; phases {_duration(s.get('phase_seconds_sum'))})")
    elif elapsed is not None:
        how = "so far" if str(s.get("state")).startswith("running") else "until its last row"
        lines.append(f"wall    {_duration(elapsed)} {how} (latest attempt; not finished)")
    return "\n".join(lines)
