import pytest

from harness.config import ConfigError, RunConfig, config_from_dict, parse_override, resolve_config


def write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_defaults_then_preset():
    cfg = resolve_config()
    assert cfg.scale == "micro"
    assert cfg.training.max_steps == 500  # micro preset, not the dataclass default
    assert cfg.pen2sword.alpha is None  # the transfer's mode default (paper 0.5)


def test_precedence_cli_over_yaml_over_preset(tmp_path):
    path = write(tmp_path, "training:\n  lr: 0.01\n  max_steps: 7\n  train_embeddings: false\n")
    cfg = resolve_config(yaml_path=path, overrides=["training.lr=0.5"])
    assert cfg.training.lr == 0.5  # CLI beats YAML
    assert cfg.training.max_steps == 7  # YAML beats the preset
    assert cfg.training.train_embeddings is False  # a falsy YAML value still counts as given
    assert cfg.training.seq_len == 256  # preset value where nothing else spoke


def test_falsy_cli_values_win(tmp_path):
    """Precedence is decided by whether a key was given, never by truthiness (lm-eval's bug)."""
    path = write(tmp_path, "seed: 5\ntraining:\n  max_steps: 9\n")
    cfg = resolve_config(yaml_path=path, overrides=["seed=0", "training.max_steps=0"])
    assert cfg.seed == 0
    assert cfg.training.max_steps == 0


def test_flags_and_scale_from_yaml(tmp_path):
    path = write(tmp_path, "scale: nano\nmethod: lora\n")
    cfg = resolve_config(yaml_path=path, given={"method": "pen2sword"})
    assert cfg.scale == "nano" and cfg.training.max_steps == 6  # nano preset chosen by the YAML
    assert cfg.method == "pen2sword"


def test_paper_preset_matches_section_5_1():
    cfg = resolve_config(given={"scale": "paper"})
    t = cfg.training
    assert (t.lora_r, t.lora_alpha, t.lora_dropout) == (8, 16, 0.05)
    assert (t.lr, t.scheduler, t.warmup_steps, t.precision, t.batch_size, t.seq_len) == (
        2e-5, "cosine", 100, "fp16", 8, 512)
    assert t.eval_every == 1000 and cfg.data.n_validation == 100
    assert cfg.model.target == "llama-2-13b" and len(cfg.pen2sword.candidates) == 5


def test_method_variant_overrides_sit_below_yaml_and_cli(tmp_path):
    variant = {"pen2sword.expansion": "noise", "pen2sword.alpha": 1.0}
    cfg = resolve_config(given={"method": "v"}, method_overrides_for=lambda m: variant)
    assert cfg.pen2sword.expansion == "noise" and cfg.pen2sword.alpha == 1.0
    cfg = resolve_config(given={"method": "v"}, overrides=["alpha=0.3"], method_overrides_for=lambda m: variant)
    assert cfg.pen2sword.alpha == 0.3


@pytest.mark.parametrize("override, key, value", [
    ("training.lr=-1", "training.lr", "-1"),
    ("pen2sword.alpha=1.5", "pen2sword.alpha", "1.5"),
    ("training.precision=fp8", "training.precision", "fp8"),
    ("training.batch_size=two", "training.batch_size", "two"),
    ("scale=huge", "scale", "huge"),
])
def test_bad_values_name_key_value_and_range(override, key, value):
    with pytest.raises(ConfigError) as err:
        resolve_config(overrides=[override]) if not override.startswith("scale") else resolve_config(
            given={"scale": "huge"})
    message = str(err.value)
    assert key in message and value in message and "allowed" in message


