"""ProxyTuning (Liu et al. 2024): decode the target with logits = target + α·(expert − anti-expert).

:class:`ProxyTuned` holds the three models, each with its own KV cache, and behaves like one causal
LM wherever the harness decodes: ``generate`` (the one generation path, lm-eval's HFLM) and a forward
returning ``.logits`` (eval loss, log-likelihood benchmarks). The small models' vocabularies are
aligned with the target's by token string, the same union Pen2Sword builds
(:func:`methods.pen2sword.transfer.build_vocab_union`); every target token must exist in both small
vocabularies (true within a model family such as Llama-2 / CodeLlama / Vicuna and the built-in one).

Registered uses:

- ``proxytuning`` (the paper's, Table 1): the combination writes pseudo-labels for the training
  prompts and the target is LoRA-trained on them (:mod:`methods.pseudolabels`, cached).
- ``pen2sword+proxytuning`` (A.5.2): the same labels, the target first initialised by Pen2Sword.
- ``proxytuning-decode`` (Liu et al.'s own use): no training; validation and benchmarks decode
  with the combination.

The expert is the small expert Pen2Sword would use (``model.expert`` or the suite's domain expert),
the anti-expert that expert's untuned base (:func:`anti_expert_for`: CodeLlama-7B-Instruct → CodeLlama-7B,
Vicuna-7B-v1.3 → LLaMA-7B, ...) unless ``model.anti_expert`` is set away from its default, α =
``proxy.alpha`` (1 in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace

import torch

from harness.config import ConfigSection, RunConfig, check_value as _check, resolve_config
from harness.engine.generate import CachedSteps, RecomputedSteps, generate_ids
from harness.method import MethodContext, Prepared, register_method
from harness.models import same_registered_model, untuned_base
from harness.suites import Suite
from methods.pen2sword import method as pen2sword
from methods.pen2sword.transfer import build_vocab_union
from methods.pen2sword import config as pen2sword_config
from methods.pseudolabels import SECTION as LABELS
from methods.pseudolabels import model_writer, plan_labels, pseudo_label, trained_on_labels


@dataclass(frozen=True)
class ProxyConfig:
    """The ``proxy`` section: ProxyTuning's decoding."""

    alpha: float = 1.0  # logits = target + alpha * (expert - anti-expert) (Liu et al. 2024 use 1)

    def __post_init__(self) -> None:
        _check(0.0 <= self.alpha <= 10.0, "proxy.alpha", self.alpha, "0 <= alpha <= 10")


SECTION = ConfigSection("proxy", ProxyConfig, hashed_at_default=True)


class VocabularyMismatch(ValueError):
    """A target token the expert or anti-expert cannot represent."""


def token_map(small_tokenizer, target_tokenizer, small_rows: int, target_rows: int, role: str) -> torch.Tensor:
    """For each target token id, the small model's id of the same token string."""
    union = build_vocab_union(small_tokenizer.get_vocab(), target_tokenizer.get_vocab(), small_rows, target_rows)
    mapping = union.expert_rows[: len(target_tokenizer)]
    missing = (mapping < 0).nonzero().flatten().tolist()
    if missing:
        sample = target_tokenizer.convert_ids_to_tokens(missing[:5])
        raise VocabularyMismatch(
            f"ProxyTuning needs every target token in the {role}'s vocabulary; {len(missing)} are missing "
            f"(e.g. {sample}). Choose an {role} of the target's model family.")
    return mapping


