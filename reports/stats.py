"""The statistics behind the report's verdicts: paired comparisons of two rows over their items and their
training runs, equivalence within a stated margin, cost ratios, steps to reach a baseline, and the
family-wise correction of the claims section.

Where the noise comes from (Bouthillier et al. 2021; Agarwal et al. 2021, rliable): a row's score moves
with the items it is scored on *and* with the training run (seed) that made it. A comparison pairs the
two rows within each run key they share (same suite, same seed: the same data order and the same items),
so how hard each item is cancels, and then

- with one run per row: the interval covers the items only (a t interval on the per-item differences, or
  for pass/fail items an exact McNemar test on the items where the two differ, never a normal
  approximation), and the verdict is *provisional*: training-seed variance was not sampled;
- with several runs per row: a two-level paired bootstrap, runs resampled first, then items within each
  run, so the interval covers both sources.

A claim's tests are corrected as one family (Holm–Bonferroni, Dror et al. 2018) by :func:`holm`.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as scipy_stats

ALPHA = 0.05  # family-wise level of the claims section
N_BOOT = 4000  # bootstrap replicates: enough that a p-value near ALPHA is stable to about ±0.005
SEED = 20260  # the bootstrap's own seed: the same runs give the same report

RunItems = dict[tuple, dict[str, float]]  # run key (suite, seed) → item id → value


def mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the values that are not None (std None below two values)."""
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def clean(value):
    """None for NaN (pandas' empty cell), else the value."""
    return None if value is None or value != value else value


@dataclass(frozen=True)
class Comparison:
    """``a − b`` over the items and runs two rows share."""

    mean: float  # the mean over runs of each run's mean per-item difference
    low: float | None  # 95% interval (None: one item, no spread to measure)
    high: float | None
    p: float | None  # two-sided p-value of "no difference" (None: nothing to test)
    n_items: int  # items per run (the largest run's count where runs differ)
    n_runs: int  # run keys paired
    method: str  # how the interval and p were had, in words
    differing: int | None = None  # pass/fail items: how many items the two rows score differently (all runs)
    draws: np.ndarray | None = field(default=None, compare=False, repr=False)  # bootstrap replicates of ``mean``
    t_se: float | None = field(default=None, compare=False, repr=False)  # one run, continuous: the t interval's se

    @property
    def seeds_sampled(self) -> bool:
        """Whether the interval covers training-seed variance (several runs paired), not items only."""
        return self.n_runs > 1

    @property
    def distinguishable(self) -> bool:
        """The 95% interval excludes 0."""
        return self.low is not None and (self.low > 0 or self.high < 0)

    def interval(self, level: float) -> tuple[float, float] | None:
        """A two-sided ``level`` interval of the same kind as ``low``/``high`` (used at 90% for equivalence)."""
        if self.t_se is not None:
            half = scipy_stats.t.ppf(0.5 + level / 2, self.n_items - 1) * self.t_se
            return self.mean - half, self.mean + half
        if self.draws is not None:
            tail = (1 - level) / 2 * 100
            low, high = np.percentile(self.draws, [tail, 100 - tail])
            return float(low), float(high)
        return None

    def p_beyond(self, bound: float, side: str) -> float | None:
        """One-sided p-value that the difference lies beyond ``bound`` on ``side`` ("below" or "above"), i.e. of
        the null that it does not: small means confidently below (or above) ``bound``."""
        if self.t_se is not None:
            if self.t_se == 0:
                return 0.0 if (self.mean < bound if side == "below" else self.mean > bound) else 1.0
            t = (self.mean - bound) / self.t_se
            return float(scipy_stats.t.cdf(t, self.n_items - 1) if side == "below"
                         else scipy_stats.t.sf(t, self.n_items - 1))
        if self.draws is not None:
            wrong = np.sum(self.draws >= bound) if side == "below" else np.sum(self.draws <= bound)
            return float((wrong + 1) / (len(self.draws) + 1))
        return None


def _bootstrap_p(draws: np.ndarray, null: float = 0.0) -> float:
    """Two-sided bootstrap p-value of ``null`` (the share of replicates on the far side of it, doubled; never 0)."""
    below, above = np.sum(draws <= null), np.sum(draws >= null)
    return float(min(1.0, 2 * (min(below, above) + 1) / (len(draws) + 1)))


def _is_binary(a: RunItems, b: RunItems) -> bool:
    """Every value is 0 or 1 (pass/fail items)."""
    return {v for side in (a, b) for items in side.values() for v in items.values()} <= {0.0, 1.0}


