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
    metric: str  # a key of reports.collect.run_values (e.g. "rouge1", "trainable_percent")
    digits: int = 3


@dataclass(frozen=True)
class Spec:
    name: str  # "table2", "figure2a", ...
    title: str
    suite: str
    rows: tuple[Row, ...]
    columns: tuple[Column, ...] = ()
    paper_source: str | None = None  # the source key in paper_numbers.yaml
    kind: str = "table"  # or "curve" (a metric against steps) or "cost" (time per 1k steps)
    curve_metric: str = "rouge1"
    note: str = ""
    overrides: tuple[str, ...] = field(default=())  # for every row


ROUGE = (Column("ROUGE-1", "rouge1"), Column("ROUGE-2", "rouge2"), Column("ROUGE-L", "rougeL"))

SPECS: dict[str, Spec] = {s.name: s for s in (
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
    Spec("figure2c", "Figure 2c: minutes per 1k training steps and HumanEval (code)", "code",
         (Row("LoRA", "lora"), Row("Weak2Strong", "weak2strong"), Row("ProxyTuning", "proxytuning"),
          Row("Pen2Sword", "pen2sword")), kind="cost", paper_source="figure2c"),
)}
GROUPS = {"table2": ("table2",), "table5": ("table5",), "figure2": ("figure2a", "figure2b", "figure2c")}


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
        for seed in seeds:
            config = resolve_config(given={"method": row.method, "suite": spec.suite, "scale": scale, "seed": seed},
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
