"""Which of the paper's claims hold on our runs, each as a verdict a careful reviewer would sign.

A claim is a dict: ``claim`` (the paper's statement, with the paper's magnitude), ``evidence`` (our
numbers), and ``tests``: the statistical tests it rests on (:mod:`reports.stats`), each a comparison of
two rows with the side the claim needs ("above" 0: ours is higher; "within" a margin: equivalent).
:func:`finalize` corrects every test of the report as one family (Holm–Bonferroni) and turns them
into the verdict ``holds``:

- ``True``: every test is decided in the claim's favour (adjusted p < 0.05 and the interval on the
  claimed side of the boundary, or inside the margin for an equivalence);
- ``False``: a test is decided against it;
- ``None`` (undecided): the data cannot tell (``within_noise``), a run is missing, a run shared its
  machine (timings), or a row's outputs are degenerate (``undecided_because``).

``provisional`` marks a verdict whose rows have one training run each: the interval covers the items
scored, not the variance between training seeds. A few claims have no test (a memory ratio of single
runs, a ranking): their ``holds`` is the plain comparison and their evidence says that no interval
stands behind it.

Which claims a table bears on is its own module's business (``reports/tables/``); this module is the
machinery they share: the tests, the verdicts, and the claim shapes several tables and figures use.
"""

from __future__ import annotations

from pathlib import Path

from harness.runstore import RunDir

from reports import collect
from reports.collect import item_values
from reports.paper_numbers import lookup
from reports.stats import ALPHA, Comparison, Estimate, compare, cost_ratio, holm, mean_std, steps_to_reach

MISSING = "runs missing"
# A run whose process got less of its threads' CPU time than this shared the machine or was paused: its wall
# time says more about the other work than about the method.
MIN_CPU_SHARE = 0.8
COST_MARGIN = 0.15  # "costs about what LoRA costs": a ratio within 1 ± 15%

# The line heading report.md's claims section (reports.cli writes that section).
CLAIMS_HOW_TO_READ = (
    "How to read a verdict: **yes** / **no** mean the tests behind the claim are decided (Holm-corrected over "
    "every test in this section, family-wise level 5%); **undecided** means the data cannot tell (within noise), "
    "a run is missing, or a row is unfit to compare. Each test shows the difference Δ (the row the claim is "
    "about minus the other, over the items both scored, paired within each training seed) or a ratio, its 95% "
    "interval, its p-value and Holm-adjusted p. With one training run per row the interval covers the items "
    "only, and the verdict is marked *provisional*: the variance between training seeds was not sampled.")


# --- per-item values of a row's runs -------------------------------------------------------------

def items_by_run(runs: list[dict], metric: str, step_of) -> dict[tuple, dict[str, float]]:
    """``(suite, seed)`` → item id → value (:func:`reports.collect.item_values`) of ``runs`` at ``step_of(run)``.
    Several runs under one key (a row averaged over experts, Figure 7) are averaged per item; runs without
    per-item samples there are left out."""
    sums: dict[tuple, dict[str, list[float]]] = {}
    for run in runs:
        step = step_of(run)
        if run.get("run_dir") is None or step is None:
            continue
        values = item_values(RunDir(Path(run["run_dir"])), step, metric)
        for item, value in (values or {}).items():
            sums.setdefault((run.get("suite"), run.get("seed")), {}).setdefault(item, []).append(value)
    return {key: {item: sum(v) / len(v) for item, v in items.items()} for key, items in sums.items()}


def curves_by_run(runs: list[dict], metric: str) -> dict[tuple, dict[int, dict[str, float]]]:
    """``(suite, seed)`` → validation step → item id → value, at every step the runs evaluated."""
    steps = sorted({s for run in runs for s, v in run.get("curves", {}).get(metric, []) if v is not None})
    out: dict[tuple, dict[int, dict[str, float]]] = {}
    for step in steps:
        for key, items in items_by_run(runs, metric, lambda run, step=step: step).items():
            out.setdefault(key, {})[step] = items
    return out