class ProxyTuned(torch.nn.Module):
    """target + α·(expert − anti-expert) over the target's vocabulary, one KV cache per model."""

    def __init__(self, target, expert, anti_expert, *, expert_map: torch.Tensor, anti_map: torch.Tensor,
                 alpha: float = 1.0):
        super().__init__()
        self.target, self.expert, self.anti_expert = target, expert, anti_expert
        self.register_buffer("expert_map", expert_map.clone(), persistent=False)
        self.register_buffer("anti_map", anti_map.clone(), persistent=False)
        self.alpha = float(alpha)
        self.config = target.config  # what HFLM and the generation path read (context length, ids)
        self.generation_config = getattr(target, "generation_config", None)

    @property
    def device(self) -> torch.device:
        return next(self.target.parameters()).device

    def tie_weights(self, *args, **kwargs) -> None:  # HFLM calls it on a ready model
        return None

    def combine(self, target_logits: torch.Tensor, expert_logits: torch.Tensor, anti_logits: torch.Tensor) -> torch.Tensor:
        """Eq. (1) of Liu et al., on the last axis, the small models' logits gathered into target order."""
        expert = expert_logits.float().index_select(-1, self.expert_map)
        anti = anti_logits.float().index_select(-1, self.anti_map)
        return target_logits.float() + self.alpha * (expert - anti)

    def _inputs(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return input_ids, self.expert_map_ids(input_ids), self.anti_map_ids(input_ids)

    def expert_map_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.expert_map[ids]

    def anti_map_ids(self, ids: torch.Tensor) -> torch.Tensor:
        return self.anti_map[ids]

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs):
        """Combined logits for every position (no cache), as a model output with ``.logits``."""
        kwargs.pop("labels", None)
        outs = [model(input_ids=ids, attention_mask=attention_mask, **kwargs).logits
                for model, ids in zip(self._models(), self._inputs(input_ids))]
        return SimpleNamespace(logits=self.combine(*outs))

    def _models(self):
        return (self.target, self.expert, self.anti_expert)

    def decoding_steps(self, cache: bool = True) -> "ProxySteps":
        """The generation path's decoding steps (:func:`harness.engine.generate.decode`): each model with its own
        KV cache (``cache=False``: recomputed over the whole sequence), combined by :meth:`combine`."""
        return ProxySteps(self, cache)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 max_new_tokens: int | None = None, max_length: int | None = None, do_sample: bool = False,
                 temperature: float = 1.0, top_p: float = 1.0, pad_token_id: int | None = None,
                 eos_token_id: int | list[int] | None = None, use_cache: bool = True, stopping_criteria=None,
                 stop_strings=None, tokenizer=None, **_unused) -> torch.Tensor:
        """Left-padded ``input_ids`` → prompt + continuation, like ``transformers``' ``generate`` (lm-eval's
        ``HFLM`` calls it), through the generation path's loop; finished rows are padded with ``pad_token_id``.

        ``use_cache=False`` recomputes every model over the whole sequence at each step (the reference
        the cached path must match)."""
        eos = eos_token_id if eos_token_id is not None else self.config.eos_token_id
        return generate_ids(self, input_ids, attention_mask, max_new_tokens=max_new_tokens, max_length=max_length,
                            do_sample=do_sample, temperature=temperature, top_p=top_p, pad_token_id=pad_token_id,
                            eos_token_id=eos, stop_strings=stop_strings, tokenizer=tokenizer,
                            stopping_criteria=stopping_criteria, steps=self.decoding_steps(use_cache))