def test_unknown_key_suggests(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean: training.lr"):
        resolve_config(overrides=["training.lrr=0.1"])
    with pytest.raises(ConfigError, match="not of the form key=value"):
        parse_override("training.lr")


def test_bad_yaml_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_config(yaml_path=tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        resolve_config(yaml_path=write(tmp_path, "- a\n- b\n"))


def test_frozen_round_trip_and_run_id():
    cfg = resolve_config(overrides=["training.lora_target_modules=q_proj,v_proj"])
    assert cfg.training.lora_target_modules == ("q_proj", "v_proj")
    with pytest.raises(Exception):
        cfg.seed = 3  # frozen
    again = config_from_dict(cfg.to_dict())
    assert again == cfg and again.run_id() == cfg.run_id()
    assert resolve_config(overrides=["seed=1"]).run_id() != cfg.run_id()
    assert resolve_config(overrides=["alpha=0.25"]).run_id() != cfg.run_id()
    assert isinstance(cfg, RunConfig)


def test_a_field_added_later_keeps_the_ids_of_runs_made_before_it():
    import hashlib
    import json

    cfg = resolve_config()
    before = cfg.to_dict()
    del before["pen2sword"]["embedding_warmup_steps"]  # the config as runs made before the fields recorded it
    del before["pseudo_labels"]["label_rule"]
    del before["eval"]["generation_batch_size"]
    del before["training"]["fsdp"]
    before["model"]["candidates"] = before["pen2sword"].pop("candidates")  # where it lived then
    shots = before["eval"].pop("fewshot")  # the three few-shot fields eval.fewshot replaced
    before["eval"].update({f"{kind}_fewshot": shots.get(kind, 0) for kind in ("mmlu", "math", "gsm8k")})
    old_id = f"s0-{hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:12]}"
    assert cfg.run_id() == old_id and config_from_dict(before).run_id() == old_id
    warm = resolve_config(overrides=["pen2sword.embedding_warmup_steps=5"])
    assert warm.run_id() != old_id  # set away from its neutral value, it is part of the identity
    with pytest.raises(ConfigError, match="embedding_warmup_steps"):
        resolve_config(overrides=["pen2sword.embedding_warmup_steps=-1"])
    assert resolve_config(overrides=["pseudo_labels.label_rule=answer"]).run_id() != old_id
    with pytest.raises(ConfigError, match="label_rule"):
        resolve_config(overrides=["pseudo_labels.label_rule=blank"])


def test_the_validation_decoding_batch_is_in_run_ids_once_set():
    """eval.generation_batch_size unset keeps the ids runs had before it; set, it is part of the id (under bf16 a
    batch size can flip a near-tied greedy token), and a bad value is refused naming the key."""
    cfg = resolve_config(given={"method": "weak2strong"})
    assert cfg.eval.generation_batch_size is None
    assert resolve_config(given={"method": "weak2strong"},
                          overrides=["eval.generation_batch_size=64"]).run_id() != cfg.run_id()
    with pytest.raises(ConfigError, match="generation_batch_size"):
        resolve_config(overrides=["eval.generation_batch_size=0"])


def test_a_methods_option_is_refused_at_planning(tmp_path, capsys):
    """w/o Fusion with a fusion ratio: refused by --dry-run (exit 2, naming the key), nothing created."""
    from harness.cli import main

    argv = ["run", "--method", "pen2sword-no-fusion", "--suite", "code", "--scale", "nano",
            "--results-dir", str(tmp_path), "alpha=0.25"]
    assert main([*argv, "--dry-run"]) == 2
    assert "pen2sword.alpha" in capsys.readouterr().err
    assert main(argv) == 2
    assert not any(tmp_path.iterdir())
    assert main([*argv[:-1], "--dry-run", "alpha=1.0"]) == 0  # the ratio w/o Fusion forces is no contradiction


def test_a_section_registered_later_keeps_other_runs_ids():
    """A new method's own section leaves every other run id alone while at its defaults, and enters the id
    once set; the built-in sections (hashed at their defaults, as before they were registered) keep theirs."""
    from dataclasses import dataclass

    from harness.config import ConfigSection, register_config_section
    from harness.registry import CONFIG_SECTIONS

    before = resolve_config(given={"method": "lora"}).run_id()

    @dataclass(frozen=True)
    class Mine:
        strength: float = 1.0

    register_config_section(ConfigSection("mine", Mine))
    try:
        assert resolve_config(given={"method": "lora"}).run_id() == before
        changed = resolve_config(given={"method": "lora"}, overrides=["mine.strength=2"])
        assert changed.mine.strength == 2.0 and changed.run_id() != before
        assert changed.to_dict()["mine"] == {"strength": 2.0}
        assert config_from_dict(changed.to_dict()).run_id() == changed.run_id()
    finally:
        CONFIG_SECTIONS.unregister("mine")


def test_a_moved_field_is_read_from_its_old_place():
    """pen2sword.candidates lived in model.candidates: an old config.json loads, with the same run id."""
    cfg = resolve_config(overrides=["pen2sword.candidates=a,b"])
    old = cfg.to_dict()
    old["model"]["candidates"] = old.pop("pen2sword").pop("candidates") and ["a", "b"]
    old["pen2sword"] = {k: v for k, v in cfg.to_dict()["pen2sword"].items() if k != "candidates"}
    loaded = config_from_dict(old)
    assert loaded.pen2sword.candidates == ("a", "b") and loaded.run_id() == cfg.run_id()
