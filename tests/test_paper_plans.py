"""The paper's protocols as planned at scale paper: every table's and figure's rows name the expert, target and
anti-expert the paper's text names, with its dimension ratio, and their built-in stand-ins keep the ratios. Plans
only: no model is loaded, built or looked up on the hub. Also Table 1's best-of-three-experts frame on made-up
values, the seeds each table gets by default, and the differences from the paper the plan and report list."""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest

from harness.config import resolve_config
from harness.method import method_overrides
from harness.models import MODELS
from harness.zoo.recipe import MICRO, NANO, ROLE_BY_NAME
import reports.tables  # noqa: F401  # registers the paper's tables
from reports.collect import Found
from reports.registry import specs
from reports.spec import Row, differences, needed_runs

SPECS = specs()

# --- what the paper's text says (Section 5.1, A.2, A.5, the captions of Tables 1-5 and Figures 2-7) ------------

TARGET = "llama-2-13b"  # "Llama2-13B-Base is designated as the large target model"
CHAT, CODE, CODE_INSTRUCT = "llama-2-7b-chat", "codellama-7b", "codellama-7b-instruct"
VICUNA13, VICUNA15 = "vicuna-7b-v1.3", "vicuna-7b-v1.5"
SUITE_EXPERT = {"code": CODE, "math": VICUNA13}  # the one-expert results: Tables 2/5, Figure 3a; Table 1's MATH
# ProxyTuning's anti-expert: the untuned base of each expert.
UNTUNED = {CHAT: "llama-2-7b", CODE: "llama-2-7b", CODE_INSTRUCT: "codellama-7b", VICUNA15: "llama-2-7b",
           VICUNA13: "llama-7b"}
TABLE1_EXPERTS = (CHAT, CODE, VICUNA13)  # A.2: DPF's top three, "the highest-performing model among them"
FIGURE7_EXPERTS = (CHAT, VICUNA15, CODE_INSTRUCT)  # A.5
BY_PAPER_NAME = {"Llama2-7B-Chat": CHAT, "CodeLlama-7B": CODE, "CodeLlama-7B-Instruct": CODE_INSTRUCT,
                 "Vicuna-7B-v1.3": VICUNA13, "Vicuna-7B-v1.5": VICUNA15}
DEFAULT = "the suite's expert"  # the row names none: SUITE_EXPERT of the run's suite
RANDOM = "a random other candidate"  # w/o DPF Selection


def _row(target: str = TARGET, experts: tuple[str, ...] | str | None = None, ratio: float = 0.8) -> dict:
    return {"target": target, "experts": experts, "ratio": ratio}


