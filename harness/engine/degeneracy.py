"""Whether a generated text is degenerate: empty, or a loop; and whether a set of texts means nothing.

A text is degenerate when it holds no token (empty or whitespace only), or when more than half of its
8-grams repeat an earlier 8-gram of the same text (Welleck et al. 2019's seq-rep-n with n = 8, above
0.5): a model stuck in "the the the", in "2=2=2=2", in "_1_1_1_1", or in one line written over and over.
Tokens are runs of letters, runs of digits and each other non-space character, so the measure does not
depend on the model's tokenizer, and a loop inside one identifier ("theoptional_1_1_1...", which a
word tokenizer reads as a single token) shows as surely as a loop of words. A text shorter than one
8-gram is never a loop.

Why 8-grams: real answers repeat short spans (LaTeX's ``$\\frac{1}{2}$``, code's ``d(matrix[0][0])``).
With 8-grams, 20 of the code and math suites' 18,216 training responses pass the threshold (6 code, 14
math, long answers all; 1 within its first 400 characters, about what a validation generation holds);
with 6-grams 62 would.
"""

from __future__ import annotations

import re
from typing import Sequence

NGRAM = 8
MAX_REPEATED_SHARE = 0.5  # a text whose share of repeated n-grams is above this is a loop
MAX_SHARE = 0.5  # pseudo-labels or generations of which more than this share is degenerate mean nothing

_TOKEN = re.compile(r"[A-Za-z]+|\d+|[^\sA-Za-z\d]")


def repeated_ngram_share(text: str, n: int = NGRAM) -> float:
    """The share of ``text``'s n-grams that repeat an n-gram seen earlier in it (0 when it has none)."""
    tokens = _TOKEN.findall(text)
    ngrams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1 - len(set(ngrams)) / len(ngrams) if ngrams else 0.0


def is_degenerate(text: str) -> bool:
    """Empty (no token at all) or a loop (more than half of its 8-grams repeat an earlier one)."""
    return not _TOKEN.search(text) or repeated_ngram_share(text) > MAX_REPEATED_SHARE


def degenerate_share(texts: Sequence[str]) -> float:
    """The share of ``texts`` that are degenerate (0 for no texts)."""
    return sum(map(is_degenerate, texts)) / len(texts) if texts else 0.0


def no_answer_reason(labels: dict) -> str | None:
    """Why most of a labeller's answers are none, in a few words, or None: more than half of the ``n`` labels
    are ``empty``, ``degenerate`` or ``identical`` (one same text, ``most_common``; two labels at least).
    Counts that are None were not measured. The pseudo-label report warns with it and reports mark the row."""
    n = labels.get("n") or 0
    what = {"empty": "empty", "degenerate": "degenerate (empty or a loop)",
            "identical": f"the same text ({labels.get('most_common')!r})"}
    for name, description in what.items():
        count = labels.get(name) or 0
        if n and count > MAX_SHARE * n and (name != "identical" or count > 1):
            return f"{count} of {n} pseudo-labels {description}"
    return None
