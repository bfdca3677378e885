"""The dry-run stage every run goes through: concrete values, canonical names, bad input answered before
anything is created, the paper preset's data and prompt budgets."""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.config import ConfigError, resolve_config
from harness.method import method_overrides
from harness.engine.plan import plan_run
from harness.registry import SUITES


def nano(method: str, *overrides: str, scale: str = "nano"):
    return resolve_config(given={"method": method, "suite": "code", "scale": scale}, overrides=list(overrides),
                          method_overrides_for=method_overrides)


def test_dry_run_prints_a_concrete_plan_and_creates_nothing(nano_zoo, tmp_path, capsys):
    results = tmp_path / "results"
    code = main(["run", "--method", "pen2sword", "--suite", "code", "--scale", "nano", "--results-dir", str(results),
                 "--dry-run", "--json"])
    assert code == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["config"]["training"]["precision"] in ("fp32", "bf16")  # "auto" resolved for this machine
    assert plan["precision"]["requested"] == "auto"
    assert set(plan["models"]) == {"target", "expert"}
    assert plan["models"]["expert"]["name"] == SUITES.get("code").expert_for("nano")
    assert plan["state"] == "new" and plan["run_dir"].startswith(str(results))
    assert plan["data"]["source"] == "offline" and plan["data"]["stand_in_for"] == "evol-codealpaca-v1"
    assert not results.exists()


def test_dry_run_lists_models_a_first_run_must_build(data_cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "empty-cache"))
    (tmp_path / "empty-cache").mkdir()
    (tmp_path / "empty-cache" / "wheels").symlink_to(data_cache / "wheels")
    code = main(["run", "--method", "lora", "--suite", "code", "--scale", "nano", "--dry-run",
                 "--results-dir", str(tmp_path / "r")])
    out = capsys.readouterr().out
    assert code == 0
    assert "first run builds: target-base" in out and "built-in family, built on first run" in out
    assert not (tmp_path / "empty-cache" / "zoo").exists()


def test_a_bad_model_path_is_refused_before_any_directory(nano_zoo, tmp_path, capsys):
    results = tmp_path / "results"
    code = main(["run", "--method", "pen2sword", "--suite", "code", "--scale", "nano", "--expert",
                 "/nonexistent/model", "--results-dir", str(results)])
    err = capsys.readouterr().err
    assert code == 2
    assert "model.expert" in err and "/nonexistent/model" in err and "Traceback" not in err
    assert not results.exists()


def test_aliases_run_under_their_canonical_name(nano_zoo, tmp_path):
    full = plan_run(nano("full"), tmp_path)
    fft = plan_run(nano("fft"), tmp_path)
    assert full.config.method == "fft"
    assert full.run.path == fft.run.path and "/fft/" in str(full.run.path)


def test_paper_preset_offline_stops_before_models_naming_the_fix(data_cache, tmp_path, capsys):
    code = main(["run", "--method", "lora", "--suite", "code", "--scale", "paper", "--results-dir",
                 str(tmp_path / "r"), "model.target=/also/not/there", "training.precision=fp32"])
    err = capsys.readouterr().err
    assert code == 2
    assert "data.source=offline" in err and "evol-codealpaca" in err
    assert not (tmp_path / "r").exists()


def test_prompt_budgets_are_checked_on_load_naming_the_keys():
    with pytest.raises(ConfigError, match="data.max_prompt_tokens"):
        nano("lora", "data.max_prompt_tokens=2")
    with pytest.raises(ConfigError, match="training.seq_len"):
        nano("lora", "data.max_prompt_tokens=128", "training.seq_len=128")
    paper = nano("lora", scale="paper")
    assert paper.data.max_prompt_tokens >= 64 and paper.eval.max_new_tokens == 512
    assert paper.data.source == "hub"


def test_prompt_and_generation_must_fit_the_models_context(nano_zoo, tmp_path):
    with pytest.raises(ConfigError, match="eval.max_new_tokens"):
        plan_run(nano("lora", "eval.max_new_tokens=4096"), tmp_path)


def test_no_dpf_never_draws_the_selected_expert(nano_zoo):
    from methods.pen2sword.method import choose_expert

    suite = SUITES.get("code")
    selected = suite.expert_for("nano")
    drawn = {choose_expert(nano("pen2sword-no-dpf", f"seed={seed}"), suite)[0] for seed in range(12)}
    assert selected not in drawn and len(drawn) >= 2


def test_qlora_without_cuda_is_refused_before_any_directory(nano_zoo, tmp_path):
    import torch

    from harness.engine.adapters import AdapterUnavailableError

    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(AdapterUnavailableError):
        plan_run(nano("qlora"), tmp_path)
    assert not any(tmp_path.iterdir())
