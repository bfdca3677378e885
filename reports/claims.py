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
"""

from __future__ import annotations

from pathlib import Path

from harness.runstore import RunDir

from reports import collect
from reports.collect import item_values
from reports.paper_numbers import lookup
from reports.spec import ROLE_BY_NAME, TABLE4_EXPERTS, Spec
from reports.stats import ALPHA, Comparison, Estimate, clean, compare, cost_ratio, holm, mean_std, steps_to_reach

MISSING = "runs missing"
# A run whose process got less of its threads' CPU time than this shared the machine or was paused: its wall
# time says more about the other work than about the method.
MIN_CPU_SHARE = 0.8
# "≈" and "stays within": equivalence margins, stated in the claim. Table 2's two rows the paper prints as
# about equal (0.737 and 0.743) differ by 0.8%; a margin of 5% of their mean is generous to the paper.
EQUIVALENT_ROUGE = 0.05
MMLU_MARGIN = 0.05  # the paper's own words: "within 5% of the Vanilla Model"
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


def _signed(value: float, digits: int) -> str:
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
            body = f"Δ {_signed(test['estimate'] * s, d)} (one item)"
        else:
            body = (f"Δ {_signed(test['estimate'] * s, d)} [95% CI {_signed(test['low'] * s, d)}, "
                    f"{_signed(test['high'] * s, d)}]")
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
                                                 "runs missing" if claim.get("evidence") == MISSING else "")
        text = f"undecided ({why})" if why else "undecided"
    else:
        text = "yes" if claim["holds"] else "no"
    return text + (" (provisional: 1 training run per row)" if claim.get("provisional") else "")


# --- helpers for the claims of each table and figure ---------------------------------------------

def _runs_text(counts: dict[str, int]) -> str:
    """How many runs stand behind each compared row: "1 run each" or "runs: LoRA 2, Pen2Sword 1"."""
    if len(set(counts.values())) == 1:
        n = next(iter(counts.values()))
        return f"{n} run{'s' * (n != 1)} each"
    return "runs: " + ", ".join(f"{k} {v}" for k, v in counts.items())


def _paper(spec: Spec, row: str, column: str) -> float | None:
    hits = lookup(source=spec.paper_source, row=row, column=column) if spec.paper_source else []
    return hits[0]["value"] if hits else None


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
    from benchmarks.registry import BENCHMARKS

    return BENCHMARKS.get(benchmark).kind_impl.output_type == "generate_until"


def compared(values: dict[str, list[dict]], ours: str, base: str, metric: str, step_of,
             suites: tuple[str, ...] | None = None) -> Comparison | None:
    """``ours − base`` over their runs' items of ``metric`` at ``step_of(run)``."""
    def runs(label: str) -> list[dict]:
        return [v for v in values.get(label, []) if suites is None or v.get("suite") in suites]
    return compare(items_by_run(runs(ours), metric, step_of), items_by_run(runs(base), metric, step_of))


def _claim(claim: str, evidence: str, tests: list[dict], values: dict[str, list[dict]], *rows: str,
           generated: bool = True) -> dict:
    """A tested claim on ``rows``, undecided where one of them is degenerate (``generated``: the claim reads
    generations, see :func:`_degenerate`)."""
    out = {"claim": claim, "holds": None, "evidence": evidence, "tests": tests}
    if reason := _degenerate(values, *rows, reads_generations=generated):
        out["undecided_because"] = reason
    return out


# --- tables ------------------------------------------------------------------------------------------

def table_claims(spec: Spec, frame, values: dict[str, list[dict]] | None = None) -> list[dict]:
    """The claims a table bears on; ``values`` (row label → its runs' :func:`run_values`) gives the per-item
    samples the tests pair."""
    values = values or {}
    builders = {"table1": table1_claims, "table2": table2_claims, "table4": table4_claims, "table5": table5_claims}
    return builders[spec.name](spec, frame, values) if spec.name in builders else []