def last_evaluation(run: dict) -> int | None:
    return run.get("step")


def benchmark_step(run: dict) -> int | None:
    return run.get("benchmark_step")


def checkpoint_step(index: int):
    """A run's step at its ``index``-th checkpoint (0 for a run that did not train; None past its last one)."""
    def step_of(run: dict) -> int | None:
        steps = run.get("checkpoint_steps") or []
        if index >= len(steps):
            return None
        return steps[index] if run.get("trained") else 0
    return step_of


# --- tests ------------------------------------------------------------------------------------------

def difference_test(label: str, comparison: Comparison | None, *, side: str = "above", digits: int = 4,
                    scale: float = 1.0) -> dict:
    """A test that ``comparison`` (a − b) lies ``side`` ("above" or "below") 0."""
    if comparison is None:
        return {"label": label, "kind": "difference", "side": side, "p": None, "text": "no per-item samples"}
    c = comparison
    return {"label": label, "kind": "difference", "side": side, "bound": 0.0, "p": c.p, "estimate": c.mean,
            "low": c.low, "high": c.high, "n_items": c.n_items, "n_runs": c.n_runs, "method": c.method,
            "differing": c.differing, "seeds_sampled": c.seeds_sampled, "digits": digits, "scale": scale}


def equivalence_test(label: str, comparison: Comparison | None, margin: float, *, digits: int = 4,
                     scale: float = 1.0, margin_text: str = "") -> dict:
    """Two one-sided tests (TOST) that ``comparison`` lies within ±``margin``: the p-value is the larger of the two
    one-sided p-values, so equivalence is decided where the 90% interval lies inside the margin."""
    if comparison is None or comparison.interval(0.9) is None:
        return {"label": label, "kind": "difference", "side": "within", "p": None,
                "text": "no per-item samples" if comparison is None else "one item: nothing to test"}
    c = comparison
    p = max(c.p_beyond(-margin, "above"), c.p_beyond(margin, "below"))
    return {"label": label, "kind": "difference", "side": "within", "bound": [-margin, margin], "p": p,
            "estimate": c.mean, "low": c.low, "high": c.high, "n_items": c.n_items, "n_runs": c.n_runs,
            "method": c.method + ", TOST", "differing": c.differing, "seeds_sampled": c.seeds_sampled,
            "digits": digits, "scale": scale, "margin_text": margin_text}


def estimate_test(label: str, estimate: Estimate | None, *, side: str, bound: float | tuple[float, float],
                  unit: str = "x", missing: str = "no per-step times") -> dict:
    """A test of a ratio (``unit`` "x"): above/below ``bound``, or "within" ``bound`` = (low, high)."""
    if estimate is None:
        return {"label": label, "kind": "ratio", "side": side, "p": None, "text": missing}
    e = estimate
    if side == "within":
        p = max(e.p_not_above(bound[0]), e.p_not_below(bound[1]))
    else:
        p = min(1.0, 2 * min(e.p_not_above(bound), e.p_not_below(bound)))
    return {"label": label, "kind": "ratio", "side": side, "bound": list(bound) if side == "within" else bound,
            "p": p, "estimate": e.value, "low": e.low, "high": e.high, "n_runs": e.n_runs, "method": e.method,
            "seeds_sampled": e.seeds_sampled, "unit": unit}


def decide(test: dict, alpha: float = ALPHA) -> bool | None:
    """One test's verdict from its Holm-adjusted p-value (``p_holm``) and interval."""
    if test.get("p") is None or test.get("low") is None:
        return None
    low, high, bound = test["low"], test["high"], test["bound"]
    if test["side"] == "within":
        if test["p_holm"] < alpha:
            return True
        return False if (low > bound[1] or high < bound[0]) else None
    if test["p_holm"] >= alpha:
        return None
    above, below = low > bound, high < bound
    if test["side"] == "above":
        return True if above else (False if below else None)
    return True if below else (False if above else None)