def compare(a: RunItems, b: RunItems, *, n_boot: int = N_BOOT, seed: int = SEED) -> Comparison | None:
    """``a − b`` paired within each run key both rows have, over the items both scored there (None: no shared
    run key holds a shared item). With one run: a paired t test (an exact McNemar test for pass/fail items)
    and its interval; with several: the two-level bootstrap (runs, then items within runs)."""
    keys = [k for k in a if k in b and a[k].keys() & b[k].keys()]
    if not keys:
        return None
    differences = []
    for key in keys:
        shared = sorted(a[key].keys() & b[key].keys())
        differences.append(np.array([a[key][i] - b[key][i] for i in shared], dtype=float))
    binary = _is_binary({k: a[k] for k in keys}, {k: b[k] for k in keys})
    means = np.array([d.mean() for d in differences])
    mean = float(means.mean())
    n_items = max(len(d) for d in differences)
    differing = int(sum(np.count_nonzero(d) for d in differences)) if binary else None
    rng = np.random.default_rng(seed)
    if len(keys) == 1:
        d = differences[0]
        if len(d) < 2:
            return Comparison(mean, None, None, None, len(d), 1, "one item: nothing to test", differing)
        if binary:
            # Exact McNemar: under "no difference" each item the two rows score differently is equally likely to
            # favour either; the interval is the items' bootstrap (no normal approximation with few such items).
            wins, losses = int(np.sum(d > 0)), int(np.sum(d < 0))
            p = 1.0 if wins + losses == 0 else float(scipy_stats.binomtest(wins, wins + losses, 0.5).pvalue)
            draws = d[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1)
            low, high = np.percentile(draws, [2.5, 97.5])
            return Comparison(mean, float(low), float(high), p, len(d), 1,
                              f"exact McNemar test on the {wins + losses} items scored differently, item bootstrap "
                              "interval", differing, draws=draws)
        se = float(d.std(ddof=1) / math.sqrt(len(d)))
        half = float(scipy_stats.t.ppf(0.975, len(d) - 1)) * se
        p = 1.0 if se == 0 and mean == 0 else (0.0 if se == 0 else
                                               float(2 * scipy_stats.t.sf(abs(mean) / se, len(d) - 1)))
        return Comparison(mean, mean - half, mean + half, p, len(d), 1, "paired t over items", differing, t_se=se)
    # Two levels: each replicate draws runs with replacement, then for each drawn run its items with replacement.
    # A run's item-level replicates are made once (per_run) and drawn from at random, so a run drawn twice in one
    # replicate still gets two different item resamples.
    per_run = np.stack([d[rng.integers(0, len(d), (n_boot, len(d)))].mean(axis=1) for d in differences])
    which_run = rng.integers(0, len(keys), (n_boot, len(keys)))
    which_draw = rng.integers(0, n_boot, (n_boot, len(keys)))
    draws = per_run[which_run, which_draw].mean(axis=1)
    low, high = np.percentile(draws, [2.5, 97.5])
    return Comparison(mean, float(low), float(high), _bootstrap_p(draws), n_items, len(keys),
                      f"two-level paired bootstrap over {len(keys)} runs and their items", differing, draws=draws)


@dataclass(frozen=True)
class Estimate:
    """A derived quantity (a cost ratio, a speed-up) with its 95% interval and bootstrap replicates."""

    value: float
    low: float
    high: float
    n_runs: int
    method: str
    draws: np.ndarray = field(compare=False, repr=False)

    @property
    def seeds_sampled(self) -> bool:
        return self.n_runs > 1

    def p_not_above(self, bound: float) -> float:
        """One-sided p-value of "value ≤ bound" (small: confidently above ``bound``)."""
        return float((np.sum(self.draws <= bound) + 1) / (len(self.draws) + 1))

    def p_not_below(self, bound: float) -> float:
        """One-sided p-value of "value ≥ bound" (small: confidently below ``bound``)."""
        return float((np.sum(self.draws >= bound) + 1) / (len(self.draws) + 1))

    def interval(self, level: float) -> tuple[float, float]:
        tail = (1 - level) / 2 * 100
        low, high = np.percentile(self.draws, [tail, 100 - tail])
        return float(low), float(high)


