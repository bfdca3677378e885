"""Fixed, stratified subsamples for the ``micro`` scale: chosen by seed, recorded by the hash of their ids."""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from typing import Callable, Sequence


def ids_sha256(ids: Sequence[str]) -> str:
    """sha256 of the ids, one per line, in the given order (the order items are scored in)."""
    return hashlib.sha256("".join(f"{i}\n" for i in ids).encode("utf-8")).hexdigest()


def stratified_sample(items: Sequence[dict], n: int, *, seed: int = 0,
                      stratum: Callable[[dict], str] | None = None) -> list[int]:
    """Indices (ascending) of ``n`` items spread over strata in proportion to their sizes.

    Each stratum gets ``floor(n * size / total)`` items, and the remaining ones go to the strata with
    the largest remainders (ties broken by stratum name), so a stratum is never over-drawn. Inside a
    stratum the items are a seeded shuffle's first ones, seeded by ``seed`` and the stratum's name:
    adding a subject to the data does not change another subject's sample.
    """
    if n < 0:
        raise ValueError(f"sample size must be non-negative, got {n}")
    if n >= len(items):
        return list(range(len(items)))
    groups: dict[str, list[int]] = defaultdict(list)
    for i, item in enumerate(items):
        groups[stratum(item) if stratum else ""].append(i)
    total = len(items)
    quota = {k: n * len(v) // total for k, v in groups.items()}
    rest = n - sum(quota.values())
    by_remainder = sorted(groups, key=lambda k: (-(n * len(groups[k]) % total), k))
    for k in by_remainder[:rest]:
        quota[k] += 1
    chosen: list[int] = []
    for k, members in groups.items():
        rng = random.Random(f"{seed}:{k}")
        shuffled = list(members)
        rng.shuffle(shuffled)
        chosen += shuffled[: quota[k]]
    return sorted(chosen)
