"""What each of the paper's tables and figures needs: suite, methods (by the rows the paper prints),
steps, seeds and metrics (HELM's schema-then-summarize: the spec first, then the rendering).

A spec turns into the exact run configs it needs (:func:`needed_runs`): the same resolution as
``harness run`` (scale preset < method variant < overrides), so a needed run is identified by its run
id, and a missing one comes with the exact ``harness run ...`` command that produces it. A row may run once
per expert (:attr:`Row.experts`: Table 1's best of three, Figure 7's average of three), a spec says how many
seeds the paper averaged (:attr:`Spec.seeds`), and :func:`differences` lists where ours departs from the paper
at a scale. Rows name built-in roles (``chat-expert``, ``dr67-target``, ...), which resolve to the paper's own
models at scale paper, so one row's overrides hold at every scale.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from harness.config import RunConfig, resolve_config
from harness.method import method_overrides
from harness.models import MODELS
from harness.registry import SUITES
from harness.zoo.recipe import ROLE_BY_NAME

import harness.suites  # noqa: F401  # registers the suites whose own experts expert_override reads

# What a row may need beyond a CPU and the built-in model family: the planner lists such a row as
# "not runnable here: <why>" (:func:`why_not_runnable`) instead of planning a run that would fail. A row naming a
# built-in model with no paper counterpart needs no key: at scale paper it is found not runnable by that name.
NEEDS = {
    "cuda": "a CUDA GPU with bitsandbytes (QLoRA's 4-bit kernels)",
    "paper-models": "the paper's hub models (scale paper): the built-in family has no stand-in for them",
}
OVER_EXPERTS = {
    "mean": "the row's cells average its runs over every expert and seed (Figure 7: A.5 averages its three experts)",
    "best": "each cell is the best expert's mean over seeds, and names that expert (Table 1: A.2's best of DPF's top "
            "three)",
}


def expert_name(expert: str) -> str:
    """The paper's name of an expert: a built-in role's ``stands_in_for``, a hub model's own name."""
    if expert in ROLE_BY_NAME:
        return ROLE_BY_NAME[expert].stands_in_for
    return MODELS.get(expert).stands_in_for if expert in MODELS else expert


@dataclass(frozen=True)
class Row:
    label: str  # the row as the paper prints it (reports/paper_numbers.yaml)
    method: str  # the registered method
    overrides: tuple[str, ...] = ()  # key=value on top of the method's own
    suites: tuple[str, ...] = ()  # the suites this row runs on (default: the spec's); Table 4's code-only experts
    needs: str | None = None  # a key of NEEDS; None: runs on any machine at any scale
    # The row's runs, once per expert (each adds model.expert=<expert>), collected under the one label; each
    # expert's runs are also the sub-row :meth:`expert_label`. ``over_experts`` (a key of OVER_EXPERTS) says how
    # the row's cells come from them.
    experts: tuple[str, ...] = ()
    over_experts: str = "mean"

    def __post_init__(self) -> None:
        if self.needs is not None and self.needs not in NEEDS:
            raise ValueError(f"row {self.label!r}: needs={self.needs!r} is not one of: "
                             + "; ".join(f"{key} ({what})" for key, what in NEEDS.items()))
        if self.over_experts not in OVER_EXPERTS:
            raise ValueError(f"row {self.label!r}: over_experts={self.over_experts!r} is not one of: "
                             + "; ".join(f"{key} ({what})" for key, what in OVER_EXPERTS.items()))
        if self.experts and any(o.split("=", 1)[0].strip() in ("model.expert", "expert") for o in self.overrides):
            raise ValueError(f"row {self.label!r} names its experts twice: in experts={self.experts} and in its "
                             "overrides; keep the experts only")
        if self.over_experts == "best" and len(self.experts) < 2:
            raise ValueError(f"row {self.label!r}: over_experts='best' picks among experts; give two or more")

    def expert_label(self, expert: str) -> str:
        """The label of ``expert``'s runs of this row, e.g. "Vanilla Model + LoRA + Pen2Sword (Llama2-7B-Chat)"."""
        return f"{self.label} ({expert_name(expert)})"


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
    seeds: int = 1  # how many runs (seeds 0..seeds-1) the paper averaged per cell: 3 for Table 4 and Figure 7
    # Where ours differs from the paper (:func:`differences`): at every scale, and at the stand-in scales (nano,
    # micro) only. Each a sentence a reader of the report can check against the paper.
    differences: tuple[str, ...] = ()
    stand_in_differences: tuple[str, ...] = ()

    @property
    def suites(self) -> tuple[str, ...]:
        return (self.suite,) if isinstance(self.suite, str) else tuple(self.suite)

    def seed_list(self, count: int | None = None) -> tuple[int, ...]:
        """Seeds 0..count-1; ``count`` None: the paper's count for this table or figure (:attr:`seeds`)."""
        return tuple(range(self.seeds if count is None else count))