def _expected() -> dict[tuple[str, str], dict]:
    """(spec, row label) → the target, the experts (None: the method uses none) and the dimension ratio (expert hidden
    size / target hidden size; 80% for 7B → 13B, Section 5.5) of that row, from the paper's text."""
    out: dict[tuple[str, str], dict] = {}
    for label, experts in (("Vanilla Model", None), ("Vanilla Model + LoRA", None),
                           ("Vanilla Model + LoRA + Weak2Strong", TABLE1_EXPERTS),
                           ("Vanilla Model + LoRA + ProxyTuning", TABLE1_EXPERTS),
                           ("Vanilla Model + LoRA + Pen2Sword", TABLE1_EXPERTS)):
        out["table1", label] = _row(experts=experts)
    out["table1", "Vanilla Model + Instruction-tuned"] = _row("llama-2-13b-chat")  # Table 1's caption
    # Table 2: "Using CodeLlama-7B as the expert model and Llama2-13B-Base as the target model".
    for label in ("Pen2Sword", "w/o Expansion", "w/o Fusion", "w/o Embedding Training"):
        out["table2", label] = _row(experts=(CODE,))
    out["table2", "w/o DPF Selection"] = _row(experts=RANDOM)
    out["table4", "Vanilla Model"] = out["table4", "Vanilla Model + LoRA"] = _row()
    for method in ("Weak2Strong", "ProxyTuning", "Pen2Sword"):
        for name, expert in BY_PAPER_NAME.items():
            out["table4", f"Vanilla Model + LoRA + {method} ({name})"] = _row(experts=(expert,))
    for label in ("Vanilla Model + FFT", "Vanilla Model + LoRA"):
        out["table5", label] = _row()
    for label in ("Vanilla Model + FFT + Pen2Sword", "Vanilla Model + LoRA + Pen2Sword-F",
                  "Vanilla Model + LoRA + Pen2Sword"):
        out["table5", label] = _row(experts=(CODE,))  # Table 5's Pen2Sword repeats Table 2's ROUGE-1 (0.745)
    for spec in ("figure2a", "figure2b", "figure6a", "figure6b"):
        out[spec, "LoRA"], out[spec, "Pen2Sword"] = _row(), _row(experts=DEFAULT)
    out["figure2c", "LoRA"] = _row()
    for label in ("Weak2Strong", "ProxyTuning", "Pen2Sword"):
        out["figure2c", label] = _row(experts=DEFAULT)
    # Figure 3a: "The small model is CodeLlama-7B"; 3b: Vicuna-7B-v1.5 and Baichuan2-7B-Chat onto their 13B.
    out["figure3a", "QLoRA"] = out["figure3a", "DoRA"] = _row()
    out["figure3a", "Pen2Sword + QLoRA"] = out["figure3a", "Pen2Sword + DoRA"] = _row(experts=(CODE,))
    out["figure3b", "LoRA (Vicuna)"] = _row("vicuna-13b-v1.5")
    out["figure3b", "Pen2Sword (Vicuna)"] = _row("vicuna-13b-v1.5", (VICUNA15,))
    out["figure3b", "LoRA (Baichuan2)"] = _row("baichuan2-13b-base")
    out["figure3b", "Pen2Sword (Baichuan2)"] = _row("baichuan2-13b-base", ("baichuan2-7b-chat",))
    # Figure 4: "When the DR is 100%, the small model is Vicuna-7B-v1.5 and the large model is Vicuna-7B-v1.5";
    # DR 67%: "Llama3.2-1B-Instruct" onto "1B -> 3B" (the text; the caption's Llama3.2-1B-Base would be DR 100%);
    # DR 80%: the main experiments' 7B -> 13B.
    out["figure4", "LoRA, DR 100% target"] = _row(VICUNA15)
    out["figure4", "Pen2Sword, DR 100%"] = _row(VICUNA15, (VICUNA15,), 1.0)
    out["figure4", "LoRA, DR 80% target"] = _row()
    out["figure4", "Pen2Sword, DR 80%"] = _row(experts=(CHAT,))
    out["figure4", "LoRA, DR 67% target"] = _row("llama-3.2-3b")
    out["figure4", "Pen2Sword, DR 67%"] = _row("llama-3.2-3b", ("llama-3.2-1b-instruct",), 2 / 3)
    # Figure 5: "The small model is Vicuna-7B-v1.5 and the large model is Vicuna-13B-v1.3".
    out["figure5", "LoRA"] = _row("vicuna-13b-v1.3")
    for alpha in (0.25, 0.5, 0.75):
        out["figure5", f"Pen2Sword α={alpha}"] = _row("vicuna-13b-v1.3", (VICUNA15,))
    for spec, other in (("figure7a", "Weak2Strong"), ("figure7b", "ProxyTuning")):
        for label in ("Pen2Sword", other, f"Pen2Sword + {other}"):
            out[spec, label] = _row(experts=FIGURE7_EXPERTS)
    return out


EXPECTED = _expected()
PLANNED = [s for s in SPECS.values() if s.rows]  # Table 3 (DPF's ranking) and Table 6 (the paper's numbers) have none


@pytest.fixture
def no_hub(monkeypatch):
    """Planning must not resolve a model: any attempt to reach the hub or build the family fails the test."""
    import harness.models

    def refuse(*args, **kwargs):
        raise AssertionError(f"planning tried to resolve a model: {args}")

    for name in ("_resolve_hub", "_resolve_zoo", "_resolve_path", "load_model", "load_tokenizer"):
        monkeypatch.setattr(harness.models, name, refuse)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", refuse)