def signed(value: float, digits: int) -> str:
    return f"{value:+.{digits}f}"


def describe(test: dict) -> str:
    """``Pen2Sword − LoRA: Δ +0.0175 [95% CI +0.0085, +0.0266], p 0.0003 (Holm 0.004), paired t over items``."""
    if test.get("p") is None and "estimate" not in test:
        return f"{test['label']}: {test.get('text', 'nothing to test')}"
    if test["kind"] == "ratio":
        body = f"{test['estimate']:.2f}{test['unit']} [95% CI {test['low']:.2f}, {test['high']:.2f}]"
        if test["side"] == "within":
            body += f", margin {test['bound'][0]:.2f}–{test['bound'][1]:.2f}"
    else:
        d, s = test["digits"], test["scale"]
        if test.get("differing") == 0 or (test["low"] == test["high"] == test["estimate"] == 0):
            body = "no item differs"
        elif test["low"] is None:
            body = f"Δ {signed(test['estimate'] * s, d)} (one item)"
        else:
            body = (f"Δ {signed(test['estimate'] * s, d)} [95% CI {signed(test['low'] * s, d)}, "
                    f"{signed(test['high'] * s, d)}]")
        if test["side"] == "within":
            body += f", margin ±{test['bound'][1] * s:.{d}f}{test.get('margin_text', '')}"
        items = f"{test['n_items']} item{'s' * (test['n_items'] != 1)}"
        body += f" over {items}" + (f" × {test['n_runs']} runs" if test["n_runs"] > 1 else "")
    if test.get("p") is not None:
        body += f", p {test['p']:.2g}" + (f" (Holm {test['p_holm']:.2g})" if "p_holm" in test else "")
    return f"{test['label']}: {body}, {test['method']}"


def finalize(claims: list[dict], alpha: float = ALPHA) -> list[dict]:
    """The claims with their verdicts: every test of every claim corrected as one family (Holm), each claim
    holding where all its tests hold, failing where one fails, undecided otherwise; the tests' text appended to
    the evidence. Claims without tests keep their plain ``holds`` (None where ``within_noise``)."""
    tested = [t for c in claims for t in c.get("tests", ()) if t.get("p") is not None]
    for test, adjusted in zip(tested, holm([t["p"] for t in tested])):
        test["p_holm"] = adjusted
    out = []
    for claim in claims:
        claim = dict(claim)
        tests = claim.get("tests") or []
        if tests:
            verdicts = [decide(t, alpha) for t in tests]
            holds = (True if all(v is True for v in verdicts) else
                     False if any(v is False for v in verdicts) else None)
            claim["evidence"] = "; ".join([claim["evidence"], *(describe(t) for t in tests)])
            claim["provisional"] = any(not t.get("seeds_sampled", True) for t in tests if t.get("p") is not None)
            if holds is None and not claim.get("undecided_because") and all(t.get("p") is None for t in tests):
                # Nothing could be tested (no per-item samples, one item): that is no finding of noise.
                claim["undecided_because"] = tests[0].get("text", "nothing to test")
            claim["within_noise"] = holds is None and not claim.get("undecided_because")
            claim["holds"] = None if claim.get("undecided_because") else holds
        elif claim.get("within_noise") or claim.get("undecided_because"):
            claim["holds"] = None
        out.append(claim)
    return out


def verdict_text(claim: dict) -> str:
    """yes / no / undecided, with why where undecided and "provisional" where seeds were not sampled."""
    if claim.get("holds") is None:
        why = claim.get("undecided_because") or ("within noise" if claim.get("within_noise") else
                                                 "runs missing" if claim.get("evidence", "").startswith(MISSING)
                                                 else "")
        text = f"undecided ({why})" if why else "undecided"
    else:
        text = "yes" if claim["holds"] else "no"
    return text + (" (provisional: 1 training run per row)" if claim.get("provisional") else "")


# --- helpers for the claims of the tables and figures (each table's own are in its module) --------

