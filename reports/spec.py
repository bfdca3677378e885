"""What a table or figure needs: suite, methods (by the rows the paper prints), steps, seeds and metrics
(HELM's schema-then-summarize: the spec first, then the rendering). Each of the paper's tables and figures
declares its spec in its own module (``reports/tables/``), beside its renderer and its claims.

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
    curve_metrics: tuple[str, ...] = ("rouge1",)  # a figure's panels (render_curves): validation metrics or benchmarks
    note: str = ""  # printed under the table; a table without rows (no runs: Table 3, 6) says here where it comes from
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
                     "eval.benchmark_limit", "eval.benchmark_max_new_tokens", "eval.fewshot", "model.dtype")


def differences(specs: list[Spec], scale: str, seeds: dict[str, int] | None = None,
                overrides: tuple[str, ...] = ()) -> list[str]:
    """Every way the runs of ``specs`` at ``scale`` (with ``overrides``) differ from the paper's: settings away from
    the paper preset, the stand-in models, each spec's own differences, and seed counts below the paper's
    (``seeds``: spec name → how many seeds are used). ``reproduce --dry-run`` prints them; report.md's head lists
    them."""
    out = []
    ours, paper = (resolve_config(given={"scale": s}, overrides=list(o)).to_dict()
                   for s, o in ((scale, overrides), ("paper", ())))

    def settings(key: str) -> list[tuple[str, object, object]]:
        """(key, ours, paper); a map's entries each ("eval.fewshot.mmlu", 0, 5: an absent entry is 0)."""
        section, name = key.split(".")
        a, b = ours[section][name], paper[section][name]
        if isinstance(a, dict) and isinstance(b, dict):
            return [(f"{key}.{k}", a.get(k, 0), b.get(k, 0)) for k in sorted({*a, *b})]
        return [(key, a, b)]

    changed = [f"{key} {a} (paper {b})" for setting in COMPARED_SETTINGS for key, a, b in settings(setting) if a != b]
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