ROUGE = (Column("ROUGE-1", "rouge1"), Column("ROUGE-2", "rouge2"), Column("ROUGE-L", "rougeL"))
BOTH = ("code", "math")

# Table 4: the paper's experts per benchmark (built-in stand-ins; the paper's names are the roles'
# stands_in_for), and its checkpoints, which map in order onto a run's training.checkpoint_steps.
TABLE4_EXPERTS = {"code": ("chat-expert", "code-expert", "code-instruct-expert", "vicuna-v1.3-expert",
                           "vicuna-v1.5-expert"),
                  "math": ("chat-expert", "vicuna-v1.3-expert", "vicuna-v1.5-expert")}
TABLE4_BENCHMARKS = (("HumanEval", "humaneval", "code"), ("MATH", "math-l5", "math"))
PAPER_STEPS = ("1k", "2k", "3k", "5k")
# Table 1's experts for Weak2Strong, ProxyTuning and Pen2Sword: DPF's top three (A.2: "Llama2-7B-Chat, CodeLlama-7B,
# and Vicuna-7B-v1.3. The reported results correspond to the highest-performing model among them").
TABLE1_EXPERTS = ("chat-expert", "code-expert", "vicuna-v1.3-expert")
# Figure 7's experts (A.5: "Llama2-7B-Chat, Vicuna-7B-v1.5, and CodeLlama-7B-Instruct", each run three times).
FIGURE7_EXPERTS = ("chat-expert", "vicuna-v1.5-expert", "code-instruct-expert")
# Figure 5's pair (caption: "The small model is Vicuna-7B-v1.5 and the large model is Vicuna-13B-v1.3").
FIGURE5_TARGET = "model.target=alpha-target"
FIGURE5_PAIR = (FIGURE5_TARGET, "model.expert=vicuna-v1.5-expert")
# LoRA's q_proj is Baichuan2's W_pack there (harness.engine.adapters.FAMILY_TARGETS), so no override of the modules.
BAICHUAN_TARGETS = ("model.target=baichuan2-13b-base",)


def _bench(label: str, benchmark: str, suites: tuple[str, ...]) -> tuple[Column, Column]:
    """A Table 1 column (accuracy ×100) and its continuous companion (bits per byte of the reference)."""
    return (Column(label, "score", 1, benchmark, suites, percent=True),
            Column(f"{label} (bits/byte)", "bits_per_byte", 3, benchmark, suites))


def expert_override(expert: str | None, suite: str) -> tuple[str, ...]:
    """``model.expert=<expert>``, or nothing where ``expert`` is ``suite``'s own expert at every scale (the code
    suite's CodeLlama-7B stand-in): such a run is the suite's default run, shared with every table that names no
    expert (Table 1, 4 and Figure 2 share their code-suite Pen2Sword run)."""
    if expert is None:
        return ()
    own = SUITES.get(suite).domain_expert or {}
    role = ROLE_BY_NAME.get(expert)
    if role is not None and own.get("nano") == own.get("micro") == expert and own.get("paper") == role.paper_model:
        return ()
    return (f"model.expert={expert}",)