def runs_text(counts: dict[str, int]) -> str:
    """How many runs stand behind each compared row: "1 run each" or "runs: LoRA 2, Pen2Sword 1"."""
    if len(set(counts.values())) == 1:
        n = next(iter(counts.values()))
        return f"{n} run{'s' * (n != 1)} each"
    return "runs: " + ", ".join(f"{k} {v}" for k, v in counts.items())


def _degenerate(values: dict[str, list[dict]], *labels: str, reads_generations: bool = True) -> str | None:
    """Why one of these rows cannot bear a claim, or None: its pseudo-labels are degenerate (every claim), or, for
    a claim read from generations (``reads_generations``: ROUGE, a generated benchmark's accuracy), its validation
    generations are (a log-likelihood benchmark such as MMLU still measures the model)."""
    from harness.engine.degeneracy import no_answer_reason

    def why(run: dict) -> str | None:
        return collect.degenerate_reason(run) if reads_generations else no_answer_reason(run.get("labels") or {})

    reasons = [f"{label}: {reason}" for label in labels for run in values.get(label, []) if (reason := why(run))]
    return "degenerate row: " + "; ".join(dict.fromkeys(reasons)) if reasons else None


def reads_generations(benchmark: str) -> bool:
    """Whether ``benchmark``'s score is read from generated text (its kind generates until a stop) rather than
    from log-likelihoods of fixed choices."""
    from harness.registry import BENCHMARK_KINDS, BENCHMARKS

    return BENCHMARK_KINDS.get(BENCHMARKS.get(benchmark).kind).output_type == "generate_until"


def compared(values: dict[str, list[dict]], ours: str, base: str, metric: str, step_of,
             suites: tuple[str, ...] | None = None) -> Comparison | None:
    """``ours − base`` over their runs' items of ``metric`` at ``step_of(run)``."""
    def runs(label: str) -> list[dict]:
        return [v for v in values.get(label, []) if suites is None or v.get("suite") in suites]
    return compare(items_by_run(runs(ours), metric, step_of), items_by_run(runs(base), metric, step_of))


def tested_claim(claim: str, evidence: str, tests: list[dict], values: dict[str, list[dict]], *rows: str,
                 generated: bool = True) -> dict:
    """A tested claim on ``rows``, undecided where one of them is degenerate (``generated``: the claim reads
    generations, see :func:`_degenerate`)."""
    out = {"claim": claim, "holds": None, "evidence": evidence, "tests": tests}
    if reason := _degenerate(values, *rows, reads_generations=generated):
        out["undecided_because"] = reason
    return out


# --- costs -------------------------------------------------------------------------------------------

def timing_caveat(shares: dict[str, list[float | None]]) -> str | None:
    """Why the wall times of these rows (row → each run's CPU share) cannot be compared, or None if they can."""
    unknown = [row for row, values in shares.items() if any(v is None for v in values)]
    busy = {row: min(v for v in values if v is not None) for row, values in shares.items()
            if any(v is not None and v < MIN_CPU_SHARE for v in values)}
    if busy:
        return ("timings not comparable: " + ", ".join(f"{row}'s run got {share:.0%} of its threads' CPU time"
                                                       for row, share in busy.items())
                + " (other work ran beside it, or it was paused); rerun on an idle machine")
    if unknown:
        return (f"CPU share not recorded for {', '.join(unknown)} (runs made before it was): cannot tell whether "
                "other work slowed them; rerun to decide")
    return None


def memory_caveat(before: dict[str, list[int | None]]) -> str | None:
    """Why these rows' memory (row → each run's ``runs_before_in_process``) cannot be compared, or None if it can.
    A run that followed others in its process started with what they left behind: memory they freed that the
    allocator (malloc, or torch's CUDA cache) kept, so its peak is partly theirs."""
    shared = {row: max(v for v in values if v) for row, values in before.items() if any(v for v in values)}
    unknown = [row for row, values in before.items() if any(v is None for v in values)]
    if shared:
        return ("memory not comparable: " + ", ".join(f"{row}'s run followed {n} other run{'s' * (n != 1)} in its "
                                                      "process" for row, n in shared.items())
                + " (its peak includes what they left behind); rerun each in a process of its own (`harness run`, "
                  "or `harness reproduce`, which does)")
    if unknown:
        return (f"not recorded whether {', '.join(unknown)} ran in a process of its own (runs made before it was): "
                "cannot tell whether earlier runs' memory is in its peak; rerun to decide")
    return None