def _paper_name(name: str) -> str:
    """The registered hub model a name stands for at scale paper."""
    role = ROLE_BY_NAME.get(name)
    return role.paper_model if role is not None else MODELS.canonical(name)


def _hidden(name: str, scale: str) -> int:
    return MODELS.get(_paper_name(name) if scale == "paper" else name).hidden_size


def test_every_row_at_paper_scale_trains_the_papers_models(no_hub):
    seen: dict[tuple[str, str], list] = defaultdict(list)
    for spec in PLANNED:
        for need in needed_runs(spec, scale="paper"):
            assert need.not_runnable is None or need.row.needs == "cuda", (spec.name, need.label, need.not_runnable)
            models = need.models()
            expected = EXPECTED[spec.name, need.row.label]
            target = _paper_name(models["target"])
            assert target == expected["target"], (spec.name, need.label)
            experts = expected["experts"]
            small = models.get("expert", models.get("weak"))  # Weak2Strong's expert is its weak supervisor
            if experts is None:
                assert small is None, (spec.name, need.label)
                seen[spec.name, need.row.label].append(None)
                continue
            expert = _paper_name(small)
            if experts == DEFAULT:
                assert expert == SUITE_EXPERT[need.config.suite], (spec.name, need.label)
            elif experts == RANDOM:
                assert expert != CODE and expert in need.config.pen2sword.candidates, (spec.name, need.label)
            else:
                assert expert in experts, (spec.name, need.label, expert)
            assert _hidden(expert, "paper") / MODELS.get(target).hidden_size == pytest.approx(expected["ratio"])
            if "anti_expert" in models:  # ProxyTuning: the expert's own untuned base
                assert _paper_name(models["anti_expert"]) == UNTUNED[expert], (spec.name, need.label)
            if need.expert is not None:  # a row over experts: its sub-row names the expert it ran
                assert need.label == f"{need.row.label} ({MODELS.get(expert).stands_in_for})"
            seen[spec.name, need.row.label].append((need.config.suite, expert))
    assert set(seen) == set(EXPECTED)  # every row planned, none the expected table lacks
    # Rows over experts run each of them on each of their suites.
    for (spec, label), expected in EXPECTED.items():
        if isinstance(expected["experts"], tuple) and len(expected["experts"]) > 1:
            suites = SPECS[spec].suites
            assert sorted(seen[spec, label]) == sorted((s, e) for s in suites for e in expected["experts"])


def test_table4_and_figure7_proxytuning_rows_pair_each_expert_with_its_untuned_base(no_hub):
    anti = {}
    for name in ("table4", "figure7b"):
        for need in needed_runs(SPECS[name], scale="paper"):
            if need.row.method in ("proxytuning", "pen2sword+proxytuning"):
                models = need.models()
                anti[_paper_name(models["expert"])] = _paper_name(models["anti_expert"])
                assert need.not_runnable is None  # the Vicuna rows need no built-in model any more
                assert f"anti_expert={models['anti_expert']}" in need.models_note()
    assert anti == UNTUNED


# The built-in stand-ins' untuned bases (harness.zoo.recipe): ProxyTuning's anti-expert at nano and micro.
MICRO_UNTUNED = {"chat-expert": "small-base", "code-expert": "small-base", "code-instruct-expert": "code-expert",
                 "vicuna-v1.3-expert": "small-base-b", "vicuna-v1.5-expert": "small-base-b",
                 "dr67-expert": "dr67-base"}