def _table4_rows() -> tuple[Row, ...]:
    """Vanilla, LoRA, then Weak2Strong, ProxyTuning and Pen2Sword once per expert, as the paper prints them.
    ProxyTuning's anti-expert is each expert's untuned base (methods.proxytuning.anti_expert_for)."""
    rows = [Row("Vanilla Model", "vanilla"), Row("Vanilla Model + LoRA", "lora")]
    for method, name in (("weak2strong", "Weak2Strong"), ("proxytuning", "ProxyTuning"), ("pen2sword", "Pen2Sword")):
        for expert in TABLE4_EXPERTS["code"]:
            suites = tuple(s for s in BOTH if expert in TABLE4_EXPERTS[s])
            overrides = expert_override(expert, suites[0]) if len(suites) == 1 else (f"model.expert={expert}",)
            rows.append(Row(f"Vanilla Model + LoRA + {name} ({expert_name(expert)})", method, overrides, suites))
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


def _figure7_rows(other: str, method: str) -> tuple[Row, ...]:
    return (Row("Pen2Sword", "pen2sword", experts=FIGURE7_EXPERTS), Row(other, method, experts=FIGURE7_EXPERTS),
            Row(f"Pen2Sword + {other}", f"pen2sword+{method}", experts=FIGURE7_EXPERTS))


FIGURE7_NOTE = ("each row averages its runs over the paper's three experts (Llama2-7B-Chat, Vicuna-7B-v1.5, "
                "CodeLlama-7B-Instruct; stand-ins chat-expert, vicuna-v1.5-expert, code-instruct-expert) and three "
                "seeds each, as A.5 does")

