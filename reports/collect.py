"""Run directories → the values the tables and figures show. Reports read run directories only.

A needed run (:mod:`reports.spec`) is found by its config: the run whose ``config.json`` equals the
config ``harness run`` would resolve, up to ``training.precision`` (resolved per machine, so a run
made on a bf16 machine still counts on an fp32 one) and up to fields added since (filled by their
defaults). Only completed runs count; a run resumed after
a crash counts its latest attempt per (step, metric) (:func:`harness.runstore.latest_metrics`).

A row that should bear no claims says why (:func:`degenerate_reason`): more than half of what it trained on
(pseudo-labels) or of what it generates at validation is degenerate (:mod:`harness.engine.degeneracy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from harness.io import read_json, read_jsonl
from harness.runstore import RunDir, find_runs, latest_metrics
from harness.summary import summarize

from reports.spec import NeededRun

DEGENERATE = "degenerate_share"  # the validation metric: share of generations that are empty or loops


def _comparable(config: dict) -> dict:
    training = {k: v for k, v in config.get("training", {}).items() if k != "precision"}
    return {**config, "training": training}


def _normalised(run: RunDir) -> dict | None:
    """The run's config with fields added since it ran filled by their defaults (so a run made before a
    new option existed still matches, when the option's default is what the spec asks for)."""
    from harness.config import ConfigError, config_from_dict

    try:
        return _comparable(config_from_dict(read_json(run.config_path)).to_dict())
    except (ConfigError, TypeError, ValueError, KeyError):
        return None


@dataclass
class Found:
    need: NeededRun
    run: RunDir | None  # None: missing (or not completed)
    state: str = "missing"


def find(needs: list[NeededRun], results: str | Path | None = None) -> list[Found]:
    """Each needed run's completed run directory under ``results`` (or None)."""
    by_key: dict[tuple, list[tuple[RunDir, dict | None]]] = {}
    for run in find_runs(results):
        try:
            config = read_json(run.config_path)
        except (OSError, ValueError):
            continue
        key = (config.get("method"), config.get("suite"), config.get("scale"), config.get("seed"))
        by_key.setdefault(key, []).append((run, _normalised(run)))  # normalised once per run, not per need
    out = []
    for need in needs:
        wanted = _comparable(need.config.to_dict())
        candidates = by_key.get((need.config.method, need.config.suite, need.config.scale, need.config.seed), [])
        match = [run for run, config in candidates if config == wanted]
        done = [r for r in match if r.is_completed()]
        if done:
            out.append(Found(need, done[0], "completed"))
        else:
            out.append(Found(need, None, match[0].state() if match else "missing"))
    return out


