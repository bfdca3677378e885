"""``harness eval`` (score any model on a suite) and ``harness score`` (score completions made elsewhere).

Importing this module registers ``add_parsers`` as the command group ``benchmarks``
(:func:`harness.registry.register_commands`; the ``harness.commands`` entry point names this module);
each command's function returns the process exit code (0 success, 2 bad input).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.io import atomic_write_json, atomic_write_text
from harness.registry import register_commands


def add_parsers(subparsers) -> None:
    """Add ``eval`` and ``score`` to the main CLI's subparsers."""
    p = subparsers.add_parser("eval", help="evaluate a model (and optional adapter) on a suite's benchmarks")
    p.add_argument("--model", required=True, help="a local Hugging Face model directory or a registered model name")
    p.add_argument("--adapter", type=Path, help="a PEFT adapter directory to load on top of the model")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--suite", help="code, math, specialized or general")
    which.add_argument("--benchmarks", help="comma-separated benchmark names (e.g. humaneval,mmlu-cs)")
    p.add_argument("--limit", type=int, help="score a fixed stratified subsample of N items per benchmark")
    p.add_argument("--seed", type=int, default=0, help="subsample (and few-shot) seed (default 0)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--choice-engine", "--mmlu-engine", dest="choice_engine", choices=("lm-eval", "direct"),
                   default="lm-eval", help="how multiple-choice kinds (MMLU) are scored: through lm-eval, or the "
                                           "direct batched log-likelihoods (same numbers)")
    p.add_argument("--fewshot", action="append", default=[], metavar="KIND=N",
                   help="shots for a benchmark kind, as eval.fewshot.KIND of a run: mmlu=5 (0-5), math=4 (Minerva), "
                        "gsm8k=8 (0-8); repeat it or separate by commas")
    p.add_argument("--option", action="append", default=[], metavar="KIND.NAME=VALUE",
                   help="an option of a benchmark kind, e.g. mmlu.shots_from=dev (needs hub access), "
                        "humaneval.samples=10; repeatable")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"), default="fp32",
                   help="autocast of every model call (default fp32); give a run's training precision to score its "
                        "exported model as the run did; auto: bf16 where this CPU runs it fast, fp16 on a GPU "
                        "without bf16, else fp32")
    p.add_argument("--no-continuous", action="store_true",
                   help="skip the bits-per-byte continuous metrics (one extra forward pass per item)")
    p.add_argument("--out", type=Path, help="directory for results.json and per-item <benchmark>.jsonl files")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=main_eval)

    p = subparsers.add_parser("score", help="score externally produced completions (HumanEval, MATH or MMLU rows)")
    p.add_argument("--benchmark", required=True, help="humaneval, math (= math-l5), math-500-l5, mmlu, mmlu-cs, ...")
    p.add_argument("--completions", required=True, type=Path, help="JSONL file, one row per completion")
    p.add_argument("--out", type=Path, help="write the per-item verdicts to this JSONL file")
    p.add_argument("--json", action="store_true", help="print one JSON object with the metric and counts")
    p.set_defaults(func=main_score)


# --- harness score -----------------------------------------------------------------------------

def read_completions(path: Path) -> list[dict]:
    """JSONL rows; a line that is not JSON is an error naming the line."""
    if not path.exists():
        raise FileNotFoundError(f"completions file {path} does not exist")
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not a JSON object ({err.msg})") from None
    return rows


def main_score(args: argparse.Namespace) -> int:
    from harness.registry import RegistryError

    from benchmarks.score import CompletionsError, score_completions

    try:
        report = score_completions(args.benchmark, read_completions(args.completions))
    except (CompletionsError, RegistryError, FileNotFoundError, ValueError) as err:
        print(f"harness score: error: {err}", file=sys.stderr)
        return 2
    per_item = report.pop("per_item")
    if args.out:
        atomic_write_text(args.out, "".join(json.dumps(r, sort_keys=True) + "\n" for r in per_item))
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        counts = f"{report['n_items']}/{report['n_total']} items" + (
            f", {report['n_samples']} samples" if "n_samples" in report else "")
        print(f"{report['benchmark']} {report['metric']} = {report['score']:.4f} ({counts})")
        for k, v in report.get("pass@k", {}).items():
            if k != "pass@1":
                print(f"  {k} = {v:.4f}")
        for group, g in report.get("per_group", {}).items():
            print(f"  {group}: {g['accuracy']:.4f} ({g['n']} items)")
    return 0