def ratio_claim(claim: str, ours: float | None, base: float | None, base_name: str, holds_if, runs: str,
                caveat: str | None = None) -> dict:
    """An untested claim on ours / base (one number per run, e.g. peak memory, so no spread to test against):
    ``holds_if(ratio)``, said to be untested; a ``caveat`` (:func:`timing_caveat`, :func:`memory_caveat`) leaves
    it undecided."""
    if ours is None or base is None:
        return {"claim": claim, "holds": None, "evidence": MISSING}
    if base == 0:
        return {"claim": claim, "holds": None, "evidence": f"{base_name}'s value is 0: no ratio; {runs}"}
    ratio = ours / base
    evidence = f"{ours:.3g} vs {base_name} {base:.3g}: {ratio:.2f}x; {runs}; no interval (one measurement per run)"
    if caveat is None:
        return {"claim": claim, "holds": holds_if(ratio), "evidence": evidence}
    return {"claim": claim, "holds": None, "evidence": f"{evidence}; {caveat}", "undecided_because": caveat}


def _cost_runs(runs: list[dict]) -> list[tuple[float, list[float]]]:
    """Each run's (fixed seconds per step, per-step seconds) for :func:`reports.stats.cost_ratio`."""
    return [(v["fixed_seconds_per_step"], v["step_seconds"]) for v in runs
            if v.get("step_seconds") and v.get("fixed_seconds_per_step") is not None]


def minutes_claim(claim: str, values: dict[str, list[dict]], ours: str, base: str, *, side: str) -> dict:
    """A cost claim on ours / base minutes per step: "within" 1 ± :data:`COST_MARGIN`, or "above" 1; with an
    interval from the runs' step times, undecided where a run shared its machine."""
    if not values.get(ours) or not values.get(base):
        return {"claim": claim, "holds": None, "evidence": MISSING}
    minutes = {k: mean_std([v.get("minutes_per_1k") for v in values[k]])[0] for k in (ours, base)}
    estimate = cost_ratio(_cost_runs(values[ours]), _cost_runs(values[base]))
    bound = (1 - COST_MARGIN, 1 + COST_MARGIN) if side == "within" else 1.0
    test = estimate_test(f"{ours} / {base} minutes per step", estimate, side=side, bound=bound)
    evidence = (", ".join(f"{k} {m:.1f}" if m is not None else f"{k} –" for k, m in minutes.items())
                + f" minutes per 1k steps; {runs_text({k: len(values[k]) for k in (ours, base)})}")
    out = {"claim": claim, "holds": None, "evidence": evidence, "tests": [test]}
    if caveat := timing_caveat({k: [v.get("cpu_share") for v in values[k]] for k in (ours, base)}):
        out["undecided_because"] = caveat
    return out


# --- figures -----------------------------------------------------------------------------------------

def mean_curve(runs: list[dict], metric: str = "rouge1") -> dict[int, float]:
    """Step → the mean over runs of ``metric`` (steps where no run has a value are left out)."""
    steps = sorted({s for v in runs for s, x in v["curves"].get(metric, []) if x is not None})
    means = {s: mean_std([dict(v["curves"].get(metric, [])).get(s) for v in runs])[0] for s in steps}
    return {s: m for s, m in means.items() if m is not None}


def _last_common_step(*curves: dict[int, float]) -> int | None:
    common = set.intersection(*(set(c) for c in curves)) if curves else set()
    return max(common) if common else None