@pytest.mark.parametrize("scale", ["micro", "nano"])
def test_the_stand_ins_keep_the_papers_dimension_ratios(scale, no_hub):
    recipe = MICRO if scale == "micro" else NANO
    for spec in PLANNED:
        for need in needed_runs(spec, scale=scale):
            if need.not_runnable is not None:  # Figure 3b: hub models only
                continue
            models = need.models()
            expected = EXPECTED[spec.name, need.row.label]
            if expected["experts"] is None:
                continue
            width = {role: recipe.shape_of(ROLE_BY_NAME[name].checkpoint).hidden_size for role, name in models.items()}
            if scale == "micro":  # ModelSpec.hidden_size of a zoo role is its micro width
                assert width == {role: MODELS.get(name).hidden_size for role, name in models.items()}
            # 216 / 320 = 0.675 stands for 2048 / 3072 (nano 40 / 60 exactly)
            small = width.get("expert", width.get("weak"))
            assert small / width["target"] == pytest.approx(expected["ratio"], abs=0.01), (spec.name, need.label)
            if "anti_expert" in models:
                anti = ROLE_BY_NAME[models["anti_expert"]].checkpoint
                assert anti == ROLE_BY_NAME[MICRO_UNTUNED[models["expert"]]].checkpoint, (spec.name, need.label)


def test_an_explicit_anti_expert_still_wins():
    from harness.registry import METHODS, SUITES

    for scale, anti in (("micro", "small-base"), ("paper", "llama-2-13b")):
        config = resolve_config(given={"method": "proxytuning", "suite": "code", "scale": scale},
                                overrides=["model.expert=code-instruct-expert", f"model.anti_expert={anti}"],
                                method_overrides_for=method_overrides)
        assert METHODS.get("proxytuning").models(config, SUITES.get("code"))["anti_expert"] == anti


def test_family_cache_and_default_run_ids_are_unchanged():
    # Regression anchors taken before the figure targets, expert rows and per-expert anti-experts were added: the
    # family's cache keys and the runs already made keep their identity.
    assert (NANO.hash, MICRO.hash) == ("7043bdc1bce8", "59dfd5ed7009")
    ids = {("nano", "pen2sword"): "s0-e42e481f0ad3", ("nano", "lora"): "s0-7bfc2e0ba0a1",
           ("micro", "pen2sword"): "s0-52b980999cf7", ("micro", "lora"): "s0-69df7434802f"}
    for (scale, method), run_id in ids.items():
        config = resolve_config(given={"method": method, "suite": "code", "scale": scale, "seed": 0},
                                method_overrides_for=method_overrides)
        assert config.run_id() == run_id, (scale, method)
    # ProxyTuning's labels changed (pseudo_labels.label_rule=answer, as Weak2Strong's): so did its ids, and only
    # through that setting, not through the anti-expert rule (the code expert's base is the default anti-expert).
    changed = {("nano", "proxytuning"): "s0-a99343f7d09c", ("nano", "pen2sword+proxytuning"): "s0-91209ff6a14f",
               ("micro", "proxytuning"): "s0-70fab487037e", ("micro", "pen2sword+proxytuning"): "s0-db84027b6aa7"}
    for (scale, method), old in changed.items():
        config = resolve_config(given={"method": method, "suite": "code", "scale": scale, "seed": 0},
                                method_overrides_for=method_overrides)
        assert config.pseudo_labels.label_rule == "answer" and config.run_id() != old
        as_before = resolve_config(given={"method": method, "suite": "code", "scale": scale, "seed": 0},
                                   overrides=["pseudo_labels.label_rule=eos"], method_overrides_for=method_overrides)
        assert as_before.run_id() == old, (scale, method)
    # Table 1's and Figure 7's CodeLlama-7B runs on code are the suite's default runs: shared with Figure 2.
    default = {n.row.method: n.run_id for n in needed_runs(SPECS["figure2c"], scale="micro")}
    table1 = {n.label: n for n in needed_runs(SPECS["table1"], scale="micro") if n.config.suite == "code"}
    shared = table1["Vanilla Model + LoRA + Pen2Sword (CodeLlama-7B)"]
    assert shared.run_id == default["pen2sword"] and "model.expert" not in shared.command("micro")
    other = table1["Vanilla Model + LoRA + Pen2Sword (Llama2-7B-Chat)"]
    assert other.command("micro").endswith("--seed 0 model.expert=chat-expert")