def table2_claims(spec: Spec, frame, values: dict[str, list[dict]]) -> list[dict]:
    """The ablation order: w/o Expansion ≪ w/o Fusion < w/o DPF ≈ w/o Embedding Training < Pen2Sword, each link
    tested (a tie is not "<"; "≈" is an equivalence within a stated margin)."""
    claim = ("ablation order (ROUGE-1): w/o Expansion ≪ w/o Fusion < w/o DPF ≈ w/o Embedding Training < Pen2Sword "
             f"(each link tested; ≈ within ±{EQUIVALENT_ROUGE:.0%} of the two rows' mean)")
    names = ("Pen2Sword", "w/o DPF Selection", "w/o Expansion", "w/o Fusion", "w/o Embedding Training")
    value = {r["row"]: clean(r["ROUGE-1"]) for _, r in frame.iterrows()} if "ROUGE-1" in frame else {}
    if any(value.get(k) is None for k in names):
        return [{"claim": claim, "holds": None, "evidence": MISSING}]
    full, dpf, expansion, fusion, embedding = names

    def link(a: str, b: str) -> dict:
        return difference_test(f"{a} − {b}", compared(values, a, b, "rouge1", last_evaluation))

    margin = EQUIVALENT_ROUGE * (value[dpf] + value[embedding]) / 2
    tests = [link(fusion, expansion), link(dpf, fusion), link(embedding, fusion),
             equivalence_test(f"{dpf} − {embedding}", compared(values, dpf, embedding, "rouge1", last_evaluation),
                              margin),
             link(full, dpf), link(full, embedding)]
    runs = _runs_text({r["row"]: r["runs"] for _, r in frame.iterrows()})
    evidence = ", ".join(f"{k} {value[k]:.4f}" for k in names) + f"; {runs}"
    return [_claim(claim, evidence, tests, values, *names)]


def _row_source(rows: dict, row: str, column: str) -> str:
    """The row whose runs gave ``row``'s cell in ``column``: a best-of row's expert sub-row (the frame's
    ``"<column> from"``), else the row itself."""
    origin = clean(rows[row].get(f"{column} from")) if row in rows else None
    return origin or row


def table1_claims(spec: Spec, frame, values: dict[str, list[dict]] | None = None) -> list[dict]:
    """Pen2Sword is best on HumanEval, MATH, Physics and Politics (tested against the runner-up, each cell's own
    runs: for a best-of row, those of the expert that gave it); its MMLU stays within 5% of the Vanilla Model's
    (an equivalence test, margin 5% of Vanilla's score)."""
    values = values or {}
    claims = []
    p2s, vanilla = "Vanilla Model + LoRA + Pen2Sword", "Vanilla Model"
    rows = {r["row"]: r for _, r in frame.iterrows()}

    def short(label: str) -> str:
        return label.replace(vanilla, "VM")

    for column in ("Code Ability / HumanEval", "Math Ability / MATH", "Specialized Adaptation / Physics",
                   "Specialized Adaptation / Politics"):
        claim = f"Pen2Sword is best on {column} (paper: {_paper(spec, p2s, column):g})"
        scores = {r["row"]: clean(r[column]) for _, r in frame.iterrows()}
        if any(v is None for v in scores.values()):
            claims.append({"claim": claim, "holds": None, "evidence": MISSING})
            continue
        col = next(c for c in spec.columns if c.label == column)
        runs = _runs_text({r["row"]: sum(r[f"runs {s}"] for s in col.suites) for _, r in frame.iterrows()})
        runner_up = max((k for k in scores if k != p2s), key=lambda k: scores[k])
        ours, theirs = _row_source(rows, p2s, column), _row_source(rows, runner_up, column)
        test = difference_test(f"Pen2Sword − {short(runner_up)}",
                               compared(values, ours, theirs, f"{col.benchmark}/score", benchmark_step, col.suites),
                               digits=1, scale=100)
        evidence = ", ".join(f"{short(k)} {v:.1f}" for k, v in scores.items()) + f"; {runs}"
        if ours != p2s or theirs != runner_up:
            evidence += f"; compared: {short(ours)} with {short(theirs)}"
        bits = compared(values, ours, theirs, f"{col.benchmark}/bits_per_byte", benchmark_step, col.suites)
        if bits is not None and bits.low is not None:  # a continuous side check, not part of the verdict
            evidence += (f"; bits/byte of the reference Δ {_signed(bits.mean, 3)} [95% CI {_signed(bits.low, 3)}, "
                         f"{_signed(bits.high, 3)}] (lower is better)")
        claims.append(_claim(claim, evidence, [test], values, ours, theirs,
                             generated=reads_generations(col.benchmark)))
    column = "General Ability / MMLU"
    paper_change = lookup(source="table1", row=p2s, column=column)[0]["change_pct"]
    claim = (f"Pen2Sword's MMLU stays within {MMLU_MARGIN:.0%} of the Vanilla Model's (paper: {paper_change:+.1f}%; "
             "equivalence test)")
    ours, base = (clean(rows[k][column]) if k in rows else None for k in (p2s, vanilla))
    if ours is None or base is None:
        claims.append({"claim": claim, "holds": None, "evidence": MISSING})
        return claims
    col = next(c for c in spec.columns if c.label == column)
    source = _row_source(rows, p2s, column)
    margin = MMLU_MARGIN * base / 100  # the frame's cells are ×100
    test = equivalence_test("Pen2Sword − Vanilla", compared(values, source, vanilla, f"{col.benchmark}/score",
                                                            benchmark_step, col.suites),
                            margin, digits=1, scale=100, margin_text=f" (5% of Vanilla's {base:.1f})")
    change = clean(rows[p2s].get(f"{column} change %"))
    evidence = (f"Pen2Sword {ours:.1f} vs Vanilla {base:.1f}" + ("" if change is None else f" ({change:+.1f}%)")
                + f"; {_runs_text({'Pen2Sword': rows[p2s]['runs'], 'Vanilla': rows[vanilla]['runs']})}")
    claims.append(_claim(claim, evidence, [test], values, source, vanilla, generated=reads_generations(col.benchmark)))
    return claims