def _resample_runs(runs: list[np.ndarray], rng, n_boot: int) -> np.ndarray:
    """Replicates of the mean over runs of each run's mean, runs then values within runs resampled."""
    per_run = np.stack([r[rng.integers(0, len(r), (n_boot, len(r)))].mean(axis=1) for r in runs])
    if len(runs) == 1:
        return per_run[0]
    pick = rng.integers(0, len(runs), (n_boot, len(runs)))
    return per_run[pick, rng.integers(0, n_boot, (n_boot, len(runs)))].mean(axis=1)


def cost_ratio(ours: list[tuple[float, list[float]]], base: list[tuple[float, list[float]]], *,
               n_boot: int = N_BOOT, seed: int = SEED) -> Estimate | None:
    """Ours / base cost per training step. Each run is ``(fixed seconds per step, [seconds of each logged
    step])``: the fixed part (labelling, model loading, validation, spread over the run's steps) is taken as
    measured, the per-step times are resampled (runs, then steps), so the interval says how much the ratio
    could move with the step times' own spread."""
    if not ours or not base or any(not steps for _, steps in (*ours, *base)):
        return None
    rng = np.random.default_rng(seed)

    def replicates(runs):
        fixed = statistics.fmean(f for f, _ in runs)
        return fixed + _resample_runs([np.array(s, dtype=float) for _, s in runs], rng, n_boot)

    def point(runs):
        return statistics.fmean(f + statistics.fmean(s) for f, s in runs)

    draws = replicates(ours) / replicates(base)
    low, high = np.percentile(draws, [2.5, 97.5])
    return Estimate(point(ours) / point(base), float(low), float(high), min(len(ours), len(base)),
                    f"bootstrap over {len(ours)}+{len(base)} runs' step times", draws)


def steps_to_reach(ours: dict[tuple, dict[int, dict[str, float]]], base: dict[tuple, dict[int, dict[str, float]]], *,
                   n_boot: int = 1000, seed: int = SEED) -> Estimate | None:
    """How many times fewer steps ``ours`` needs to reach ``base``'s best (base's best step / the first step at
    which ours is at least that high), from per-item curves (run key → step → item → value), paired within each
    run key on the steps and items both have, resampled over runs and items.

    Ours reaching it at step 0 counts as reaching it at the first evaluation after 0 (no speed-up is infinite);
    ours never reaching it counts as a speed-up of 0. Base's best at step 0 makes the speed-up 1 where ours is
    also there at step 0."""
    keys = [k for k in ours if k in base]
    matrices = []
    steps: list[int] | None = None
    for key in keys:
        common = sorted(set(ours[key]) & set(base[key]))
        steps = common if steps is None else [s for s in steps if s in common]
    if not keys or not steps or len(steps) < 2:
        return None
    for key in keys:
        items = sorted(set.intersection(*(set(ours[key][s]) & set(base[key][s]) for s in steps)))
        if not items:
            return None
        matrices.append((np.array([[ours[key][s][i] for i in items] for s in steps]),
                         np.array([[base[key][s][i] for i in items] for s in steps])))
    step_array = np.array(steps, dtype=float)
    first_positive = next(s for s in steps if s > 0)

    def speedup(ours_curve: np.ndarray, base_curve: np.ndarray) -> float:
        best = int(np.argmax(base_curve))  # the first step at base's highest value
        reached = np.nonzero(ours_curve >= base_curve[best])[0]
        if not len(reached):
            return 0.0
        reach = max(step_array[reached[0]], first_positive)
        return 1.0 if step_array[best] == 0 else float(step_array[best] / reach)

    value = speedup(np.mean([o.mean(axis=1) for o, _ in matrices], axis=0),
                    np.mean([b.mean(axis=1) for _, b in matrices], axis=0))
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for r in range(n_boot):
        picked = rng.integers(0, len(matrices), len(matrices)) if len(matrices) > 1 else [0]
        o_curves, b_curves = [], []
        for index in picked:
            o, b = matrices[index]
            items = rng.integers(0, o.shape[1], o.shape[1])
            o_curves.append(o[:, items].mean(axis=1))
            b_curves.append(b[:, items].mean(axis=1))
        draws[r] = speedup(np.mean(o_curves, axis=0), np.mean(b_curves, axis=0))
    low, high = np.percentile(draws, [2.5, 97.5])
    return Estimate(value, float(low), float(high), len(matrices),
                    f"bootstrap over {len(matrices)} run{'s' * (len(matrices) != 1)} and the validation items", draws)


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, made monotone): reject where adjusted < ALPHA, and the
    family-wise error rate is at most ALPHA whatever the dependence between the tests."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted
