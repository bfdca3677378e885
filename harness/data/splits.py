"""Deterministic train/validation splits fixed by seed, so every method sees the same 100 samples."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Split:
    train: list[dict]
    validation: list[dict]
    seed: int

    @property
    def validation_ids(self) -> list[str]:
        return [r["id"] for r in self.validation]


def train_validation_split(records: list[dict], n_validation: int, seed: int) -> Split:
    """Hold out ``n_validation`` records chosen by ``seed``; the rest (in original order) is train."""
    if not 0 < n_validation < len(records):
        raise ValueError(
            f"n_validation={n_validation} must be between 1 and {len(records) - 1} for a dataset of "
            f"{len(records)} records"
        )
    held = set(random.Random(seed).sample(range(len(records)), n_validation))
    validation = [records[i] for i in sorted(held)]
    train = [r for i, r in enumerate(records) if i not in held]
    return Split(train=train, validation=validation, seed=seed)


TRAIN_PARTS = ("all", "first-half", "second-half")


def train_part(records: list[dict], part: str) -> list[dict]:
    """``all``, or one of two disjoint halves in the split's order (Weak2Strong's reference recipe
    fine-tunes the weak supervisor on one half and labels the other)."""
    if part not in TRAIN_PARTS:
        raise ValueError(f"train part must be one of {TRAIN_PARTS}, got {part!r}")
    half = len(records) // 2
    return records if part == "all" else records[:half] if part == "first-half" else records[half:]


def sample_train(records: list[dict], n: int | None, seed: int) -> list[dict]:
    """``n`` training records drawn by ``seed`` (in their original order); all when ``n`` is None or larger.

    Drawn, not a prefix: a prefix of math-instructions would be GSM8K only."""
    if n is None or n >= len(records):
        return records
    keep = sorted(random.Random(f"{seed}:train-sample").sample(range(len(records)), n))
    return [records[i] for i in keep]