def paper_beats_at_every_step(ours: dict[str, float | None], base: dict[str, float | None]) -> bool | None:
    """Whether the paper's own numbers have ``ours`` above ``base`` at every step either has (None: no step, or
    a step with one and not the other)."""
    steps = [s for s in ours if ours[s] is not None or base.get(s) is not None]
    if not steps or any(ours[s] is None or base.get(s) is None for s in steps):
        return None
    return all(ours[s] > base[s] for s in steps)


def table4_claims(spec: Spec, frame, values: dict[str, list[dict]] | None = None) -> list[dict]:
    """Per expert: Pen2Sword beats LoRA on HumanEval at every step (a test per checkpoint, each strict). The
    evidence also says whether the paper's own numbers bear it out for that expert."""
    values = values or {}
    scores = [c for c in spec.columns if c.benchmark == "humaneval" and c.metric == "score"]
    rows = {r["row"]: r for _, r in frame.iterrows()}
    lora = "Vanilla Model + LoRA"

    def step_name(column) -> str:
        return column.label.split("step=")[1]

    claims = []
    for expert in TABLE4_EXPERTS["code"]:
        name = ROLE_BY_NAME[expert].stands_in_for
        p2s = f"Vanilla Model + LoRA + Pen2Sword ({name})"
        paper = {step_name(c): _paper(spec, p2s, c.label) for c in scores}
        paper_base = {step_name(c): _paper(spec, lora, c.label) for c in scores}
        paper_text = ("paper: " + {True: "holds", False: "does not hold", None: "n/a"}[
            paper_beats_at_every_step(paper, paper_base)] + " (" + ", ".join(
            f"{k} {paper[k]:g} vs {paper_base[k]:g}" for k in paper if paper[k] is not None) + ")")
        claim = f"Pen2Sword ({name}) beats LoRA at every step on HumanEval"
        ours = {step_name(c): clean(rows[p2s][c.label]) if p2s in rows else None for c in scores}
        base = {step_name(c): clean(rows[lora][c.label]) if lora in rows else None for c in scores}
        steps = [c for c in scores if ours[step_name(c)] is not None]
        if not steps or any(base[step_name(c)] is None for c in steps):
            claims.append({"claim": claim, "holds": None, "evidence": f"{MISSING}; {paper_text}"})
            continue
        tests = [difference_test(f"{step_name(c)}: Pen2Sword − LoRA",
                                 compared(values, p2s, lora, "humaneval/score", checkpoint_step(c.checkpoint),
                                          ("code",)), digits=1, scale=100) for c in steps]
        runs = _runs_text({"Pen2Sword": rows[p2s]["runs code"], "LoRA": rows[lora]["runs code"]})
        evidence = (", ".join(f"{step_name(c)} {ours[step_name(c)]:.1f} vs {base[step_name(c)]:.1f}" for c in steps)
                    + f"; {runs}; {paper_text}")
        claims.append(_claim(claim, evidence, tests, values, p2s, lora))
    return claims


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
                + f" minutes per 1k steps; {_runs_text({k: len(values[k]) for k in (ours, base)})}")
    out = {"claim": claim, "holds": None, "evidence": evidence, "tests": [test]}
    if caveat := timing_caveat({k: [v.get("cpu_share") for v in values[k]] for k in (ours, base)}):
        out["undecided_because"] = caveat
    return out