SPECS: dict[str, Spec] = {s.name: s for s in (
    Spec("table1", "Table 1: main comparison (accuracy %, change against the Vanilla Model)", BOTH,
         (Row("Vanilla Model", "vanilla"), Row("Vanilla Model + Instruction-tuned", "instruction-tuned"),
          Row("Vanilla Model + LoRA", "lora"),
          Row("Vanilla Model + LoRA + Weak2Strong", "weak2strong", experts=TABLE1_EXPERTS, over_experts="best"),
          Row("Vanilla Model + LoRA + ProxyTuning", "proxytuning", experts=TABLE1_EXPERTS, over_experts="best"),
          Row("Vanilla Model + LoRA + Pen2Sword", "pen2sword", experts=TABLE1_EXPERTS, over_experts="best")),
         (*_bench("Code Ability / HumanEval", "humaneval", ("code",)),
          *_bench("Code Ability / CS", "mmlu-cs", ("code",)),
          *_bench("Math Ability / MATH", "math-l5", ("math",)),
          *_bench("Math Ability / Mathematics", "mmlu-mathematics", ("math",)),
          *_bench("Specialized Adaptation / Physics", "mmlu-physics", BOTH),
          *_bench("Specialized Adaptation / Politics", "mmlu-politics", BOTH),
          *_bench("General Ability / MMLU", "mmlu", BOTH)),
         paper_source="table1", change_against="Vanilla Model",
         note="scores at each run's best checkpoint (by validation ROUGE-1); Specialized and General columns average "
              "the code and math runs, as the paper's do; bits/byte is the reference answer's (lower is better); "
              "Weak2Strong, ProxyTuning and Pen2Sword run with each of DPF's top three experts (Llama2-7B-Chat, "
              "CodeLlama-7B, Vicuna-7B-v1.3) and each cell is the best expert's, named after 'from'",
         differences=(
             "Table 1's experts are DPF's top three for code (Table 3); the paper ranks no candidates for math, so its "
             "math cells are the best of the same three here",
             "Table 1 takes the best expert per cell (the paper: 'the highest-performing model among them', not saying "
             "per cell or per row); a bits/byte cell follows the expert of its accuracy cell",
             "Table 1's ProxyTuning HumanEval 18.9 and Pen2Sword 19.9 appear in the paper's Table 4 only for "
             "CodeLlama-7B-Instruct (1k) and Vicuna-7B-v1.5 (2k), experts outside the three the paper names for "
             "Table 1")),
    Spec("table3", "Table 3: DPF scores of the candidate experts (code)", "code", (), kind="dpf",
         paper_source="table3", note="from `harness dpf --suite code` (results/dpf/); the paper's judge is GPT-4o",
         differences=("Table 3 is ranked by `harness dpf`'s judge: the paper's is GPT-4o "
                      "(pen2sword.dpf_judge=openai:gpt-4o); the offline judges rank by reference ROUGE-L or bits "
                      "per byte",)),
    Spec("table4", "Table 4: HumanEval and MATH at each checkpoint, per expert (accuracy %, change against the "
                   "Vanilla Model)", BOTH, _table4_rows(), _table4_columns(), paper_source="table4", kind="steps",
         change_against="Vanilla Model", seeds=3,
         note="the paper's step=1k/2k/3k/5k are each run's training.checkpoint_steps in order (micro 100/200/300/500; "
              "nano has three, so no 5k); the Vanilla Model does not train: its step-0 score stands for every step, "
              "as in the paper; after ';' the bits per byte of the reference answer (lower is better); experts are "
              "the built-in stand-ins (chat-expert, code-expert, code-instruct-expert, vicuna-v1.3-expert, "
              "vicuna-v1.5-expert) at nano and micro; ProxyTuning's anti-expert is each expert's untuned base "
              "(`harness reproduce --dry-run` names it)",
         stand_in_differences=(
             "Table 4's two Vicuna stand-ins are tuned from one base (small-base-b), so both get it as ProxyTuning's "
             "anti-expert; the paper's come from two (Vicuna-7B-v1.3 from LLaMA-7B, v1.5 from Llama-2-7B)",)),
    Spec("table2", "Table 2: ablations (code)", "code",
         (Row("Pen2Sword", "pen2sword"), Row("w/o DPF Selection", "pen2sword-no-dpf"),
          Row("w/o Expansion", "pen2sword-no-expansion"), Row("w/o Fusion", "pen2sword-no-fusion"),
          Row("w/o Embedding Training", "pen2sword-f")),
         ROUGE, paper_source="table2", note="ROUGE at each run's last evaluation (training.max_steps)",
         differences=("Table 2 is read at each run's last evaluation (training.max_steps), the paper's at step 6k",)),
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
              "of threads is near 1 (an idle machine)",
         differences=("Table 5's GPU columns come from this machine's GPU (the paper's: an NVIDIA A800 80GB), and on a "
                      "CPU run peak RSS while training stands in for GPU memory",
                      "Table 5's LoRA trains the embedding beside its adapters, as the paper's setup says, so its "
                      "trainable share exceeds the paper's 1.28%")),
    Spec("table6", "Table 6: GPT-4o scores at 0 steps on larger and newer models (AlpacaEval, MedQuAD)", (), (),
         kind="paper-only", paper_source="table6",
         note="no runs possible yet: needs an LLM-judge benchmark (AlpacaEval, MedQuAD) the harness does not have",
         differences=("Table 6 is not reproduced: it needs an LLM-judge benchmark (AlpacaEval, MedQuAD) the harness "
                      "does not have",)),
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
              "on Baichuan2 adapts W_pack, its packed attention weights, where Llama adapts q_proj",
         stand_in_differences=("Figure 3b's Vicuna and Baichuan2 rows need the paper's models: the built-in family has "
                               "no stand-in for a second target family, so they do not run at nano or micro",)),
    Spec("figure2a", "Figure 2a: ROUGE-1 against training steps (code)", "code",
         (Row("LoRA", "lora"), Row("Pen2Sword", "pen2sword")), kind="curve", paper_source="figure2a"),
    Spec("figure2b", "Figure 2b: ROUGE-1 against training steps (math)", "math",
         (Row("LoRA", "lora"), Row("Pen2Sword", "pen2sword")), kind="curve", paper_source="figure2b"),
    Spec("figure4", "Figure 4: dimension ratio of the expert (code, ROUGE-1)", "code",
         (Row("LoRA, DR 100% target", "lora", ("model.target=dr100-target",)),
          Row("Pen2Sword, DR 100%", "pen2sword", ("model.target=dr100-target", "model.expert=dr100-expert")),
          Row("LoRA, DR 80% target", "lora"),
          Row("Pen2Sword, DR 80%", "pen2sword", ("model.expert=chat-expert",)),
          Row("LoRA, DR 67% target", "lora", ("model.target=dr67-target",)),
          Row("Pen2Sword, DR 67%", "pen2sword", ("model.target=dr67-target", "model.expert=dr67-expert"))),
         kind="curve", paper_source="figure4",
         note="each dimension ratio (expert hidden size / target hidden size) beside LoRA on its own target: DR 100% "
              "Vicuna-7B-v1.5 → Vicuna-7B-v1.5 (4096 / 4096), DR 80% Llama2-7B-Chat → Llama2-13B-Base "
              "(4096 / 5120), DR 67% Llama3.2-1B-Instruct → Llama3.2-3B (2048 / 3072); built-in stand-ins "
              "dr100-expert → dr100-target, chat-expert → target-base, dr67-expert → dr67-target (micro 320 / 320, "
              "256 / 320, 216 / 320)",
         differences=(
             "Figure 4's DR 67% target: the caption names Llama3.2-1B-Base (a 1B expert onto it is DR 100%), the text "
             "'1B → 3B'; ours follows the ratio: Llama-3.2-3B (2048 / 3072 = 67%)",
             "Figure 4's DR 80% expert is not named in the paper; ours is Llama2-7B-Chat (chat-expert) onto the main "
             "target, Llama2-13B-Base"),
         stand_in_differences=(
             "Figure 4's DR 100% pair is one model onto itself in the paper (Vicuna-7B-v1.5 → Vicuna-7B-v1.5, where "
             "the fusion gives back the target's own embedding); the stand-ins are two models of one width, the "
             "instruction-tuned target (dr100-expert) onto the target base (dr100-target), 320 / 320",
             "Figure 4's DR 67% stand-in ratio is 216 / 320 = 67.5% (the paper's 2048 / 3072 = 66.7%), its expert "
             "trained on the same data as the DR 80% stand-in (width only differs), where the paper's DR 67% pair "
             "is another family (Llama-3.2)",
             "Figure 4's three targets are one checkpoint (target-base) at nano and micro, so the three LoRA rows "
             "train the same model under three names")),
    Spec("figure5", "Figure 5: fusion ratio α (code, ROUGE-1)", "code",
         (Row("LoRA", "lora", (FIGURE5_TARGET,)),
          *[Row(f"Pen2Sword α={a}", "pen2sword", (f"pen2sword.alpha={a}", *FIGURE5_PAIR)) for a in (0.25, 0.5, 0.75)]),
         kind="curve", paper_source="figure5",
         note="Vicuna-7B-v1.5 → Vicuna-13B-v1.3 (4096 / 5120), LoRA on the same target; built-in stand-ins "
              "vicuna-v1.5-expert → alpha-target (the instruction-tuned target, 256 / 320)",
         stand_in_differences=(
             "Figure 5's target Vicuna-13B-v1.3 stands in as the instruction-tuned target (alpha-target = "
             "target-instruct): the family's only instruction-tuned model of the target's width, and of another "
             "lineage than the Vicuna-7B-v1.5 stand-in (small-base-b), as Vicuna-13B-v1.3 (from LLaMA-13B) is to "
             "Vicuna-7B-v1.5 (from Llama-2-7B); it is Table 1's 'Instruction-tuned' model too",)),
    Spec("figure6a", "Figure 6: ROUGE-2, ROUGE-L and eval loss (code)", "code",
         (Row("LoRA", "lora"), Row("Pen2Sword", "pen2sword")), kind="curve", paper_source="figure6",
         curve_metrics=("rouge2", "rougeL", "eval_loss")),
    Spec("figure6b", "Figure 6: ROUGE-2, ROUGE-L and eval loss (math)", "math",
         (Row("LoRA", "lora"), Row("Pen2Sword", "pen2sword")), kind="curve", paper_source="figure6",
         curve_metrics=("rouge2", "rougeL", "eval_loss")),
    Spec("figure7a", "Figure 7a: Pen2Sword, Weak2Strong and both (code, HumanEval at checkpoints)", "code",
         _figure7_rows("Weak2Strong", "weak2strong"), kind="curve", paper_source="figure7a",
         curve_metrics=("humaneval",), seeds=3, note=FIGURE7_NOTE),
    Spec("figure7b", "Figure 7b: Pen2Sword, ProxyTuning and both (code, HumanEval at checkpoints)", "code",
         _figure7_rows("ProxyTuning", "proxytuning"), kind="curve", paper_source="figure7b",
         curve_metrics=("humaneval",), seeds=3,
         note=f"{FIGURE7_NOTE}; ProxyTuning's anti-expert is each expert's untuned base (Llama-2-7B, Llama-2-7B, "
              "CodeLlama-7B)"),
    Spec("figure2c", "Figure 2c: minutes per 1k training steps and HumanEval (code)", "code",
         (Row("LoRA", "lora"), Row("Weak2Strong", "weak2strong"), Row("ProxyTuning", "proxytuning"),
          Row("Pen2Sword", "pen2sword")), kind="cost", paper_source="figure2c",
         note="minutes are each run's wall time less model building and benchmarks, validation included: compare "
              "runs made on the same otherwise idle machine; `pytest -m perf tests/perf/test_bench_methods.py` "
              "measures the four methods in one session",
         differences=("Figure 2c's minutes are this machine's (the paper's: an NVIDIA A800)",)),
)}
GROUPS = {"table1": ("table1",), "table2": ("table2",), "table3": ("table3",), "table4": ("table4",),
          "table5": ("table5",), "table6": ("table6",), "figure2": ("figure2a", "figure2b", "figure2c"),
          "figure3": ("figure3a", "figure3b"), "figure4": ("figure4",), "figure5": ("figure5",),
          "figure6": ("figure6a", "figure6b"), "figure7": ("figure7a", "figure7b")}