def run_values(run: RunDir) -> dict:
    """The numbers a table cell can show for one run (None where the run has no such value)."""
    summary = summarize(run)
    rows = latest_metrics(run.metrics())
    evals = sorted({r["step"] for r in rows if r.get("phase") == "eval" and r.get("metric") == "rouge1"})
    at = {(r["step"], r["metric"]): r.get("value") for r in rows if r.get("phase") == "eval"}
    last = evals[-1] if evals else None
    phases = {p["name"]: p for p in summary["phases"]}
    training = phases.get("training", {}).get("peaks", {})
    # Memory of the fine-tuning itself (validation inside it included), as the paper's Table 5 measures it; the
    # benchmarks after it (lm-eval, long generations) would otherwise set every method's peak alike.
    rss = training.get("rss_peak_mb")
    steps = summary.get("max_steps") or 0
    seconds = summary.get("wall_seconds")
    for name in ("build_models", "benchmarks"):  # building the family and scoring benchmarks are not training cost
        if seconds is not None:
            seconds -= phases.get(name, {}).get("self_seconds", 0.0)
    # Labels another run wrote into the cache cost this run nothing, but the method's cost includes them (Figure 2c
    # counts labelling): the seconds the labelling took when it was made count here as well.
    labels = _labels_report(run)
    if seconds is not None and labels and labels.get("cached") and labels.get("labelling_seconds"):
        seconds += labels["labelling_seconds"]
    step_seconds = [r["value"] for r in rows if r.get("phase") == "train" and r.get("metric") == "step_seconds"]
    bench = summary.get("benchmarks") or {}
    best = summary.get("best_step")
    bench_rows = bench.get("rows", [])
    config, status = read_json(run.config_path), run.status() or {}
    best_row = next((r for r in bench_rows if r["step"] == best), bench_rows[-1] if bench_rows else None)
    at_best = best_row["scores"] if best_row else {}
    label_counts = pseudo_label_counts(labels)
    return {
        "step": last,
        "rouge1": at.get((last, "rouge1")), "rouge2": at.get((last, "rouge2")), "rougeL": at.get((last, "rougeL")),
        "eval_loss": at.get((last, "eval_loss")), "eval_bits_per_byte": at.get((last, "eval_bits_per_byte")),
        # metric → [(step, value)]: validation metrics at each evaluation, benchmark scores at each checkpoint
        "curves": {**{m: [(s, at.get((s, m))) for s in evals]
                      for m in ("rouge1", "rouge2", "rougeL", "eval_loss", "eval_bits_per_byte", DEGENERATE)},
                   **{name: [(r["step"], (r["scores"].get(name) or {}).get("score")) for r in bench_rows
                             if isinstance(r["step"], int)]
                      for name in bench.get("names", [])}},
        "trainable_percent": (summary.get("params") or {}).get("percent"),
        "gpu_util_mean": training.get("gpu_util_mean_pct"),
        "gpu_mem_gb": None if training.get("gpu_mem_mean_mb") is None else training["gpu_mem_mean_mb"] / 1024,
        "rss_peak_gb": None if not rss else rss / 1024,
        "minutes_per_1k": None if seconds is None or not steps else seconds / steps * 1000 / 60,
        # The cost per step split for an interval (reports.stats.cost_ratio): each training step's own seconds,
        # and the rest of the run's cost (labels, loading, validation) spread over its steps.
        "step_seconds": step_seconds,
        "fixed_seconds_per_step": (None if seconds is None or not steps or not step_seconds else
                                   max(0.0, seconds - sum(step_seconds)) / steps),
        # the share of its threads' time the run's process got (None: run made before it was recorded)
        "cpu_share": (status.get("profile") or {}).get("cpu_share"),
        # how many runs its process had started before it (0: a process of its own; None: not recorded)
        "runs_before_in_process": status.get("runs_before_in_process"),
        "humaneval": (at_best.get("humaneval") or {}).get("score"),
        "humaneval_bits_per_byte": (at_best.get("humaneval") or {}).get("bits_per_byte"),
        "precision": (config.get("training") or {}).get("precision"),
        "suite": summary.get("suite"),
        "benchmarks": at_best,  # name → {"score", "stderr", "n", "bits_per_byte", "p_correct", ...}
        "benchmarks_by_step": {r["step"]: r["scores"] for r in bench_rows if isinstance(r["step"], int)},
        "checkpoint_steps": list((config.get("training") or {}).get("checkpoint_steps") or []),
        "trained": summary.get("last_step") is not None,  # False: evaluated as is (vanilla), benchmarks at step 0
        "benchmark_step": best_row["step"] if best_row else None,  # the step "benchmarks" was scored at
        # where the per-item samples are (reports.render pairs two rows' items within the same suite and seed)
        "run_dir": str(run.path), "seed": config.get("seed"),
        # Degeneracy (see degenerate_reason). Pseudo-labels: counts as the run's prepare.json reports them (None:
        # the method writes none); the shares are of the labels written, None where the run did not count.
        "labels": label_counts,
        **{f"labels_{name}_share": _share(label_counts, name)
           for name in ("empty", "ended", "degenerate", "identical")},
        # validation generations that are empty or loops, at the last evaluation and at the best step (by ROUGE-1)
        "best_step": best,
        "generations_degenerate_share": generations_degenerate_share(run, last, at),
        "generations_degenerate_share_best": generations_degenerate_share(run, best, at),
    }