def table5_claims(spec: Spec, frame, values: dict[str, list[dict]] | None = None) -> list[dict]:
    """ROUGE-1 above LoRA's (tested over the validation items at each run's last evaluation); time per step within
    15% of LoRA's (tested on the step times); memory within 15% of LoRA's and FFT's far above (untested: one
    peak per run)."""
    values = values or {}
    rows = {r["row"]: r for _, r in frame.iterrows()}

    def paper_memory_ratio(row: str) -> float:
        return _paper(spec, row, "Avg. GPU Memory (GB)") / _paper(spec, lora, "Avg. GPU Memory (GB)")

    def value(row: str, column: str) -> float | None:
        return clean(rows[row][column]) if row in rows else None

    def runs(*names: str) -> str:
        return _runs_text({n: rows[n]["runs"] if n in rows else 0 for n in names})

    def memory_caveat_of(*names: str) -> str | None:
        return memory_caveat({n: [v.get("runs_before_in_process") for v in values.get(n, [])] for n in names})

    lora, fft = "Vanilla Model + LoRA", "Vanilla Model + FFT"
    # The paper measures GPU memory; a CPU run has none, so its peak RSS stands in (the claim says which).
    memory = "Avg. GPU Memory (GB)" if value(lora, "Avg. GPU Memory (GB)") is not None else "Peak RSS in training (GB)"
    claims = []
    for row, short in (("Vanilla Model + LoRA + Pen2Sword", "Pen2Sword"),
                       ("Vanilla Model + LoRA + Pen2Sword-F", "Pen2Sword-F")):
        ours, base = value(row, "ROUGE-1"), value(lora, "ROUGE-1")
        claim = f"{short} reaches a higher ROUGE-1 than LoRA"
        if None in (ours, base):
            claims.append({"claim": claim, "holds": None, "evidence": MISSING})
        else:
            test = difference_test(f"{short} − LoRA", compared(values, row, lora, "rouge1", last_evaluation))
            claims.append(_claim(claim, f"{ours:.4f} vs LoRA {base:.4f}; {runs(row, lora)}", [test], values, row,
                                 lora))
        paper_minutes = (f" (paper, Figure 2c: {_paper_minutes('Pen2Sword'):g} vs {_paper_minutes('LoRA'):g})"
                         if short == "Pen2Sword" else "")  # the paper times Pen2Sword-F nowhere
        claims.append(minutes_claim(f"{short}'s minutes per 1k steps are within {COST_MARGIN:.0%} of LoRA's"
                                    f"{paper_minutes}", values, row, lora, side="within"))
        claims.append(ratio_claim(f"{short}'s {memory} is within 15% of LoRA's (paper: {paper_memory_ratio(row):.2f}x "
                                  "GPU memory)", value(row, memory), value(lora, memory), "LoRA",
                                  lambda r: abs(r - 1) <= 0.15, runs(row, lora), memory_caveat_of(row, lora)))
    claims.append(ratio_claim(f"FFT's {memory} is at least 1.5x LoRA's (paper: {paper_memory_ratio(fft):.1f}x GPU "
                              "memory)", value(fft, memory), value(lora, memory), "LoRA", lambda r: r >= 1.5,
                              runs(fft, lora), memory_caveat_of(fft, lora)))
    return claims


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
                + f"; {_runs_text({k: len(values.get(k) or []) for k in (base, ours)})}")
    estimate = steps_to_reach(curves_by_run(values.get(ours) or [], "rouge1"),
                              curves_by_run(values.get(base) or [], "rouge1"))
    test = estimate_test(f"speed-up of {ours} over {base}", estimate, side="above", bound=1.0, unit="×",
                         missing="no per-item samples")
    return _claim(claim, evidence, [test], values, base, ours)


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
                + _runs_text({k: len(values.get(k) or []) for k in (ours, base)}))
    return _claim(claim, evidence, [test], values, ours, base)


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
                + _runs_text({k: len(values.get(k) or []) for k in (ours, base)}))
    comparison = compared(values, ours, base, "eval_bits_per_byte", lambda run: last)
    if comparison is None:  # runs made before the samples kept each reference's bits
        return {"claim": claim, "holds": ours_curve[last] < base_curve[last],
                "evidence": f"{evidence}; no interval (these runs kept no per-item bits)"}
    return _claim(claim, evidence, [difference_test(f"{ours} − {base} bits per byte", comparison, side="below")],
                  values, ours, base, generated=False)


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
                + " of generations degenerate; " + _runs_text({k: len(values.get(k) or []) for k in (ours, base)}))
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
                + _runs_text({k: len(values.get(v) or []) for k, v in labels.items()}))
    return _claim(claim, evidence, tests, values, *labels.values())


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
                + _runs_text({k: len(values.get(k) or []) for k in (ours, base)}))
    return _claim(claim, evidence, tests, values, ours, base)