def faster_claim(values: dict[str, list[dict]], base: str, ours: str, paper: str = "") -> dict:
    """``ours`` reaches ``base``'s best ROUGE-1 in fewer steps: the speed-up (base's best step / ours' first step at
    that level) with its interval from the per-item curves, tested above 1."""
    claim = f"{ours} reaches {base}'s best ROUGE-1 in fewer steps{paper}"
    base_curve, ours_curve = mean_curve(values.get(base) or []), mean_curve(values.get(ours) or [])
    if _last_common_step(base_curve, ours_curve) is None:
        return {"claim": claim, "holds": None, "evidence": MISSING}
    best_step = max(base_curve, key=lambda s: base_curve[s])
    reach = next((s for s in sorted(ours_curve) if ours_curve[s] >= base_curve[best_step]), None)
    evidence = (f"{base}'s best {base_curve[best_step]:.4f} at step {best_step}; {ours} reaches it at "
                + ("never" if reach is None else f"step {reach}")
                + f"; {runs_text({k: len(values.get(k) or []) for k in (base, ours)})}")
    estimate = steps_to_reach(curves_by_run(values.get(ours) or [], "rouge1"),
                              curves_by_run(values.get(base) or [], "rouge1"))
    test = estimate_test(f"speed-up of {ours} over {base}", estimate, side="above", bound=1.0, unit="×",
                         missing="no per-item samples")
    return tested_claim(claim, evidence, [test], values, base, ours)


def higher_claim(values: dict[str, list[dict]], base: str, ours: str, metric: str = "rouge1",
                 claim: str | None = None) -> dict:
    """``ours`` is higher than ``base`` at the last validation step both have, tested over the items."""
    claim = claim or f"{ours} has the higher ROUGE-1 than {base} at the same budget"
    ours_curve, base_curve = mean_curve(values.get(ours) or [], metric), mean_curve(values.get(base) or [], metric)
    step = _last_common_step(ours_curve, base_curve)
    if step is None:
        return {"claim": claim, "holds": None, "evidence": MISSING}
    test = difference_test(f"{ours} − {base}", compared(values, ours, base, metric, lambda run: step))
    evidence = (f"step {step}: {ours} {ours_curve[step]:.4f}, {base} {base_curve[step]:.4f}; "
                + runs_text({k: len(values.get(k) or []) for k in (ours, base)}))
    return tested_claim(claim, evidence, [test], values, ours, base)


def lower_bits_claim(values: dict[str, list[dict]], base: str = "LoRA", ours: str = "Pen2Sword") -> dict:
    """The continuous check beside ROUGE: ``ours``' validation bits per byte of the reference responses is below
    ``base``'s at the last common step, tested over the items where the runs kept each reference's bits (else
    untested). ROUGE at small scale can reward degenerate output; the likelihood of the references cannot be gamed
    that way, so degenerate generations do not void this claim."""
    claim = f"{ours} has the lower eval bits per byte than {base} at the same budget (not a claim of the paper)"
    base_curve = mean_curve(values.get(base) or [], "eval_bits_per_byte")
    ours_curve = mean_curve(values.get(ours) or [], "eval_bits_per_byte")
    common = set(base_curve) & set(ours_curve)
    if not common:
        return {"claim": claim, "holds": None, "evidence": MISSING}
    last, first = max(common), min(common)
    evidence = (f"step {last}: {ours} {ours_curve[last]:.4f}, {base} {base_curve[last]:.4f} (step {first}: "
                f"{ours_curve[first]:.4f}, {base_curve[first]:.4f}); "
                + runs_text({k: len(values.get(k) or []) for k in (ours, base)}))
    comparison = compared(values, ours, base, "eval_bits_per_byte", lambda run: last)
    if comparison is None:  # runs made before the samples kept each reference's bits
        return {"claim": claim, "holds": ours_curve[last] < base_curve[last],
                "evidence": f"{evidence}; no interval (these runs kept no per-item bits)"}
    test = difference_test(f"{ours} − {base} bits per byte", comparison, side="below")
    return tested_claim(claim, evidence, [test], values, ours, base, generated=False)


