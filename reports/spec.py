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
from harness.zoo.recipe import ROLE_BY_NAME

# What a row may need beyond a CPU and the built-in model family: the planner lists such a row as
# "not runnable here: <why>" (:func:`why_not_runnable`) instead of planning a run that would fail.
NEEDS = {
    "cuda": "a CUDA GPU with bitsandbytes (QLoRA's 4-bit kernels)",
    "paper-models": "the paper's hub models (scale paper): the built-in family has no stand-in for them",
    "built-in-models": "a built-in model with no paper-scale counterpart (scale nano or micro)",
}


@dataclass(frozen=True)
class Row:
    label: str  # the row as the paper prints it (reports/paper_numbers.yaml)
    method: str  # the registered method
    overrides: tuple[str, ...] = ()  # key=value on top of the method's own
    suites: tuple[str, ...] = ()  # the suites this row runs on (default: the spec's); Table 4's code-only experts
    needs: str | None = None  # a key of NEEDS; None: runs on any machine at any scale

    def __post_init__(self) -> None:
        if self.needs is not None and self.needs not in NEEDS:
            raise ValueError(f"row {self.label!r}: needs={self.needs!r} is not one of: "
                             + "; ".join(f"{key} ({what})" for key, what in NEEDS.items()))


@dataclass(frozen=True)
class Column:
    label: str  # the column as the paper prints it
    metric: str  # a key of reports.collect.run_values (e.g. "rouge1"), or with ``benchmark``: score | bits_per_byte
    digits: int = 3
    benchmark: str | None = None  # a benchmark scored at the run's best step (Table 1)
    suites: tuple[str, ...] = ()  # runs of these suites feed the column (default: the spec's suites), averaged
    percent: bool = False  # shown ×100, as the paper prints accuracies
    # With ``benchmark``: scored at the run's n-th ``training.checkpoint_steps`` instead of its best step
    # (Table 4's step=1k/2k/3k/5k are the 0th..3rd); a run that does not train stands at its step 0 for all.
    checkpoint: int | None = None


@dataclass(frozen=True)
class Spec:
    name: str  # "table2", "figure2a", ...
    title: str
    suite: str | tuple[str, ...]  # the suite(s) every row is run on
    rows: tuple[Row, ...]
    columns: tuple[Column, ...] = ()
    paper_source: str | None = None  # the source key in paper_numbers.yaml
    # "table", "steps" (benchmarks at each checkpoint, Table 4), "curve" (metrics against steps), "cost" (time
    # per 1k steps), "dpf" (Table 3) or "paper-only" (the paper's numbers; ``note`` says why no run can match them)
    kind: str = "table"
    curve_metrics: tuple[str, ...] = ("rouge1",)  # one panel each: validation metrics or benchmark names
    note: str = ""
    overrides: tuple[str, ...] = field(default=())  # for every row
    change_against: str | None = None  # a row label: cells also show the % change against it (Table 1)

    @property
    def suites(self) -> tuple[str, ...]:
        return (self.suite,) if isinstance(self.suite, str) else tuple(self.suite)


ROUGE = (Column("ROUGE-1", "rouge1"), Column("ROUGE-2", "rouge2"), Column("ROUGE-L", "rougeL"))
BOTH = ("code", "math")

# Table 4: the paper's experts per benchmark (built-in stand-ins; the paper's names are the roles'
# stands_in_for), and its checkpoints, which map in order onto a run's training.checkpoint_steps.
TABLE4_EXPERTS = {"code": ("chat-expert", "code-expert", "code-instruct-expert", "vicuna-v1.3-expert",
                           "vicuna-v1.5-expert"),
                  "math": ("chat-expert", "vicuna-v1.3-expert", "vicuna-v1.5-expert")}
TABLE4_BENCHMARKS = (("HumanEval", "humaneval", "code"), ("MATH", "math-l5", "math"))
PAPER_STEPS = ("1k", "2k", "3k", "5k")
# The Vicuna stand-ins are built on small-base-b, so that is their untuned base: ProxyTuning's anti-expert.
CODE_SUITE_EXPERT = "code-expert"
VICUNA_EXPERTS = ("vicuna-v1.3-expert", "vicuna-v1.5-expert")
# LoRA's q_proj is Baichuan2's W_pack there (harness.engine.adapters.FAMILY_TARGETS), so no override of the modules.
BAICHUAN_TARGETS = ("model.target=baichuan2-13b-base",)


