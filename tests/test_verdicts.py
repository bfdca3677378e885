"""Verdicts: the statistics behind them (against scipy and known answers), Holm's correction, and claims that
never read "holds" where their interval holds the boundary, on synthetic per-item data with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

import reports.claims as claims_module
import reports.tables  # noqa: F401  # registers the paper's tables
from reports.claims import decide, difference_test, equivalence_test, finalize, verdict_text
from reports.registry import TABLES
from reports.stats import compare, cost_ratio, holm, steps_to_reach


def claims_of(name: str, *args) -> list[dict]:
    """The claims the registered table ``name`` builds: ``claims(spec, frame, values)`` for a table,
    ``claims(spec, values)`` for a figure."""
    table = TABLES.get(name)
    return table.claims(table.spec, *args)


def _items(values) -> dict[str, float]:
    return {f"i{k}": float(v) for k, v in enumerate(values)}


# --- the statistics -----------------------------------------------------------------------------------

def test_one_run_continuous_is_a_paired_t_interval():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.5, 0.2, 30), rng.normal(0.4, 0.2, 30)
    c = compare({("code", 0): _items(a)}, {("code", 0): _items(b)})
    d = a - b
    se = d.std(ddof=1) / math.sqrt(30)
    half = scipy_stats.t.ppf(0.975, 29) * se  # a t quantile, not 1.96
    assert c.mean == pytest.approx(d.mean()) and c.low == pytest.approx(d.mean() - half)
    assert c.high == pytest.approx(d.mean() + half)
    assert c.p == pytest.approx(scipy_stats.ttest_1samp(d, 0.0).pvalue)
    assert c.n_runs == 1 and not c.seeds_sampled and c.method == "paired t over items"


def test_one_run_pass_fail_is_an_exact_mcnemar_test():
    # 40 items; ours passes 7 the other fails, the other passes 1 ours fails: 8 discordant items.
    ours = [1] * 7 + [0] * 1 + [1] * 10 + [0] * 22
    base = [0] * 7 + [1] * 1 + [1] * 10 + [0] * 22
    c = compare({("code", 0): _items(ours)}, {("code", 0): _items(base)})
    assert c.differing == 8 and c.mean == pytest.approx(6 / 40)
    assert c.p == pytest.approx(scipy_stats.binomtest(7, 8, 0.5).pvalue)  # 0.0703: not decided at 5%
    assert "exact McNemar" in c.method and c.low is not None and c.low <= 0.0 + 1e-12 or c.p > 0.05
    same = compare({("code", 0): _items([0, 1, 0])}, {("code", 0): _items([0, 1, 0])})
    assert same.p == 1.0 and same.differing == 0


def test_several_runs_use_the_two_level_bootstrap_and_cover_seed_variance():
    rng = np.random.default_rng(1)
    items = rng.normal(0, 1, 50)  # item difficulty, shared by both rows
    # The rows differ by +0.1 on average, but each training seed moves ours by a lot (±0.3): seed variance dominates.
    shifts = [0.4, -0.2, 0.1]
    ours = {("code", s): _items(items + 0.0 + shift + rng.normal(0, 0.01, 50)) for s, shift in enumerate(shifts)}
    base = {("code", s): _items(items + rng.normal(0, 0.01, 50)) for s in range(3)}
    c = compare(ours, base)
    assert c.n_runs == 3 and c.seeds_sampled and "two-level" in c.method
    assert c.mean == pytest.approx(np.mean(shifts), abs=0.01)
    assert c.low < 0 < c.high  # one seed alone would look decisive; three that disagree do not
    one_seed = compare({("code", 0): ours[("code", 0)]}, {("code", 0): base[("code", 0)]})
    assert one_seed.low > 0.3  # items only: seed 0's +0.4 looks certain
    assert compare({("code", 0): {"a": 1.0}}, {("math", 0): {"a": 1.0}}) is None  # no run key in common


def test_holm_matches_the_textbook():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == []
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def test_cost_ratio_and_steps_to_reach_know_the_answer():
    rng = np.random.default_rng(2)
    ours = [(0.5, list(rng.normal(2.0, 0.05, 200))) for _ in range(2)]
    base = [(0.5, list(rng.normal(1.0, 0.05, 200))) for _ in range(2)]
    ratio = cost_ratio(ours, base)
    assert ratio.value == pytest.approx(2.5 / 1.5, rel=0.01) and ratio.low < ratio.value < ratio.high
    assert ratio.high - ratio.low < 0.05 and ratio.p_not_above(1.0) < 0.01

    # Base climbs to its best (0.5) at step 10; ours is there by step 2: a 5x speed-up, the same on every item.
    steps = [0, 2, 4, 6, 8, 10]
    base_level = dict(zip(steps, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]))
    ours_level = dict(zip(steps, [0.0, 0.5, 0.55, 0.6, 0.6, 0.6]))
    noise = rng.normal(0, 0.01, 40)
    base_curves = {("code", 0): {s: _items(base_level[s] + noise) for s in steps}}
    ours_curves = {("code", 0): {s: _items(ours_level[s] + noise + 0.001) for s in steps}}
    speed = steps_to_reach(ours_curves, base_curves)
    assert speed.value == pytest.approx(5.0) and speed.low == pytest.approx(5.0) and not speed.seeds_sampled
    never = steps_to_reach(base_curves, {("code", 0): {s: _items(ours_level[s] + noise + 0.1) for s in steps}})
    assert never.value == 0.0


# --- verdicts -------------------------------------------------------------------------------------------

def _final(*tests: dict) -> dict:
    (claim,) = finalize([{"claim": "c", "holds": None, "evidence": "e", "tests": list(tests)}])
    return claim


def test_a_claim_never_holds_with_its_interval_on_the_boundary():
    rng = np.random.default_rng(3)
    clear = compare({("code", 0): _items(rng.normal(1.0, 0.1, 40))}, {("code", 0): _items(np.zeros(40))})
    assert _final(difference_test("a − b", clear))["holds"] is True
    assert _final(difference_test("a − b", clear, side="below"))["holds"] is False
    noise = compare({("code", 0): _items(rng.normal(0, 1, 40))}, {("code", 0): _items(rng.normal(0, 1, 40))})
    claim = _final(difference_test("a − b", noise))
    assert claim["holds"] is None and claim["within_noise"] and claim["provisional"]
    assert verdict_text(claim) == "undecided (within noise) (provisional: 1 training run per row)"
    tie = compare({("code", 0): _items([1, 0, 1])}, {("code", 0): _items([1, 0, 1])})
    assert _final(difference_test("a − b", tie))["holds"] is None  # a tie is not "<"
    untested = _final(difference_test("a − b", None))  # nothing to test: undecided, not a mean's word, not noise
    assert untested["holds"] is None and verdict_text(untested) == "undecided (no per-item samples)"

    # Many comparisons where nothing differs: almost none holds, and none with an interval holding 0.
    false_positives = 0
    for seed in range(200):
        r = np.random.default_rng(100 + seed)
        c = compare({("code", 0): _items(r.normal(0, 1, 30))}, {("code", 0): _items(r.normal(0, 1, 30))})
        test = difference_test("a − b", c)
        test["p_holm"] = test["p"]  # each on its own
        verdict = decide(test)
        false_positives += verdict is True
        assert verdict is not True or test["low"] > 0
    assert false_positives <= 12  # 5% of 200 is 10 (one-sided half of that expected)


def test_holm_over_the_family_can_turn_a_lone_finding_undecided():
    rng = np.random.default_rng(4)
    # p about 0.02 alone: decided alone, not among ten tests.
    z = rng.normal(0, 1, 30)
    a = (z - z.mean()) / z.std(ddof=1) + 0.45  # t = 0.45 * sqrt(30) = 2.46: p = 0.02
    borderline = compare({("code", 0): _items(a)}, {("code", 0): _items(np.zeros(30))})
    assert 0.005 < borderline.p < 0.05
    alone = _final(difference_test("a − b", borderline))
    assert alone["holds"] is True
    noise = [difference_test("n", compare({("code", 0): _items(rng.normal(0, 1, 30))},
                                          {("code", 0): _items(rng.normal(0, 1, 30))})) for _ in range(9)]
    together = finalize([{"claim": "c", "holds": None, "evidence": "e", "tests": [difference_test("a − b",
                                                                                                  borderline)]},
                         *({"claim": f"n{k}", "holds": None, "evidence": "e", "tests": [t]}
                           for k, t in enumerate(noise))])
    assert together[0]["holds"] is None and "Holm" in together[0]["evidence"]


def test_equivalence_is_decided_inside_the_margin_only():
    rng = np.random.default_rng(5)
    base = rng.normal(0.5, 0.1, 200)
    close = compare({("code", 0): _items(base + rng.normal(0.002, 0.01, 200))}, {("code", 0): _items(base)})
    assert _final(equivalence_test("a − b", close, 0.025))["holds"] is True
    far = compare({("code", 0): _items(base + 0.1 + rng.normal(0, 0.01, 200))}, {("code", 0): _items(base)})
    assert _final(equivalence_test("a − b", far, 0.025))["holds"] is False
    wide = compare({("code", 0): _items(base + rng.normal(0, 0.3, 200))}, {("code", 0): _items(base)})
    assert _final(equivalence_test("a − b", wide, 0.025))["holds"] is None  # too noisy to say either


# --- claims of tables and figures on synthetic runs -------------------------------------------------

@pytest.fixture
def synthetic_items(monkeypatch):
    """Per-item values of fake runs: ``store[(run_dir, step, metric)] = {item: value}`` stands in for the
    samples a real run keeps on disk."""
    store: dict[tuple, dict[str, float]] = {}
    monkeypatch.setattr(claims_module, "item_values", lambda run, step, metric: store.get((run.path.name, step,
                                                                                           metric)))
    return store


def _run(name: str, curve: dict[int, np.ndarray], store: dict, seed: int = 0, metric: str = "rouge1",
         checkpoints: tuple[int, ...] = (), **extra) -> dict:
    name = name.replace("/", "-")  # a file name
    for step, values in curve.items():
        store[(name, step, metric)] = _items(values)
    means = [(s, float(np.mean(v))) for s, v in curve.items()]
    return {"run_dir": f"/synthetic/{name}", "suite": "code", "seed": seed, "step": max(curve),
            "curves": {metric: means}, "checkpoint_steps": list(checkpoints), "trained": True,
            "benchmark_step": max(curve), **extra}


def test_figure2_claims_on_a_known_speed_up(synthetic_items):
    rng = np.random.default_rng(6)
    steps = [0, 100, 200, 300, 400, 500]
    lora_level = [0.10, 0.20, 0.30, 0.35, 0.40, 0.45]
    p2s_level = [0.10, 0.30, 0.46, 0.50, 0.55, 0.60]
    values = {"LoRA": [], "Pen2Sword": []}
    for seed in range(3):
        item = rng.normal(0, 0.05, 60)
        values["LoRA"].append(_run(f"lora{seed}", {s: l + item + rng.normal(0, 0.01, 60) for s, l in
                                                   zip(steps, lora_level)}, synthetic_items, seed))
        values["Pen2Sword"].append(_run(f"p2s{seed}", {s: l + item + rng.normal(0, 0.01, 60) for s, l in
                                                       zip(steps, p2s_level)}, synthetic_items, seed))
    faster, higher, bits, _ = finalize(claims_of("figure2a", values))
    assert faster["holds"] is True and not faster["provisional"]  # three seeds each: seed variance sampled
    assert "speed-up of Pen2Sword over LoRA: 2.50× [95% CI" in faster["evidence"]  # 500 / 200
    assert "paper: 1000 steps instead of LoRA's 10000, 10.0× fewer" in faster["claim"]
    assert higher["holds"] is True and "× 3 runs" in higher["evidence"]
    assert bits["holds"] is None  # no eval bits per byte in these runs


def test_figure2_claims_are_undecided_on_noise(synthetic_items):
    rng = np.random.default_rng(7)
    steps = [0, 100, 200]
    values = {label: [_run(f"{label}{seed}", {s: rng.uniform(0, 0.2, 40) for s in steps}, synthetic_items, seed)
                      for seed in range(2)] for label in ("LoRA", "Pen2Sword")}
    faster, higher, _, _ = finalize(claims_of("figure2a", values))
    assert higher["holds"] is None and higher["within_noise"]
    assert faster["holds"] is not True


def test_table2_chain_needs_every_link(synthetic_items):
    import pandas as pd

    rng = np.random.default_rng(8)
    item = rng.normal(0, 0.05, 100)
    levels = {"Pen2Sword": 0.60, "w/o DPF Selection": 0.50, "w/o Expansion": 0.20, "w/o Fusion": 0.40,
              "w/o Embedding Training": 0.501}
    values = {k: [_run(k, {500: lvl + item + rng.normal(0, 0.005, 100)}, synthetic_items)] for k, lvl in levels.items()}
    frame = pd.DataFrame.from_records([{"row": k, "ROUGE-1": values[k][0]["curves"]["rouge1"][0][1], "runs": 1}
                                       for k in levels])
    (chain,) = finalize(claims_of("table2", frame, values))
    assert chain["holds"] is True and chain["provisional"]
    assert "w/o DPF Selection − w/o Embedding Training" in chain["evidence"] and "margin ±" in chain["evidence"]
    # Fusion tied with Expansion: that link is undecided, so the chain is.
    expansion = 0.20 + item + rng.normal(0, 0.005, 100)
    values["w/o Expansion"] = [_run("expansion", {500: expansion}, synthetic_items)]
    values["w/o Fusion"] = [_run("fusion", {500: expansion}, synthetic_items)]
    (chain,) = finalize(claims_of("table2", frame, values))
    assert chain["holds"] is None


def test_table5_cost_is_tested_on_step_times(synthetic_items):
    import pandas as pd

    rng = np.random.default_rng(9)
    rows = ("Vanilla Model + FFT", "Vanilla Model + LoRA", "Vanilla Model + LoRA + Pen2Sword-F",
            "Vanilla Model + LoRA + Pen2Sword")
    step_mean = {rows[0]: 1.8, rows[1]: 1.0, rows[2]: 1.01, rows[3]: 1.3}
    values = {row: [_run(f"r{k}", {500: rng.normal(0.3, 0.1, 50)}, synthetic_items, cpu_share=0.95,
                         runs_before_in_process=0, step_seconds=list(rng.normal(step_mean[row], 0.05, 300)),
                         fixed_seconds_per_step=0.2, minutes_per_1k=(step_mean[row] + 0.2) * 1000 / 60)]
              for k, row in enumerate(rows)}
    frame = pd.DataFrame.from_records([{"row": row, "ROUGE-1": 0.3, "Minutes per 1k steps": values[row][0]["minutes_per_1k"],
                                        "Avg. GPU Memory (GB)": None, "Peak RSS in training (GB)": 2.0, "runs": 1}
                                       for row in rows])
    claims = {c["claim"].split(" (paper")[0]: c for c in finalize(claims_of("table5", frame, values))}
    assert claims["Pen2Sword-F's minutes per 1k steps are within 15% of LoRA's"]["holds"] is True
    assert claims["Pen2Sword's minutes per 1k steps are within 15% of LoRA's"]["holds"] is False  # 1.25x
    assert "minutes per step: 1.25x [95% CI" in claims["Pen2Sword's minutes per 1k steps are within 15% of LoRA's"][
        "evidence"]
    values[rows[1]][0]["cpu_share"] = 0.5
    claims = {c["claim"].split(" (paper")[0]: c for c in finalize(claims_of("table5", frame, values))}
    busy = claims["Pen2Sword-F's minutes per 1k steps are within 15% of LoRA's"]
    assert busy["holds"] is None and "timings not comparable" in verdict_text(busy)


def test_figure7_outperforms_is_strict_and_zeros_are_undecided(synthetic_items):
    checkpoints = (100, 200)
    zeros = {label: [_run(label, {s: np.zeros(20) for s in checkpoints}, synthetic_items, metric="humaneval/score",
                          checkpoints=checkpoints)]
             for label in ("Pen2Sword", "Weak2Strong", "Pen2Sword + Weak2Strong")}
    for run in (r for runs in zeros.values() for r in runs):  # the curve a figure reads is the benchmark's score
        run["curves"]["humaneval"] = run["curves"].pop("humaneval/score")
    claims = finalize(claims_of("figure7a", zeros))
    assert len(claims) == 3 and all(c["holds"] is None for c in claims)
    assert "Pen2Sword alone outperforms Pen2Sword + Weak2Strong" in claims[2]["claim"]


# --- labelling cost follows cached labels --------------------------------------------------------------

def test_labels_from_the_cache_still_count_in_the_cost(nano_zoo, data_cache, tmp_path):
    """A Weak2Strong run whose labels another run wrote counts the seconds their labelling took: Figure 2c's
    minutes include labelling, whichever run paid for it."""
    from harness.config import resolve_config
    from harness.engine.plan import plan_run
    from harness.engine.run import execute
    from harness.summary import summarize
    from reports.collect import run_values

    tiny = ["training.max_steps=2", "training.eval_every=2", "training.checkpoint_steps=[2]", "data.n_validation=4",
            "eval.benchmarks=false", "eval.max_new_tokens=4", "pseudo_labels.max_new_tokens=4"]
    runs = [execute(plan_run(resolve_config(given={"method": "weak2strong", "suite": "code", "scale": "nano"},
                                            overrides=[*tiny, f"training.lr={lr}"]), tmp_path), progress=False)
            for lr in (1e-3, 2e-3)]  # another learning rate: another run, the same labels
    first, second = (json.loads((run.path / "prepare.json").read_text())["pseudo_labels"] for run in runs)
    assert not first["cached"] and second["cached"] and second["labelling_seconds"] > 0
    values = run_values(runs[1])
    summary = summarize(runs[1])
    phases = {p["name"]: p["self_seconds"] for p in summary["phases"]}
    own = summary["wall_seconds"] - phases.get("build_models", 0.0) - phases.get("benchmarks", 0.0)
    assert values["minutes_per_1k"] == pytest.approx((own + second["labelling_seconds"]) / 2 * 1000 / 60)
    assert len(values["step_seconds"]) == 2 and values["fixed_seconds_per_step"] >= 0


def test_the_bits_per_byte_check_is_tested_and_survives_degenerate_generations(synthetic_items, monkeypatch):
    rng = np.random.default_rng(10)
    item = rng.normal(3.0, 0.3, 50)
    values = {"LoRA": [_run("lora-bits", {500: item + rng.normal(0, 0.01, 50)}, synthetic_items,
                            metric="eval_bits_per_byte")],
              "Pen2Sword": [_run("p2s-bits", {500: item - 0.05 + rng.normal(0, 0.01, 50)}, synthetic_items,
                                 metric="eval_bits_per_byte")]}
    # Both rows generate loops: ROUGE claims are void, the likelihood of the references is not.
    monkeypatch.setattr(claims_module.collect, "degenerate_reason", lambda run: "95% of validation generations "
                                                                                "degenerate at step 500")
    _, _, bits, _ = finalize(claims_of("figure2a", values))
    assert bits["holds"] is True and "Pen2Sword − LoRA bits per byte: Δ -0.0" in bits["evidence"]


def test_less_degenerate_generations_are_tested_item_by_item(synthetic_items):
    values = {"LoRA": [_run("lora-deg", {500: np.array([1.0] * 40 + [0.0] * 10)}, synthetic_items, metric="degenerate")],
              "Pen2Sword": [_run("p2s-deg", {500: np.array([1.0] * 5 + [0.0] * 45)}, synthetic_items,
                                 metric="degenerate")]}
    for runs in values.values():  # the validation steps a figure reads come from the ROUGE curve
        runs[0]["curves"]["rouge1"] = [(500, 0.1)]
    claim = finalize(claims_of("figure2a", values))[3]
    assert claim["holds"] is True and "step 500: Pen2Sword 10%, LoRA 80% of generations degenerate" in claim["evidence"]
    assert "exact McNemar" in claim["evidence"]