def test_rows_over_experts_reject_contradictions():
    with pytest.raises(ValueError, match="names its experts twice"):
        Row("x", "pen2sword", ("model.expert=chat-expert",), experts=("code-expert", "chat-expert"))
    with pytest.raises(ValueError, match="two or more"):
        Row("x", "pen2sword", experts=("code-expert",), over_experts="best")
    with pytest.raises(ValueError, match="over_experts='max'"):
        Row("x", "pen2sword", experts=("code-expert", "chat-expert"), over_experts="max")


# --- Table 1: each cell the best of three experts, and which one --------------------------------------------

def _fake_found(monkeypatch, spec, scores: dict[str, dict[str, tuple[float, float]]]) -> list[Found]:
    """Completed runs for every need of ``spec`` at nano (one seed): a run of an expert sub-row scores
    ``scores[expert name][benchmark]`` = (accuracy, bits per byte) on every benchmark of its suite."""
    import reports.render

    monkeypatch.setattr(reports.render, "run_values", lambda run: run.values)
    found = []
    for need in needed_runs(spec, scale="nano"):
        name = need.label.rsplit(" (", 1)[1].rstrip(")") if need.expert else None
        table = scores.get(name, {})
        benchmarks = {b: {"score": acc, "bits_per_byte": bits} for b, (acc, bits) in table.items()}
        found.append(Found(need, SimpleNamespace(values={"suite": need.config.suite, "seed": need.seed,
                                                         "benchmarks": benchmarks}), "completed"))
    return found


def test_table1_cells_are_the_best_expert_and_name_it(monkeypatch):
    import pandas as pd

    from reports.render import row_values, table_frame, table_markdown

    spec = SPECS["table1"]
    scores = {"Llama2-7B-Chat": {"humaneval": (0.20, 1.0), "mmlu-physics": (0.50, 0.9)},
              "CodeLlama-7B": {"humaneval": (0.30, 2.0), "mmlu-physics": (0.40, 0.8)},
              "Vicuna-7B-v1.3": {"humaneval": (0.10, 0.5), "mmlu-physics": (0.60, 1.2)}}
    found = _fake_found(monkeypatch, spec, scores)
    values = row_values(found)
    p2s = "Vanilla Model + LoRA + Pen2Sword"
    # The row holds every expert's runs (3 experts x 2 suites), each sub-row its own expert's.
    assert len(values[p2s]) == 6 and all(len(values[f"{p2s} ({n})"]) == 2 for n in scores)
    frame = table_frame(spec, found, values).set_index("row")
    row = frame.loc[p2s]
    assert list(frame.index) == [r.label for r in spec.rows]  # one record per printed row, in order
    assert row["Code Ability / HumanEval"] == pytest.approx(30.0)  # CodeLlama-7B's, the highest
    assert row["Code Ability / HumanEval from"] == f"{p2s} (CodeLlama-7B)"
    # Its bits/byte companion comes from the same expert's runs, though another expert's is lower.
    assert row["Code Ability / HumanEval (bits/byte)"] == pytest.approx(2.0)
    assert row["Code Ability / HumanEval (bits/byte) from"] == f"{p2s} (CodeLlama-7B)"
    # Physics averages the code and math runs of the best expert there: Vicuna-7B-v1.3.
    assert row["Specialized Adaptation / Physics"] == pytest.approx(60.0)
    assert row["Specialized Adaptation / Physics from"] == f"{p2s} (Vicuna-7B-v1.3)"
    assert row["runs"] == 6 and row["runs code"] == 3
    # No expert scored CS: no value and no expert; a row without experts never has one.
    assert pd.isna(row["Code Ability / CS from"]) and pd.isna(row["Code Ability / CS"])
    assert pd.isna(frame.loc["Vanilla Model + LoRA"]["Code Ability / HumanEval from"])
    markdown = table_markdown(spec, frame.reset_index())
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {p2s} |"))
    assert "30.0 [paper 19.9, Δ +10.1] (from CodeLlama-7B)" in line and "(from Vicuna-7B-v1.3)" in line
    assert line.count("(from ") == 2  # the HumanEval and Physics accuracy cells; their companions do not repeat it