def _bench(label: str, benchmark: str, suites: tuple[str, ...]) -> tuple[Column, Column]:
    """A Table 1 column (accuracy ×100) and its continuous companion (bits per byte of the reference)."""
    return (Column(label, "score", 1, benchmark, suites, percent=True),
            Column(f"{label} (bits/byte)", "bits_per_byte", 3, benchmark, suites))


def _table4_rows() -> tuple[Row, ...]:
    """Vanilla, LoRA, then Weak2Strong, ProxyTuning and Pen2Sword once per expert, as the paper prints them."""
    rows = [Row("Vanilla Model", "vanilla"), Row("Vanilla Model + LoRA", "lora")]
    for method, name in (("weak2strong", "Weak2Strong"), ("proxytuning", "ProxyTuning"), ("pen2sword", "Pen2Sword")):
        for expert in TABLE4_EXPERTS["code"]:
            # The code suite's own expert is CodeLlama-7B's stand-in at every scale: no override, so these rows
            # share their runs with Table 1 and Figure 2.
            overrides, needs = (() if expert == CODE_SUITE_EXPERT else (f"model.expert={expert}",)), None
            if method == "proxytuning" and expert in VICUNA_EXPERTS:
                overrides, needs = (*overrides, "model.anti_expert=small-base-b"), "built-in-models"
            rows.append(Row(f"Vanilla Model + LoRA + {name} ({ROLE_BY_NAME[expert].stands_in_for})", method,
                            overrides, tuple(s for s in BOTH if expert in TABLE4_EXPERTS[s]), needs))
    return tuple(rows)


