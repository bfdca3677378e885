"""docs/adding-a-method.md, proved: a new method with settings of its own is one file and one registration
call, and runs end to end through `harness run` with no other edit."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap

import pytest

from harness.cli import main
from harness.config import resolve_config
from harness.registry import CONFIG_SECTIONS, METHODS

# The example the doc walks through: the target's input embedding with seeded Gaussian noise added,
# its strength in a config section of the method's own (`noisy_embedding.scale`).
METHOD_FILE = textwrap.dedent('''
    """Noisy embedding: the target with seeded Gaussian noise on its input embedding, then LoRA."""

    from dataclasses import dataclass

    import torch

    from harness.config import ConfigError, ConfigSection
    from harness.method import MethodContext, Prepared, register_method


    @dataclass(frozen=True)
    class NoisyEmbeddingConfig:
        scale: float = 0.1  # noise std, relative to the embedding's own

        def __post_init__(self) -> None:
            if not 0 <= self.scale <= 1:
                raise ConfigError(f"invalid value for noisy_embedding.scale: {self.scale!r} (allowed: 0..1)")


    def prepare(ctx: MethodContext) -> Prepared:
        target = ctx.models["target"]
        model = ctx.load_model(target, dtype=ctx.config.model.dtype)
        scale = ctx.config.noisy_embedding.scale
        with torch.no_grad():
            weight = model.get_input_embeddings().weight
            noise = torch.randn(weight.shape, generator=torch.Generator().manual_seed(ctx.seed))
            weight.add_(noise.to(weight.dtype) * scale * weight.std())
        return Prepared(model=model, tokenizer=ctx.load_tokenizer(target), info={"noise_scale": scale},
                        models_used={"target": target.identity})


    register_method("noisy-embedding", prepare, description="seeded noise on the target's input embedding, then LoRA",
                    config_section=ConfigSection("noisy_embedding", NoisyEmbeddingConfig))
''')


@pytest.fixture
def noisy_method(tmp_path, monkeypatch):
    (tmp_path / "noisy_embedding_method.py").write_text(METHOD_FILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    lora_id = resolve_config(given={"method": "lora", "scale": "nano"}).run_id()
    importlib.import_module("noisy_embedding_method")
    yield lora_id
    METHODS.unregister("noisy-embedding")
    CONFIG_SECTIONS.unregister("noisy_embedding")
    sys.modules.pop("noisy_embedding_method", None)


def test_a_new_method_with_its_own_settings_runs_end_to_end(noisy_method, tmp_path, capsys):
    results = tmp_path / "results"
    base = ["run", "--method", "noisy-embedding", "--suite", "code", "--scale", "nano", "--results-dir", str(results)]
    # Its settings are checked at planning: --dry-run refuses a bad value (exit 2, naming the key).
    assert main([*base, "--dry-run", "noisy_embedding.scale=3"]) == 2
    assert "noisy_embedding.scale" in capsys.readouterr().err
    assert not results.exists()
    # Registering it changed no other run's id.
    assert resolve_config(given={"method": "lora", "scale": "nano"}).run_id() == noisy_method

    assert main([*base, "--no-progress", "--json", "noisy_embedding.scale=0.2", "eval.benchmarks=false"]) == 0
    summary = json.loads(capsys.readouterr().out)
    run_dir = results / "code" / "noisy-embedding" / summary["run_id"]
    assert summary["state"] == "completed"
    assert json.loads((run_dir / "config.json").read_text())["noisy_embedding"] == {"scale": 0.2}
    assert json.loads((run_dir / "prepare.json").read_text())["noise_scale"] == 0.2
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {m["step"] for m in metrics if m["metric"] == "rouge1"} >= {0, 6}  # validated before and after training
    # The default scale is left out of the id of a method's own runs too only where it is the default.
    default = resolve_config(given={"method": "noisy-embedding", "scale": "nano"})
    assert default.noisy_embedding.scale == 0.1 and default.run_id() != summary["run_id"]
