"""Suites: what a run fine-tunes on, what it is scored on, and its domain expert."""

from __future__ import annotations

from dataclasses import dataclass

from harness.registry import SUITES

# Every fine-tuned run is also scored on these (Table 1's Specialized and General columns).
ALWAYS_AFTER_FINE_TUNING = ("mmlu-physics", "mmlu-politics", "mmlu")


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    benchmarks: tuple[str, ...]
    train_dataset: str | None = None  # None: an evaluation-only suite
    domain_expert: dict[str, str] | None = None  # scale → the expert used when none is chosen

    @property
    def trainable(self) -> bool:
        return self.train_dataset is not None

    def expert_for(self, scale: str) -> str | None:
        return (self.domain_expert or {}).get(scale)


def suite_benchmarks(name: str, *, fine_tuned: bool = False) -> tuple[str, ...]:
    """The benchmarks a run of suite ``name`` is scored on; fine-tuned runs add ALWAYS_AFTER_FINE_TUNING."""
    names = list(SUITES.get(name).benchmarks)
    if fine_tuned:
        names += [b for b in ALWAYS_AFTER_FINE_TUNING if b not in names]
    return tuple(names)


def register_suite(suite: Suite, aliases: tuple[str, ...] = ()) -> Suite:
    return SUITES.register(suite.name, suite, aliases=aliases)


register_suite(Suite(
    "code", "fine-tune on code instructions; HumanEval pass@1 + MMLU Computer Science",
    ("humaneval", "mmlu-cs"), "code-instructions",
    # Table 2 uses CodeLlama-7B as the code expert.
    {"nano": "code-expert", "micro": "code-expert", "paper": "codellama-7b"},
))
register_suite(Suite(
    "math", "fine-tune on math instructions; MATH level-5 accuracy + MMLU Mathematics (+ GSM8K test)",
    ("math-l5", "mmlu-mathematics", "gsm8k"), "math-instructions",
    # Table 1's math row: Vicuna-7B-v1.3 was the best of the DPF-selected experts.
    {"nano": "math-expert", "micro": "math-expert", "paper": "vicuna-7b-v1.3"},
))
register_suite(Suite("specialized", "evaluation only: MMLU Physics and Politics (unseen domains)",
                     ("mmlu-physics", "mmlu-politics")))
register_suite(Suite("general", "evaluation only: full MMLU, 57 subjects", ("mmlu",)))
