"""What each of the paper's tables and figures needs: suite, methods (by the rows the paper prints),
steps, seeds and metrics (HELM's schema-then-summarize: the spec first, then the rendering).

A spec turns into the exact run configs it needs (:func:`needed_runs`): the same resolution as
``harness run`` (scale preset < method variant < overrides), so a needed run is identified by its run
id, and a missing one comes with the exact ``harness run ...`` command that produces it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from harness.config import RunConfig, resolve_config
from harness.method import method_overrides


@dataclass(frozen=True)
class Row:
    label: str  # the row as the paper prints it (reports/paper_numbers.yaml)
    method: str  # the registered method
    overrides: tuple[str, ...] = ()  # key=value on top of the method's own


@dataclass(frozen=True)
class Column:
    label: str  # the column as the paper prints it
    metric: str  # a key of reports.collect.run_values (e.g. "rouge1"), or with ``benchmark``: score | bits_per_byte
    digits: int = 3
    benchmark: str | None = None  # a benchmark scored at the run's best step (Table 1)
    suites: tuple[str, ...] = ()  # runs of these suites feed the column (default: the spec's suites), averaged
    percent: bool = False  # shown ×100, as the paper prints accuracies


@dataclass(frozen=True)
class Spec:
    name: str  # "table2", "figure2a", ...
    title: str
    suite: str | tuple[str, ...]  # the suite(s) every row is run on
    rows: tuple[Row, ...]
    columns: tuple[Column, ...] = ()
    paper_source: str | None = None  # the source key in paper_numbers.yaml
    kind: str = "table"  # or "curve" (metrics against steps), "cost" (time per 1k steps), "dpf" (Table 3)
    curve_metrics: tuple[str, ...] = ("rouge1",)  # one panel each: validation metrics or benchmark names
    note: str = ""
    overrides: tuple[str, ...] = field(default=())  # for every row
    change_against: str | None = None  # a row label: cells also show the % change against it (Table 1)

    @property
    def suites(self) -> tuple[str, ...]:
        return (self.suite,) if isinstance(self.suite, str) else tuple(self.suite)


ROUGE = (Column("ROUGE-1", "rouge1"), Column("ROUGE-2", "rouge2"), Column("ROUGE-L", "rougeL"))
BOTH = ("code", "math")


def _bench(label: str, benchmark: str, suites: tuple[str, ...]) -> tuple[Column, Column]:
    """A Table 1 column (accuracy ×100) and its continuous companion (bits per byte of the reference)."""
    return (Column(label, "score", 1, benchmark, suites, percent=True),
            Column(f"{label} (bits/byte)", "bits_per_byte", 3, benchmark, suites))

SPECS: dict[str, Spec] = {s.name: s for s in (
    Spec("table1", "Table 1: main comparison (accuracy %, change against the Vanilla Model)", BOTH,
         (Row("Vanilla Model", "vanilla"), Row("Vanilla Model + Instruction-tuned", "instruction-tuned"),
          Row("Vanilla Model + LoRA", "lora"), Row("Vanilla Model + LoRA + Weak2Strong", "weak2strong"),
          Row("Vanilla Model + LoRA + ProxyTuning", "proxytuning"), Row("Vanilla Model + LoRA + Pen2Sword", "pen2sword")),
         (*_bench("Code Ability / HumanEval", "humaneval", ("code",)),
          *_bench("Code Ability / CS", "mmlu-cs", ("code",)),
          *_bench("Math Ability / MATH", "math-l5", ("math",)),
          *_bench("Math Ability / Mathematics", "mmlu-mathematics", ("math",)),
          *_bench("Specialized Adaptation / Physics", "mmlu-physics", BOTH),
          *_bench("Specialized Adaptation / Politics", "mmlu-politics", BOTH),
          *_bench("General Ability / MMLU", "mmlu", BOTH)),
         paper_source="table1", change_against="Vanilla Model",
         note="scores at each run's best checkpoint (by validation ROUGE-1); Specialized and General columns average "
              "the code and math runs, as the paper's do; bits/byte is the reference answer's (lower is better)"),
    Spec("table3", "Table 3: DPF scores of the candidate experts (code)", "code", (), kind="dpf",
         paper_source="table3", note="from `harness dpf --suite code` (results/dpf/); the paper's judge is GPT-4o"),
    Spec("table2", "Table 2: ablations (code)", "code",
         (Row("Pen2Sword", "pen2sword"), Row("w/o DPF Selection", "pen2sword-no-dpf"),
          Row("w/o Expansion", "pen2sword-no-expansion"), Row("w/o Fusion", "pen2sword-no-fusion"),
          Row("w/o Embedding Training", "pen2sword-f")),
         ROUGE, paper_source="table2",
         note="the paper reads ROUGE at step 6k; ours at the run's last evaluation (max_steps)"),
    Spec("table5", "Table 5: cost and quality per fine-tuning method (code)", "code",
         (Row("Vanilla Model + FFT", "fft"), Row("Vanilla Model + FFT + Pen2Sword", "pen2sword-fft"),
          Row("Vanilla Model + LoRA", "lora"), Row("Vanilla Model + LoRA + Pen2Sword-F", "pen2sword-f"),
          Row("Vanilla Model + LoRA + Pen2Sword", "pen2sword")),
         (Column("ROUGE-1", "rouge1"), Column("Trainable Params (% of Total)", "trainable_percent", 2),
          Column("Avg. GPU Utilization (%)", "gpu_util_mean", 2), Column("Avg. GPU Memory (GB)", "gpu_mem_gb", 2),
          Column("Peak RSS (GB)", "rss_peak_gb", 2), Column("Minutes per 1k steps", "minutes_per_1k", 1)),
         paper_source="table5",
         note="GPU columns are unavailable on CPU runs (peak RSS is shown instead); LoRA trains the embedding "
              "beside its adapters here, as the paper's setup says, so its trainable share exceeds the paper's"),
    Spec("figure2a", "Figure 2a: ROUGE-1 against training steps (code)", "code",
         (Row("LoRA", "lora"), Row("Pen2Sword", "pen2sword")), kind="curve", paper_source="figure2a"),
    Spec("figure2b", "Figure 2b: ROUGE-1 against training steps (math)", "math",
         (Row("LoRA", "lora"), Row("Pen2Sword", "pen2sword")), kind="curve", paper_source="figure2b"),
    Spec("figure4", "Figure 4: dimension ratio of the expert (code, ROUGE-1)", "code",
         (Row("LoRA", "lora"), Row("Pen2Sword, DR 100%", "pen2sword", ("model.expert=dr100-expert",)),
          Row("Pen2Sword, DR 80%", "pen2sword", ("model.expert=chat-expert",)),
          Row("Pen2Sword, DR 67%", "pen2sword", ("model.expert=dr67-expert",))), kind="curve",
         paper_source="figure4", note="built-in stand-ins: DR 100% = the target's instruct model, 80% = the small "
                                     "chat expert, 67% = the narrower chat expert (same data, width only differs)"),
    Spec("figure5", "Figure 5: fusion ratio α (code, ROUGE-1)", "code",
         (Row("LoRA", "lora"), *[Row(f"Pen2Sword α={a}", "pen2sword", (f"pen2sword.alpha={a}",))
                                 for a in (0.25, 0.5, 0.75)]), kind="curve", paper_source="figure5"),
    Spec("figure6a", "Figure 6: ROUGE-2, ROUGE-L and eval loss (code)", "code",
         (Row("LoRA", "lora"), Row("Pen2Sword", "pen2sword")), kind="curve", paper_source="figure6",
         curve_metrics=("rouge2", "rougeL", "eval_loss")),
    Spec("figure6b", "Figure 6: ROUGE-2, ROUGE-L and eval loss (math)", "math",
         (Row("LoRA", "lora"), Row("Pen2Sword", "pen2sword")), kind="curve", paper_source="figure6",
         curve_metrics=("rouge2", "rougeL", "eval_loss")),
    Spec("figure7a", "Figure 7a: Pen2Sword, Weak2Strong and both (code, HumanEval at checkpoints)", "code",
         (Row("Pen2Sword", "pen2sword"), Row("Weak2Strong", "weak2strong"),
          Row("Pen2Sword + Weak2Strong", "pen2sword+weak2strong")), kind="curve", paper_source="figure7a",
         curve_metrics=("humaneval",)),
    Spec("figure7b", "Figure 7b: Pen2Sword, ProxyTuning and both (code, HumanEval at checkpoints)", "code",
         (Row("Pen2Sword", "pen2sword"), Row("ProxyTuning", "proxytuning"),
          Row("Pen2Sword + ProxyTuning", "pen2sword+proxytuning")), kind="curve", paper_source="figure7b",
         curve_metrics=("humaneval",)),
    Spec("figure2c", "Figure 2c: minutes per 1k training steps and HumanEval (code)", "code",
         (Row("LoRA", "lora"), Row("Weak2Strong", "weak2strong"), Row("ProxyTuning", "proxytuning"),
          Row("Pen2Sword", "pen2sword")), kind="cost", paper_source="figure2c"),
)}
GROUPS = {"table1": ("table1",), "table2": ("table2",), "table3": ("table3",), "table5": ("table5",),
          "figure2": ("figure2a", "figure2b", "figure2c"), "figure4": ("figure4",), "figure5": ("figure5",),
          "figure6": ("figure6a", "figure6b"), "figure7": ("figure7a", "figure7b")}


@dataclass(frozen=True)
class NeededRun:
    spec: str
    row: Row
    seed: int
    config: RunConfig

    @property
    def run_id(self) -> str:
        return self.config.run_id()

    def command(self, scale: str, overrides: tuple[str, ...] = ()) -> str:
        parts = ["harness", "run", "--method", self.row.method, "--suite", self.config.suite, "--scale", scale,
                 "--seed", str(self.seed), *self.row.overrides, *overrides]
        return " ".join(shlex.quote(p) for p in parts)


def needed_runs(spec: Spec, *, scale: str, seeds: tuple[int, ...] = (0,),
                overrides: tuple[str, ...] = ()) -> list[NeededRun]:
    """Every run ``spec`` needs at ``scale``, as the configs ``harness run`` would resolve."""
    out = []
    for row in spec.rows:
        for suite in spec.suites:
            for seed in seeds:
                config = resolve_config(given={"method": row.method, "suite": suite, "scale": scale, "seed": seed},
                                        overrides=[*spec.overrides, *row.overrides, *overrides],
                                        method_overrides_for=method_overrides)
                out.append(NeededRun(spec.name, row, seed, config))
    return out


def resolve_names(names: list[str]) -> list[Spec]:
    """``table2``, ``figure2`` (its panels), ``all``, ... → specs, with a clear error for others."""
    chosen: list[str] = []
    for name in names:
        key = name.lower().replace(" ", "")
        if key == "all":
            chosen += list(SPECS)
        elif key in GROUPS:
            chosen += GROUPS[key]
        elif key in SPECS:
            chosen.append(key)
        else:
            raise ValueError(f"unknown table or figure {name!r}; known: {', '.join([*GROUPS, *SPECS])}, all")
    return [SPECS[n] for n in dict.fromkeys(chosen)]