def _labels_report(run: RunDir) -> dict | None:
    """The run's pseudo-label report (methods.pseudolabels.pseudo_label) from its prepare.json; None without one."""
    path = run.path / "prepare.json"
    return (read_json(path) if path.exists() else {}).get("pseudo_labels")


def pseudo_label_counts(report: dict | None) -> dict | None:
    """``{"n", "empty", "ended", "degenerate", "identical", "most_common"}`` of a run's pseudo-labels, from its
    label report (:func:`_labels_report`; a run from before a count was reported has None there); None for runs
    without labels."""
    if not report:
        return None
    return {"n": report.get("n_labelled"), "empty": report.get("empty_labels"), "ended": report.get("ended_labels"),
            "degenerate": report.get("degenerate_labels"), "identical": report.get("identical_labels"),
            "most_common": report.get("most_common_label")}


def _share(labels: dict | None, name: str) -> float | None:
    if not labels or not labels.get("n") or labels.get(name) is None:
        return None
    return labels[name] / labels["n"]


def generations_degenerate_share(run: RunDir, step: int | None, logged: dict) -> float | None:
    """The share of validation generations at ``step`` that are degenerate: the logged metric, or for a run made
    before it was logged, measured on the run's samples of that step (None: neither is there, or the run's
    validation is teacher-forced)."""
    if step is None:
        return None
    if (step, DEGENERATE) in logged:
        return logged[(step, DEGENERATE)]
    if (read_json(run.config_path).get("eval") or {}).get("rouge_mode", "generate") != "generate":
        return None
    items = item_values(run, step, "degenerate")
    return sum(items.values()) / len(items) if items else None


def degenerate_reason(run_value: dict) -> str | None:
    """Why a row (:func:`run_values`) should bear no claims, in a few words, or None when it may.

    A row bears none when more than half of its pseudo-labels are empty, degenerate (empty or a loop) or one
    same text (the labeller answered nothing, or the same few words to every prompt: the target learned
    that, not the task), or when more than half of its validation generations are degenerate at its last
    evaluation or at its best step. The reason names which: degenerate labels void every claim on the row (its
    training had no task in it); degenerate generations void what is read from generations (ROUGE, benchmark
    accuracy), while teacher-forced numbers (eval loss, bits per byte) still measure the model."""
    from harness.engine.degeneracy import MAX_SHARE, no_answer_reason

    if reason := no_answer_reason(run_value.get("labels") or {}):
        return reason
    for share, step in ((run_value.get("generations_degenerate_share"), run_value.get("step")),
                        (run_value.get("generations_degenerate_share_best"), run_value.get("best_step"))):
        if share is not None and share > MAX_SHARE:
            return f"{share:.0%} of validation generations degenerate at step {step}"
    return None


VALIDATION_ROUGE = ("rouge1", "rouge2", "rougeL")