def curve_claims(spec: Spec, values: dict[str, list[dict]]) -> list[dict]:
    if spec.name in ("figure2a", "figure2b"):
        stated = {r["row"]: r["value"] for r in lookup(source=spec.paper_source)}
        paper = ""
        if {"LoRA", "Pen2Sword"} <= set(stated):  # the paper: "from 10k to 1k" (code), "from 3k to 2k" (math)
            paper = (f" (paper: {stated['Pen2Sword']:g} steps instead of LoRA's {stated['LoRA']:g}, "
                     f"{stated['LoRA'] / stated['Pen2Sword']:.1f}× fewer)")
        return [faster_claim(values, "LoRA", "Pen2Sword", paper), higher_claim(values, "LoRA", "Pen2Sword"),
                lower_bits_claim(values), less_degenerate_claim(values)]
    if spec.name in ("figure3a", "figure3b"):
        claims = []
        for base, ours in zip(spec.rows[::2], spec.rows[1::2]):  # each base row followed by its Pen2Sword row
            claims += [faster_claim(values, base.label, ours.label), higher_claim(values, base.label, ours.label)]
        return claims
    if spec.name == "figure4":
        labels = {"DR 80%": "Pen2Sword, DR 80%", "DR 67%": "Pen2Sword, DR 67%"}  # short name → row
        return [best_of_claim(values, labels, "DR 80%", "DR 80% reaches a higher ROUGE-1 than DR 67% at the last "
                                                        "common step (paper: DR 67% degrades significantly)"),
                higher_claim(values, "LoRA, DR 100% target", "Pen2Sword, DR 100%",
                             claim="Pen2Sword at DR 100% has the higher ROUGE-1 than LoRA on the same target at the "
                                   "last common step (paper: performs well without embedding distortion)")]
    if spec.name == "figure5":
        labels = {r.label.removeprefix("Pen2Sword "): r.label for r in spec.rows if r.label.startswith("Pen2Sword")}
        lora = next(r.label for r in spec.rows if r.label.startswith("LoRA"))
        stated = {r["row"]: r["value"] for r in lookup(source="figure5", column="training steps to matched performance")}
        paper = (f" (paper: {stated['Pen2Sword']:g} steps to LoRA's level at {stated['LoRA']:g})"
                 if {"LoRA", "Pen2Sword"} <= set(stated) else "")
        return [best_of_claim(values, labels, "α=0.5", "α=0.5 has the highest ROUGE-1 of the three α at the last "
                                                       "common step"),
                faster_claim(values, lora, labels["α=0.5"], paper)]
    if spec.name in ("figure7a", "figure7b"):
        base = spec.rows[1].label  # Weak2Strong or ProxyTuning
        combined = f"Pen2Sword + {base}"
        claims = [at_every_checkpoint_claim(values, ours, base, f"{ours} outperforms {base} on HumanEval at every "
                                                                "checkpoint")
                  for ours in ("Pen2Sword", combined)]
        if spec.name == "figure7a":  # A.5.1: "Pen2Sword alone consistently outperforms ... the combined approach"
            claims.append(at_every_checkpoint_claim(values, "Pen2Sword", combined, f"Pen2Sword alone outperforms "
                                                                                   f"{combined} at every checkpoint"))
        return claims
    return []  # Figure 6: ROUGE-2, ROUGE-L and eval loss are shown, the paper draws no claim from them


def _paper_minutes(name: str) -> float:
    """The paper's minutes per 1k training steps (Figure 2c's text) of LoRA, Weak2Strong, ProxyTuning or Pen2Sword."""
    return lookup(source="figure2c", row=name, column="time per 1k training steps")[0]["value"]


def cost_claims(values: dict[str, list[dict]]) -> list[dict]:
    """Figure 2c: Pen2Sword costs what LoRA costs per 1k steps (within 15%); Weak2Strong and ProxyTuning cost more
    (their labelling included, also when it came from a cache another run made)."""
    lora = _paper_minutes("LoRA")
    return [minutes_claim(f"Pen2Sword costs about what LoRA costs per 1k steps (paper: {_paper_minutes('Pen2Sword'):g}"
                          f" vs {lora:g} minutes; within {COST_MARGIN:.0%})", values, "Pen2Sword", "LoRA",
                          side="within"),
            *(minutes_claim(f"{name} costs more than LoRA per 1k steps (paper: {_paper_minutes(name) / lora:.1f}x)",
                            values, name, "LoRA", side="above") for name in ("Weak2Strong", "ProxyTuning"))]