@dataclass(frozen=True)
class NeededRun:
    spec: str
    row: Row  # the spec's row, as printed; a row over experts has one run per expert (``expert``)
    seed: int
    config: RunConfig
    not_runnable: str | None = None  # why this machine or scale cannot make the run (None: it can)
    expert: str | None = None  # the expert of ``row.experts`` this run is for
    overrides: tuple[str, ...] = ()  # the run's own key=value: the spec's, the row's and its expert's

    @property
    def run_id(self) -> str:
        return self.config.run_id()

    @property
    def label(self) -> str:
        """The row, or for a row over experts this run's expert sub-row ("... + Pen2Sword (Llama2-7B-Chat)")."""
        return self.row.label if self.expert is None else self.row.expert_label(self.expert)

    def command(self, scale: str, overrides: tuple[str, ...] = ()) -> str:
        parts = ["harness", "run", "--method", self.row.method, "--suite", self.config.suite, "--scale", scale,
                 "--seed", str(self.seed), *self.overrides, *overrides]
        return " ".join(shlex.quote(p) for p in parts)

    def models(self) -> dict[str, str]:
        """The models the run's method loads, by role ("target", "expert", "anti_expert"), as registered names;
        from the registries alone (nothing is resolved, built or fetched; a DPF selection is not made)."""
        from harness.method import deferring_selections
        from harness.registry import METHODS, SUITES

        with deferring_selections():
            return METHODS.get(self.config.method).models(self.config, SUITES.get(self.config.suite))

    def models_note(self) -> str:
        """The models a reader of the plan cannot see in the command: for a run that loads an anti-expert
        (ProxyTuning and its combination) its expert and anti-expert, and at scale paper each built-in name with the
        hub model it stands for, e.g. "expert=vicuna-v1.3-expert (vicuna-7b-v1.3), anti_expert=llama-7b"; ""
        where there is none."""
        models = self.models()
        paper = self.config.scale == "paper"
        shown = []
        for role, name in models.items():
            stand_in = ROLE_BY_NAME.get(name)
            counterpart = stand_in.paper_model if paper and stand_in is not None else None
            if ("anti_expert" in models and role != "target") or counterpart:
                shown.append(f"{role}={name}" + (f" ({counterpart})" if counterpart else ""))
        return ", ".join(shown)