def item_values(run: RunDir, step: int, metric: str) -> dict[str, float] | None:
    """One run's per-item values at ``step``, keyed by item id; None where the run kept no samples for them.

    ``metric`` is named as in metrics.jsonl:

    * ``rouge1`` / ``rouge2`` / ``rougeL``: each validation item's ROUGE F1, recomputed from
      ``samples/validation-step-<step>.jsonl`` with the run's own ``eval.rouge_tokenizer`` exactly as
      :func:`harness.engine.validation.rouge_f1` scores it, so their mean is the run's logged value at that step.
      A ``teacher-forced`` run has none: its ROUGE compared decoded inputs, which the samples do not keep.
    * ``<benchmark>/score``: 1 for a correct (passed) item, 0 otherwise; HumanEval's several samples of a
      task are averaged per task (unbiased pass@1). Their mean is the logged score.
    * ``<benchmark>/bits_per_byte``: each item's ``reference_bits_per_byte``. Their plain mean is not the
      logged value, which weighs each item by its reference's bytes.
    * ``eval_bits_per_byte``: each validation reference's bits per byte under the model (runs made before the
      samples kept ``reference_bits`` have none). Likewise byte-weighted in the logged value.
    * ``degenerate``: 1 for a validation generation that is empty or a loop
      (:func:`harness.engine.degeneracy.is_degenerate`), else 0; their mean is the logged ``degenerate_share``.
    """
    if metric in (*VALIDATION_ROUGE, "eval_bits_per_byte", "degenerate"):
        path = run.samples_dir / f"validation-step-{step}.jsonl"
    else:
        benchmark, _, name = metric.rpartition("/")
        if not benchmark or name not in ("score", "bits_per_byte"):
            return None
        path = run.samples_dir / f"benchmarks-step-{step}" / f"{benchmark}.jsonl"
    if not path.exists():
        return None
    # Keyed by both files' state: a samples file appended to since (a resumed run), or a changed config (its
    # ROUGE settings), is read afresh.
    versions = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in (path, run.config_path))
    return _item_values(str(run.path), str(path), metric, versions)


@lru_cache(maxsize=512)
def _item_values(run_path: str, path: str, metric: str, _versions: tuple) -> dict[str, float] | None:
    """:func:`item_values` of one samples file, computed once per report: the claims of several tables and
    figures pair the same runs at the same steps, and re-scoring ROUGE for each is the report's slowest part."""
    run = RunDir(Path(run_path))
    if metric in VALIDATION_ROUGE:
        return _validation_rouge(run, Path(path), metric)
    if metric in ("degenerate", "eval_bits_per_byte"):  # a step evaluated twice: the later row of an item wins
        rows = {str(row["id"]): row for row in read_jsonl(Path(path))}
    if metric == "degenerate":
        from harness.engine.degeneracy import is_degenerate

        return {item: float(is_degenerate(row["prediction"])) for item, row in rows.items()} or None
    if metric == "eval_bits_per_byte":
        return {item: row["reference_bits"] / row["reference_bytes"] for item, row in rows.items()
                if row.get("reference_bits") is not None and row.get("reference_bytes")} or None
    benchmark, _, name = metric.rpartition("/")

    def value(row: dict) -> float | None:
        if name == "score":  # HumanEval rows say "passed", the others "correct"
            return float(row["passed"] if "passed" in row else row["correct"])
        return row.get("reference_bits_per_byte")  # absent when the run had continuous metrics off

    id_field = _id_field(benchmark)
    per_item: dict[str, list[float]] = {}
    for row in read_jsonl(Path(path)):
        if (v := value(row)) is not None:
            per_item.setdefault(str(row[id_field]), []).append(float(v))
    return {item: sum(values) / len(values) for item, values in per_item.items()} or None


def _id_field(benchmark: str) -> str:
    """The row field naming an item of ``benchmark`` (its kind's ``id_field``: "task_id" for HumanEval)."""
    from harness.registry import BENCHMARK_KINDS, BENCHMARKS

    try:
        return BENCHMARK_KINDS.get(BENCHMARKS.get(benchmark).kind).id_field
    except KeyError:  # a benchmark no longer registered (RegistryError): its rows still name items by "id"
        return "id"


def _validation_rouge(run: RunDir, path: Path, metric: str) -> dict[str, float] | None:
    from harness.engine.validation import make_scorer

    evaluation = read_json(run.config_path).get("eval") or {}
    if evaluation.get("rouge_mode", "generate") != "generate":
        return None
    scorer = make_scorer(evaluation.get("rouge_tokenizer", "code"))
    # A resumed run may have evaluated a step twice (the file is appended to): the later row of an item wins.
    rows = {str(row["id"]): row for row in read_jsonl(path)}
    return {item: scorer.score(row["reference"], row["prediction"])[metric].fmeasure
            for item, row in rows.items()} or None