class ProxySteps:
    """ProxyTuned's decoding steps: the target, the expert and the anti-expert each fed its own token ids (the
    target's mapped into each small model's vocabulary) against its own cache, their logits combined."""

    def __init__(self, proxy: ProxyTuned, cache: bool = True):
        steps = CachedSteps if cache else RecomputedSteps
        self.proxy = proxy
        self.parts = [(steps(proxy.target), None), (steps(proxy.expert), proxy.expert_map),
                      (steps(proxy.anti_expert), proxy.anti_map)]

    def __call__(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return self.proxy.combine(*(step(ids if to_small is None else to_small[ids], mask, positions)
                                    for step, to_small in self.parts))

    def keep(self, rows: torch.Tensor) -> None:
        for step, _ in self.parts:
            step.keep(rows)


# --- the registered methods ------------------------------------------------------------------------

@lru_cache(maxsize=None)
def default_anti_expert(scale: str) -> str:
    """``model.anti_expert`` of a run at ``scale`` that does not set it (the paper preset names llama-2-7b)."""
    return resolve_config(given={"scale": scale}).model.anti_expert


def anti_expert_for(config: RunConfig, expert: str) -> str:
    """ProxyTuning's anti-expert for ``expert``: its untuned base (Liu et al. contrast an expert with the model it
    was tuned from), unless ``model.anti_expert`` is set to something other than its default, which wins.

    The default is told by its value (a config does not record which keys were given): the value every run had
    before the anti-expert followed the expert, so the default code-suite runs keep their ids. Where the expert's
    base is the model the default names already (the code expert's), or is not registered (a local path), the
    default stands."""
    configured = config.model.anti_expert
    if configured != default_anti_expert(config.scale):
        return configured
    base = untuned_base(expert, config.scale)
    if base is None or same_registered_model(base, configured, config.scale):
        return configured  # the same weights under the name the runs so far had (their label caches key on it)
    return base


def models_needed(config: RunConfig, suite: Suite) -> dict[str, str]:
    expert = pen2sword.choose_expert(config, suite)[0]
    return {"target": config.model.target, "expert": expert, "anti_expert": anti_expert_for(config, expert)}


def load_proxy(ctx: MethodContext) -> tuple[ProxyTuned, object]:
    """The ProxyTuned combination and the target's tokenizer."""
    dtype = ctx.config.model.dtype
    loaded = {role: (ctx.load_model(ctx.models[role], dtype=dtype), ctx.load_tokenizer(ctx.models[role]))
              for role in ("target", "expert", "anti_expert")}
    (target, target_tok), (expert, expert_tok), (anti, anti_tok) = (loaded[r] for r in ("target", "expert", "anti_expert"))
    rows = lambda m: m.get_input_embeddings().weight.shape[0]  # noqa: E731
    proxy = ProxyTuned(target, expert, anti, alpha=ctx.config.proxy.alpha,
                       expert_map=token_map(expert_tok, target_tok, rows(expert), rows(target), "expert"),
                       anti_map=token_map(anti_tok, target_tok, rows(anti), rows(target), "anti-expert"))
    return proxy.eval(), target_tok


def identities(ctx: MethodContext) -> dict:
    return {role: ctx.models[role].identity for role in ("target", "expert", "anti_expert")}


def proxy_labels(ctx: MethodContext) -> tuple[list[dict], dict]:
    plan = plan_labels(ctx, {**identities(ctx), "alpha": ctx.config.proxy.alpha}, len(ctx.train_records))
    source = f"pseudo-labels by ProxyTuning (α={ctx.config.proxy.alpha}, {plan.mode})"

    def write(records):
        proxy, tokenizer = load_proxy(ctx)
        return model_writer(ctx, proxy, tokenizer, plan)(records)

    records, report = pseudo_label(ctx, plan, write, source)
    return records, {**report, "source": source}


def prepare(ctx: MethodContext) -> Prepared:
    records, report = proxy_labels(ctx)
    target = ctx.models["target"]
    prepared = Prepared(model=ctx.load_model(target, dtype=ctx.config.model.dtype),
                        tokenizer=ctx.load_tokenizer(target), models_used=identities(ctx))
    return trained_on_labels(prepared, records, report)


def prepare_with_pen2sword(ctx: MethodContext) -> Prepared:
    records, report = proxy_labels(ctx)
    prepared = pen2sword.prepare(ctx)
    prepared.models_used.update(identities(ctx))
    return trained_on_labels(prepared, records, report)


def prepare_decode(ctx: MethodContext) -> Prepared:
    proxy, tokenizer = load_proxy(ctx)
    return Prepared(model=proxy.target, tokenizer=tokenizer, decode_model=proxy, models_used=identities(ctx),
                    info={"decoding": "target + alpha * (expert - anti-expert)", "alpha": proxy.alpha})


# Labels follow the same rule as Weak2Strong's (methods.weak2strong.LABEL_OVERRIDES), so both baselines train on
# answers cut the same way.
LABEL_OVERRIDES = {"training.peft": "lora", "pseudo_labels.label_rule": "answer"}

register_method("proxytuning", prepare, models=models_needed, paper_label="Vanilla Model + LoRA + ProxyTuning",
                description="LoRA on pseudo-labels decoded by target + α(expert − anti-expert) (Liu et al. 2024)",
                overrides=LABEL_OVERRIDES, config_section=(SECTION, LABELS))
register_method("pen2sword+proxytuning", prepare_with_pen2sword, models=models_needed,
                paper_label="Pen2Sword + ProxyTuning", prepare_phase="transfer",
                description="Pen2Sword's transfer, then training on ProxyTuning's pseudo-labels (A.5.2)",
                overrides=LABEL_OVERRIDES, config_section=(SECTION, LABELS, pen2sword_config.SECTION))
register_method("proxytuning-decode", prepare_decode, models=models_needed, trains=False,
                paper_label="ProxyTuning (decoding-time)",
                description="no training: the target decodes with target + α(expert − anti-expert) (Liu et al.'s use)",
                config_section=SECTION)