def needed_runs(spec: Spec, *, scale: str, seeds: tuple[int, ...] = (0,),
                overrides: tuple[str, ...] = ()) -> list[NeededRun]:
    """Every run ``spec`` needs at ``scale``, as the configs ``harness run`` would resolve (no model is loaded
    or looked up). A row over experts needs its runs once per expert. ``seeds``: :meth:`Spec.seed_list` gives
    the paper's."""
    out = []
    for row in spec.rows:
        for expert in row.experts or (None,):
            why = why_not_runnable(row, scale, expert)
            for suite in row.suites or spec.suites:
                own = (*spec.overrides, *row.overrides, *expert_override(expert, suite))
                for seed in seeds:
                    config = resolve_config(given={"method": row.method, "suite": suite, "scale": scale, "seed": seed},
                                            overrides=[*own, *overrides], method_overrides_for=method_overrides)
                    out.append(NeededRun(spec.name, row, seed, config, why, expert, own))
    return out


def why_not_runnable(row: Row, scale: str, expert: str | None = None) -> str | None:
    """Why ``row`` (with ``expert``, for a row over experts) cannot run on this machine at ``scale`` (None: it can)."""
    if row.needs == "cuda":
        from harness.engine.adapters import AdapterUnavailableError, check_qlora_available

        try:
            check_qlora_available()  # the engine's own check: a run would stop with the same message
        except AdapterUnavailableError as err:
            return str(err)
        return None
    models = [o.split("=", 1)[1] for o in row.overrides if o.startswith("model.")] + ([expert] if expert else [])
    if row.needs == "paper-models" and scale != "paper":
        return (f"needs scale paper: the built-in {scale} family has no stand-in for the hub "
                f"model{'s' * (len(models) > 1)} {', '.join(models)}")
    lacking = [m for m in models if m in ROLE_BY_NAME and ROLE_BY_NAME[m].paper_model is None]
    if lacking and scale == "paper":
        return f"needs scale nano or micro: {', '.join(lacking)} is built-in only, with no paper-scale counterpart"
    return None