def test_figure7_rows_average_over_their_three_experts(monkeypatch):
    from reports.render import row_values

    spec = SPECS["figure7b"]
    values = row_values(_fake_found(monkeypatch, spec, {}))
    assert {label: len(runs) for label, runs in values.items() if not label.endswith(")")} == {
        "Pen2Sword": 3, "ProxyTuning": 3, "Pen2Sword + ProxyTuning": 3}  # nano, one seed: three experts
    assert len(values["ProxyTuning (CodeLlama-7B-Instruct)"]) == 1


# --- seeds and differences ---------------------------------------------------------------------------------

def test_each_table_gets_the_papers_seed_count_by_default(tmp_path, capsys):
    from harness.cli import build_parser, main
    from reports.cli import _needs

    assert {name for name, spec in SPECS.items() if spec.seeds == 3} == {"table4", "figure7a", "figure7b"}
    assert all(spec.seeds == 1 for name, spec in SPECS.items() if name not in ("table4", "figure7a", "figure7b"))
    needs = _needs([SPECS["table2"], SPECS["figure7a"]], "nano", None, ())
    assert {n.seed for n in needs["figure7a"]} == {0, 1, 2} and {n.seed for n in needs["table2"]} == {0}
    assert {n.seed for n in _needs([SPECS["figure7a"]], "nano", (0,), ())["figure7a"]} == {0}
    parser = build_parser()
    assert parser.parse_args(["report"]).seeds is None
    assert parser.parse_args(["reproduce", "--table", "4"]).seeds is None

    assert main(["reproduce", "--figure", "7a", "--scale", "nano", "--results-dir", str(tmp_path), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "figure7a at nano: 27 runs needed" in plan and "figure7a 3" in plan
    assert "the paper averaged" not in plan
    assert main(["reproduce", "--figure", "7a", "--scale", "nano", "--results-dir", str(tmp_path), "--dry-run",
                 "--seeds", "1"]) == 0
    plan = capsys.readouterr().out
    assert "9 runs needed" in plan and "  - figure7a: 1 seed per cell, the paper averaged 3 runs" in plan


def test_differences_from_the_paper_are_listed_in_the_plan_and_the_report(tmp_path, capsys):
    from harness.cli import main

    everything = list(SPECS.values())
    micro, paper = differences(everything, "micro"), differences(everything, "paper")
    for text in ("Table 2 is read at each run's last evaluation", "Figure 4's DR 67% target: the caption names "
                 "Llama3.2-1B-Base", "Table 1 takes the best expert per cell"):
        assert any(d.startswith(text) for d in micro) and any(d.startswith(text) for d in paper)
    stand_ins = ("Figure 5's target Vicuna-13B-v1.3 stands in as the instruction-tuned target",
                 "Figure 4's DR 100% pair is one model onto itself", "models: the built-in micro family")
    for text in stand_ins:
        assert any(d.startswith(text) for d in micro) and not any(d.startswith(text) for d in paper)
    assert any(d.startswith("settings away from the paper's") and "training.max_steps 500 (paper 10000)" in d
               for d in micro)
    assert not any(d.startswith("settings away") for d in paper)
    assert any("data.source offline (paper hub)" in d for d in differences(everything, "paper",
                                                                           overrides=("data.source=offline",)))

    assert main(["reproduce", "--figure", "4", "--scale", "paper", "--results-dir", str(tmp_path), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "differences from the paper at paper:\n  - Figure 4's DR 67% target" in plan
    assert "model.target=dr67-target model.expert=dr67-expert   [missing; target=dr67-target (llama-3.2-3b), " \
           "expert=dr67-expert (llama-3.2-1b-instruct)]" in plan

    out = tmp_path / "report"
    assert main(["report", "--only", "table2", "--scale", "nano", "--results-dir", str(tmp_path),
                 "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    head = report.split("## ")[0]  # everything before the first section
    assert "- differences from the paper at this scale" in head
    assert "  - Table 2 is read at each run's last evaluation (training.max_steps), the paper's at step 6k" in head
    assert "  - models: the built-in nano family stands in" in head