def less_degenerate_claim(values: dict[str, list[dict]], base: str = "LoRA", ours: str = "Pen2Sword") -> dict:
    """``ours``' validation generations are less often degenerate (empty or a loop) than ``base``'s at the last
    common step, tested item by item: what ROUGE cannot say when one row's generations are loops (it voids the
    ROUGE claims), this says of the rows themselves."""
    claim = (f"{ours}'s validation generations are less often degenerate (empty or a loop) than {base}'s at the "
             "same budget (not a claim of the paper)")
    step = _last_common_step(mean_curve(values.get(ours) or []), mean_curve(values.get(base) or []))
    if step is None:
        return {"claim": claim, "holds": None, "evidence": MISSING}
    shares = {k: mean_std([sum(items.values()) / len(items) for items in
                           items_by_run(values[k], "degenerate", lambda run: step).values()])[0] for k in (ours, base)}
    evidence = (f"step {step}: " + ", ".join(f"{k} {v:.0%}" if v is not None else f"{k} –" for k, v in shares.items())
                + " of generations degenerate; " + runs_text({k: len(values.get(k) or []) for k in (ours, base)}))
    test = difference_test(f"{ours} − {base} share degenerate", compared(values, ours, base, "degenerate",
                                                                         lambda run: step), side="below", digits=2)
    out = {"claim": claim, "holds": None, "evidence": evidence, "tests": [test]}
    if reason := _degenerate(values, ours, base, reads_generations=False):  # degenerate labels still void it
        out["undecided_because"] = reason
    return out


def best_of_claim(values: dict[str, list[dict]], labels: dict[str, str], expected: str, claim: str) -> dict:
    """``expected`` (a short name of ``labels``: short → row) is higher than each other row at their last common
    validation step: one test per other row."""
    curves = {k: mean_curve(values.get(v) or []) for k, v in labels.items()}
    step = _last_common_step(*curves.values())
    if step is None or any(not c for c in curves.values()):
        return {"claim": claim, "holds": None, "evidence": MISSING}
    tests = [difference_test(f"{expected} − {k}", compared(values, labels[expected], labels[k], "rouge1",
                                                           lambda run: step))
             for k in labels if k != expected]
    evidence = (f"step {step}: " + ", ".join(f"{k} {c[step]:.4f}" for k, c in curves.items()) + "; "
                + runs_text({k: len(values.get(v) or []) for k, v in labels.items()}))
    return tested_claim(claim, evidence, tests, values, *labels.values())


def at_every_checkpoint_claim(values: dict[str, list[dict]], ours: str, base: str, claim: str) -> dict:
    """``ours`` outperforms ``base`` on HumanEval at every checkpoint both scored: a strict test per checkpoint
    (two rows that tie, e.g. both at 0, leave it undecided)."""
    ours_curve, base_curve = mean_curve(values.get(ours) or [], "humaneval"), mean_curve(values.get(base) or [],
                                                                                         "humaneval")
    checkpoints = {s for label in (ours, base) for run in values.get(label) or [] for s in run["checkpoint_steps"]}
    steps = sorted(checkpoints & set(ours_curve) & set(base_curve))
    if not steps:
        return {"claim": claim, "holds": None, "evidence": MISSING}
    tests = [difference_test(f"step {s}: {ours} − {base}",
                             compared(values, ours, base, "humaneval/score", lambda run, s=s: s), digits=1, scale=100)
             for s in steps]
    evidence = (", ".join(f"step {s} {ours_curve[s]:.3f} vs {base_curve[s]:.3f}" for s in steps) + "; "
                + runs_text({k: len(values.get(k) or []) for k in (ours, base)}))
    return tested_claim(claim, evidence, tests, values, ours, base)


def paper_minutes(name: str) -> float:
    """The paper's minutes per 1k training steps (Figure 2c's text) of LoRA, Weak2Strong, ProxyTuning or Pen2Sword."""
    return lookup(source="figure2c", row=name, column="time per 1k training steps")[0]["value"]