# Settings compared with the paper preset's (harness/presets/paper.yaml, Section 5.1) in :func:`differences`; the
# models are not among them: the stand-in sentences say which built-in model stands in for which.
COMPARED_SETTINGS = ("data.source", "data.n_validation", "data.max_prompt_tokens", "training.max_steps",
                     "training.lr", "training.warmup_steps", "training.batch_size", "training.seq_len",
                     "training.precision", "training.eval_every", "training.checkpoint_steps", "eval.max_new_tokens",
                     "eval.benchmark_limit", "eval.benchmark_max_new_tokens", "eval.mmlu_fewshot", "model.dtype")


def differences(specs: list[Spec], scale: str, seeds: dict[str, int] | None = None,
                overrides: tuple[str, ...] = ()) -> list[str]:
    """Every way the runs of ``specs`` at ``scale`` (with ``overrides``) differ from the paper's: settings away from
    the paper preset, the stand-in models, each spec's own differences, and seed counts below the paper's
    (``seeds``: spec name → how many seeds are used). ``reproduce --dry-run`` prints them; report.md's head lists
    them."""
    out = []
    ours, paper = (resolve_config(given={"scale": s}, overrides=list(o)).to_dict()
                   for s, o in ((scale, overrides), ("paper", ())))

    def value(config: dict, key: str):
        section, name = key.split(".")
        return config[section][name]

    changed = [f"{key} {value(ours, key)} (paper {value(paper, key)})" for key in COMPARED_SETTINGS
               if value(ours, key) != value(paper, key)]
    if changed:
        out.append("settings away from the paper's (Section 5.1, harness/presets/paper.yaml): " + "; ".join(changed))
    stand_ins = scale != "paper"
    if stand_ins:
        out.append(f"models: the built-in {scale} family stands in for the paper's (`harness zoo list` names each "
                   "role's paper model), far smaller, with the paper's width ratios, trained on local text; the "
                   "fine-tuning sets are local stand-ins for evol-codealpaca-v1 and MetaMathQA")
    for spec in specs:
        out += [*spec.differences, *(spec.stand_in_differences if stand_ins else ())]
        used = (seeds or {}).get(spec.name)
        if used and used < spec.seeds:
            out.append(f"{spec.name}: {used} seed{'s' * (used != 1)} per cell, the paper averaged {spec.seeds} runs")
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
