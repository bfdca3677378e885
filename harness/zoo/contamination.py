"""Evaluation-item overlap detection: no 50-character window of an evaluation item may occur in training text.

Texts are normalised (lowercase, whitespace runs collapsed to one space) and every window of
:data:`WINDOW` characters is hashed with a polynomial rolling hash computed in numpy (mod 2**64), so
millions of windows are compared in seconds. Every hash hit is confirmed by comparing the strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

WINDOW = 50
_BASE = 0x100000001B3  # odd, so invertible mod 2**64
_BASE_INV = pow(_BASE, -1, 1 << 64)
_SEP = "\x00"  # joins texts; a window containing it spans two texts and is ignored
_SPACE = re.compile(r"\s+")
MIN_ALNUM = 25  # a window with fewer letters/digits (rules, tables, LaTeX scaffolding) says nothing about an item
MAX_ITEMS = 2  # a window found in more evaluation items is boilerplate ("express your answer as a ..."), not an item

# The evaluation sets (and the fields of each) that no training text may contain.
EVALUATION_FIELDS: dict[str, tuple[str, ...]] = {
    "humaneval": ("prompt", "canonical_solution"),
    "math-test": ("problem", "solution"),
    "gsm8k-test": ("question", "solution"),
    "mmlu": ("question",),
}


def normalize(text: str) -> str:
    return _SPACE.sub(" ", text.replace(_SEP, " ").lower()).strip()


def _codes(joined: str) -> np.ndarray:
    return np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)


def window_hashes(joined: str, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """(start positions, hashes) of the informative ``window``-character windows of ``joined``.

    A window is skipped when it spans a separator or holds fewer than :data:`MIN_ALNUM` letters or digits.
    """
    codes = _codes(joined)
    n = len(codes)
    if n < window:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        powers = np.full(n, _BASE, dtype=np.uint64)
        powers[0] = 1
        powers = np.cumprod(powers, dtype=np.uint64)
        inverse = np.full(n - window + 1, _BASE_INV, dtype=np.uint64)
        inverse[0] = 1
        inverse = np.cumprod(inverse, dtype=np.uint64)
        prefix = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum(codes * powers, dtype=np.uint64, out=prefix[1:])
        hashes = (prefix[window:] - prefix[:-window]) * inverse
    separators = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(codes == 0, out=separators[1:])
    alnum = np.zeros(n + 1, dtype=np.int64)
    letters = ((codes >= 48) & (codes <= 57)) | ((codes >= 97) & (codes <= 122)) | ((codes >= 65) & (codes <= 90))
    np.cumsum(letters | (codes >= 0xC0), out=alnum[1:])  # non-ASCII letters count as letters
    keep = ((separators[window:] - separators[:-window]) == 0) & ((alnum[window:] - alnum[:-window]) >= MIN_ALNUM)
    return np.nonzero(keep)[0], hashes[keep]


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    # np.unique / np.isin are an order of magnitude slower than a plain sort on numpy 2.4
    ordered = np.sort(values)
    if len(ordered) == 0:
        return ordered
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))]


def _member(queries: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``queries[i] in reference`` for each i; ``reference`` sorted and unique."""
    if len(reference) == 0 or len(queries) == 0:
        return np.zeros(len(queries), dtype=bool)
    order = np.argsort(queries, kind="stable")
    ordered = queries[order]
    at = np.searchsorted(reference, ordered)
    at[at == len(reference)] = 0
    found = np.empty(len(queries), dtype=bool)
    found[order] = reference[at] == ordered
    return found


@dataclass(frozen=True)
class EvaluationWindows:
    """Hashes of every window of every evaluation item, plus the joined text to confirm hits against."""

    hashes: np.ndarray  # sorted, unique
    joined: str
    items: int


@lru_cache(maxsize=1)
def evaluation_windows() -> EvaluationWindows:
    from harness.data import load_dataset

    texts = []
    for name, fields in EVALUATION_FIELDS.items():
        for row in load_dataset(name):
            for f in fields:
                norm = normalize(str(row.get(f) or ""))
                if len(norm) >= WINDOW:
                    texts.append(norm)
    joined = _SEP.join(texts)
    starts, hashes = window_hashes(joined)
    # Count in how many distinct items each window occurs; keep the item-specific ones.
    item = np.searchsorted(np.cumsum([len(t) + 1 for t in texts]), starts, side="right")
    order = np.lexsort((item, hashes))
    hashes, item = hashes[order], item[order]
    first_of_pair = np.concatenate(([True], (hashes[1:] != hashes[:-1]) | (item[1:] != item[:-1])))
    pair_hashes = hashes[first_of_pair]
    starts_of_run = np.flatnonzero(np.concatenate(([True], pair_hashes[1:] != pair_hashes[:-1])))
    items_per_hash = np.diff(np.append(starts_of_run, len(pair_hashes)))
    specific = pair_hashes[starts_of_run][items_per_hash <= MAX_ITEMS]
    return EvaluationWindows(specific, joined, len(texts))


def _eval_window_strings(ev: EvaluationWindows, wanted: np.ndarray) -> set[str]:
    """The evaluation windows whose hash is in ``wanted`` (for confirming hits exactly)."""
    starts, hashes = window_hashes(ev.joined)
    hit = _member(hashes, wanted)
    return {ev.joined[s : s + WINDOW] for s in starts[hit]}


@dataclass(frozen=True)
class Overlap:
    index: int  # which of the checked texts
    window: str  # the shared normalised window


def find_overlaps(texts: list[str], evaluation: EvaluationWindows | None = None) -> list[Overlap]:
    """One :class:`Overlap` per text that shares a normalised window with an evaluation item."""
    ev = evaluation or evaluation_windows()
    normalized = [normalize(t) for t in texts]
    offsets = np.cumsum([0] + [len(t) + 1 for t in normalized])  # +1: the separator
    joined = _SEP.join(normalized)
    starts, hashes = window_hashes(joined)
    candidate = _member(hashes, ev.hashes)
    if not candidate.any():
        return []
    confirmed = _eval_window_strings(ev, _sorted_unique(hashes[candidate]))
    found: dict[int, Overlap] = {}
    for start in starts[candidate]:
        window = joined[start : start + WINDOW]
        if window not in confirmed:
            continue  # a 64-bit hash collision, not an overlap
        index = int(np.searchsorted(offsets, start, side="right") - 1)
        found.setdefault(index, Overlap(index, window))
    return sorted(found.values(), key=lambda o: o.index)
