"""Equal terms between methods: one seed gives every method the same LoRA initialisation, and one
config gives the same numbers whether its run built the model family or found it cached."""

from __future__ import annotations

import pytest

from harness.config import resolve_config
from harness.engine.plan import plan_run
from harness.method import method_overrides
QUICK = ["training.max_steps=2", "training.eval_every=2", "training.checkpoint_steps=[2]", "eval.benchmarks=false"]


def nano(method: str, *overrides: str):
    return resolve_config(given={"method": method, "suite": "code", "scale": "nano"}, overrides=[*QUICK, *overrides],
                          method_overrides_for=method_overrides)


def curves(run) -> list[tuple]:
    return sorted((r["step"], r["metric"], r["value"]) for r in run.metrics()
                  if r["phase"] in ("train", "eval") and r["metric"] in ("loss", "grad_norm", "eval_loss", "rouge1"))


def test_every_method_gets_the_same_lora_initialisation(nano_zoo, tmp_path, monkeypatch):
    import harness.engine.run as run_module

    captured: dict[str, dict] = {}
    real = run_module.apply_adapters

    def capture(model, training, **kwargs):
        model = real(model, training, **kwargs)
        captured[current] = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}
        return model

    monkeypatch.setattr(run_module, "apply_adapters", capture)
    for current in ("lora", "pen2sword", "pen2sword-no-fusion"):
        run_module.execute(plan_run(nano(current), tmp_path), progress=False)
    lora = captured["lora"]
    assert lora and all(name.endswith(".weight") for name in lora)
    for method in ("pen2sword", "pen2sword-no-fusion"):
        assert captured[method].keys() == lora.keys()
        assert all(captured[method][n].equal(lora[n]) for n in lora), method


@pytest.mark.parametrize("method", ["pen2sword"])
def test_a_first_run_that_builds_the_family_equals_a_cached_run(method, data_cache, tmp_path, monkeypatch):
    from harness.engine.run import execute

    cache = tmp_path / "cache"
    (cache).mkdir()
    (cache / "wheels").symlink_to(data_cache / "wheels")
    monkeypatch.setenv("HARNESS_CACHE", str(cache))
    first = execute(plan_run(nano(method), tmp_path / "first"), progress=False)
    assert [r for r in first.metrics() if r["phase"] == "build_models" and r["metric"] == "phase_seconds"]
    cached = execute(plan_run(nano(method), tmp_path / "cached"), progress=False)
    assert not [r for r in cached.metrics() if r["phase"] == "build_models"]
    assert curves(first) == curves(cached) and curves(first)