def _table4_columns() -> tuple[Column, ...]:
    """Per benchmark and paper step: the score (×100) and its bits-per-byte companion."""
    columns = []
    for label, benchmark, suite in TABLE4_BENCHMARKS:
        for index, step in enumerate(PAPER_STEPS):
            paper_label = f"{label} (\\uparrow) / step={step}"  # exactly as paper_numbers.yaml has it
            columns += [Column(paper_label, "score", 1, benchmark, (suite,), percent=True, checkpoint=index),
                        Column(f"{paper_label} (bits/byte)", "bits_per_byte", 3, benchmark, (suite,),
                               checkpoint=index)]
    return tuple(columns)


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
    Spec("table4", "Table 4: HumanEval and MATH at each checkpoint, per expert (accuracy %, change against the "
                   "Vanilla Model)", BOTH, _table4_rows(), _table4_columns(), paper_source="table4", kind="steps",
         change_against="Vanilla Model",
         note="the paper's step=1k/2k/3k/5k are each run's training.checkpoint_steps in order (micro 100/200/300/500; "
              "nano has three, so no 5k); the Vanilla Model does not train: its step-0 score stands for every step, "
              "as in the paper; after ';' the bits per byte of the reference answer (lower is better); experts are "
              "the built-in stand-ins (chat-expert, code-expert, code-instruct-expert, vicuna-v1.3-expert, "
              "vicuna-v1.5-expert); ProxyTuning's anti-expert for the Vicuna stand-ins is their untuned base, "
              "small-base-b, which has no paper-scale counterpart"),
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
          Column("Peak RSS in training (GB)", "rss_peak_gb", 2), Column("Minutes per 1k steps", "minutes_per_1k", 1),
          Column("CPU share of threads", "cpu_share", 2)),
         paper_source="table5",
         note="GPU columns are unavailable on CPU runs (peak RSS while training is shown instead); memory compares "
              "only between runs that each had a process of their own, minutes only between runs whose CPU share "
              "of threads is near 1 (an idle machine); LoRA trains the embedding "
              "beside its adapters here, as the paper's setup says, so its trainable share exceeds the paper's"),
    Spec("table6", "Table 6: GPT-4o scores at 0 steps on larger and newer models (AlpacaEval, MedQuAD)", (), (),
         kind="paper-only", paper_source="table6",
         note="no runs possible yet: needs an LLM-judge benchmark (AlpacaEval, MedQuAD) the harness does not have"),
    Spec("figure3a", "Figure 3a: Pen2Sword with QLoRA and DoRA (code, ROUGE-1)", "code",
         (Row("QLoRA", "qlora", needs="cuda"), Row("Pen2Sword + QLoRA", "pen2sword-qlora", needs="cuda"),
          Row("DoRA", "dora"), Row("Pen2Sword + DoRA", "pen2sword-dora")), kind="curve", paper_source="figure3a",
         note="the expert is the code suite's CodeLlama-7B stand-in (code-expert), as in the paper"),
    Spec("figure3b", "Figure 3b: LoRA and Pen2Sword on the Vicuna and Baichuan2 families (code, ROUGE-1)", "code",
         (Row("LoRA (Vicuna)", "lora", ("model.target=vicuna-13b-v1.5",), needs="paper-models"),
          Row("Pen2Sword (Vicuna)", "pen2sword", ("model.target=vicuna-13b-v1.5", "model.expert=vicuna-7b-v1.5"),
              needs="paper-models"),
          Row("LoRA (Baichuan2)", "lora", BAICHUAN_TARGETS, needs="paper-models"),
          Row("Pen2Sword (Baichuan2)", "pen2sword", (*BAICHUAN_TARGETS, "model.expert=baichuan2-7b-chat"),
              needs="paper-models")), kind="curve", paper_source="figure3b",
         note="targets Vicuna-13B-v1.5 and Baichuan2-13B-Base, experts Vicuna-7B-v1.5 and Baichuan2-7B-Chat; LoRA "
              "on Baichuan2 adapts W_pack, its packed attention weights, where Llama adapts q_proj"),
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
          Row("Pen2Sword", "pen2sword")), kind="cost", paper_source="figure2c",
         note="minutes are each run's wall time less model building and benchmarks, validation included: compare "
              "runs made on the same otherwise idle machine; `pytest -m perf tests/perf/test_bench_methods.py` "
              "measures the four methods in one session"),
)}
GROUPS = {"table1": ("table1",), "table2": ("table2",), "table3": ("table3",), "table4": ("table4",),
          "table5": ("table5",), "table6": ("table6",), "figure2": ("figure2a", "figure2b", "figure2c"),
          "figure3": ("figure3a", "figure3b"), "figure4": ("figure4",), "figure5": ("figure5",),
          "figure6": ("figure6a", "figure6b"), "figure7": ("figure7a", "figure7b")}


@dataclass(frozen=True)
class NeededRun:
    spec: str
    row: Row
    seed: int
    config: RunConfig
    not_runnable: str | None = None  # why this machine or scale cannot make the run (None: it can)

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
        why = why_not_runnable(row, scale)
        for suite in row.suites or spec.suites:
            for seed in seeds:
                config = resolve_config(given={"method": row.method, "suite": suite, "scale": scale, "seed": seed},
                                        overrides=[*spec.overrides, *row.overrides, *overrides],
                                        method_overrides_for=method_overrides)
                out.append(NeededRun(spec.name, row, seed, config, why))
    return out


def why_not_runnable(row: Row, scale: str) -> str | None:
    """Why ``row`` cannot run on this machine at ``scale`` (None: it can)."""
    if row.needs == "cuda":
        from harness.engine.adapters import AdapterUnavailableError, check_qlora_available

        try:
            check_qlora_available()  # the engine's own check: a run would stop with the same message
        except AdapterUnavailableError as err:
            return str(err)
        return None
    models = [o.split("=", 1)[1] for o in row.overrides if o.startswith("model.")]
    if row.needs == "paper-models" and scale != "paper":
        return (f"needs scale paper: the built-in {scale} family has no stand-in for the hub "
                f"model{'s' * (len(models) > 1)} {', '.join(models)}")
    if row.needs == "built-in-models" and scale == "paper":
        lacking = [m for m in models if m in ROLE_BY_NAME and ROLE_BY_NAME[m].paper_model is None]
        return f"needs scale nano or micro: {', '.join(lacking)} is built-in only, with no paper-scale counterpart"
    return None


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