# --- harness eval ------------------------------------------------------------------------------

def suite_benchmark_names(suite: str) -> tuple[str, ...]:
    from harness.suites import suite_benchmarks

    return suite_benchmarks(suite)


def load_model_and_tokenizer(model_ref: str, adapter: Path | None = None):
    """A registered name, local HF directory, .gguf file or hub id (harness.models); then an optional adapter."""
    from harness import models

    resolved = models.resolve_model(model_ref)
    model, tokenizer = models.load_model(resolved), models.load_tokenizer(resolved)
    if adapter is not None:
        if not adapter.is_dir():
            raise FileNotFoundError(f"--adapter {adapter} is not a directory")
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    return model.eval(), tokenizer


def parse_fewshot(values: list[str]) -> dict[str, int]:
    """``["mmlu=5", "math=4,gsm8k=8"]`` → ``{"mmlu": 5, "math": 4, "gsm8k": 8}``."""
    out: dict[str, int] = {}
    for item in (part.strip() for value in values for part in value.split(",")):
        kind, _, shots = item.partition("=")
        if not item or not kind.strip() or not shots.strip().isdigit():
            raise ValueError(f"--fewshot {item!r}: expected KIND=N, e.g. mmlu=5")
        out[kind.strip()] = int(shots)
    return out


def parse_options(values: list[str]) -> dict[str, dict]:
    """``["humaneval.samples=10", "mmlu.shots_from=dev"]`` → ``{"humaneval": {"samples": 10}, ...}`` (YAML values)."""
    import yaml

    out: dict[str, dict] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        kind, dot, name = key.strip().partition(".")
        if not sep or not dot or not kind or not name:
            raise ValueError(f"--option {item!r}: expected KIND.NAME=VALUE, e.g. humaneval.samples=10")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out.setdefault(kind, {})[name] = value
    return out


def main_eval(args: argparse.Namespace) -> int:
    from harness.data.sources import DataUnavailableError
    from harness.engine.evaluation import evaluate_model
    from harness.config import ConfigError
    from harness.models import ModelUnavailableError
    from harness.precision import resolve_precision
    from harness.registry import RegistryError

    try:
        names = suite_benchmark_names(args.suite) if args.suite else tuple(
            b.strip() for b in args.benchmarks.split(",") if b.strip())
        fewshot, options = parse_fewshot(args.fewshot), parse_options(args.option)
        precision = resolve_precision(args.precision).value
        model, tokenizer = load_model_and_tokenizer(args.model, args.adapter)
        results = evaluate_model(model, tokenizer, names, limit=args.limit, subsample_seed=args.seed,
                                 batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                                 out_dir=args.out, choice_engine=args.choice_engine, fewshot=fewshot,
                                 options=options, continuous=not args.no_continuous, precision=precision)
    except (RegistryError, FileNotFoundError, ValueError, ModelUnavailableError, DataUnavailableError,
            ConfigError) as err:
        print(f"harness eval: error: {err}", file=sys.stderr)
        return 2
    report = {"model": args.model, "adapter": str(args.adapter) if args.adapter else None, "precision": precision,
              "suite": args.suite, "limit": args.limit, "results": {k: r.to_dict() for k, r in results.items()}}
    if args.out:
        atomic_write_json(args.out / "results.json", report)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        for name, r in results.items():
            print(format_result(name, r))
    return 0


def format_result(name: str, r) -> str:
    """One line per benchmark: the headline ± its standard error, then the continuous metrics."""
    def cell(entry: dict | None, digits: int) -> str:
        if not entry or entry.get("value") is None:
            return "n/a"
        se = entry.get("stderr")
        return f"{entry['value']:.{digits}f}" + (f" ± {se:.{digits}f}" if se is not None else "")

    sub = f", subsample seed {r.subsample['seed']}" if r.subsample else ""
    parts = [f"{name:18s} {r.metric:9s} {cell(r.metrics.get(r.metric), 4)}"]
    if "bits_per_byte" in r.metrics:
        parts.append(f"bits/byte {cell(r.metrics['bits_per_byte'], 3)}")
    if "p_correct" in r.metrics:
        parts.append(f"p(correct) {cell(r.metrics['p_correct'], 3)}")
    shots = r.protocol.get("fewshot") if r.protocol else 0
    return "  ".join(parts) + (f"  ({r.n_items}/{r.n_total} items{sub}, {shots}-shot, v{r.version}, {r.seconds:.1f} s)")


register_commands("benchmarks", add_parsers)
