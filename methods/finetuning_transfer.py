"""Fine-tuning transfer (Lin et al., EMNLP 2025): add one model version's fine-tuning diff to another base.

θ_target' = θ_target + λ·(θ_donor − θ_donor_base), λ = 1, for every parameter; the donor is the
small expert (``model.expert`` or the suite's domain expert), the donor's base ``model.anti_expert``
(the expert's untuned base), and the target must have the same architecture and shapes. Where the
donor's vocabulary is larger (the code expert's 16 extra tokens), the target and the donor base are
zero-padded to it: the new rows of the target become the donor's own rows, and the target takes the
donor's tokenizer (its first ids must be the target's, token for token). The shared engine then
fine-tunes the result as it fine-tunes every method.

The target defaults to ``small-base-b`` (the built-in family's second small base, the shape of the
donor); at paper scale pass a 7B base of the donor's architecture: ``--target PATH_OR_HUB_ID``.
"""

from __future__ import annotations

import torch

from harness.config import ConfigError, RunConfig
from harness.method import MethodContext, Prepared, register_method
from harness.suites import Suite
from methods.pen2sword.method import choose_expert

LAMBDA = 1.0  # Lin et al.'s transfer scale


def models_needed(config: RunConfig, suite: Suite) -> dict[str, str]:
    return {"target": config.model.target, "donor": choose_expert(config, suite)[0],
            "donor_base": config.model.anti_expert}


def add_diff(target, donor, donor_base, scale: float = LAMBDA) -> dict:
    """target += scale · (donor − donor_base), in place, rows zero-padded to the donor's vocabulary.

    Returns a report: parameters changed, rows added, the diff's norm."""
    params = dict(target.named_parameters())
    donor_params, base_params = dict(donor.named_parameters()), dict(donor_base.named_parameters())
    if set(params) != set(donor_params) or set(params) != set(base_params):
        only = sorted(set(params) ^ set(donor_params) | set(params) ^ set(base_params))[:5]
        raise ConfigError(f"fine-tuning transfer needs one architecture for target, donor and donor base; "
                          f"parameter names differ (e.g. {only})")
    old_rows = target.get_input_embeddings().weight.shape[0]
    rows_added = max(donor.get_input_embeddings().weight.shape[0] - old_rows, 0)
    if rows_added:  # zero-padded: the new rows of the target are 0 + (donor row − 0)
        target.resize_token_embeddings(old_rows + rows_added, mean_resizing=False)
        with torch.no_grad():
            for layer in (target.get_input_embeddings(), target.get_output_embeddings()):
                if layer is not None:
                    layer.weight[old_rows:] = 0
        params = dict(target.named_parameters())
    squared = 0.0
    with torch.no_grad():
        for name, p in params.items():
            d, b = donor_params[name], base_params[name]
            if d.shape != p.shape or b.shape[1:] != p.shape[1:] or b.shape[0] > d.shape[0]:
                raise ConfigError(f"fine-tuning transfer needs equal shapes; {name} is {tuple(p.shape)} in the "
                                  f"target, {tuple(d.shape)} in the donor, {tuple(b.shape)} in the donor base")
            diff = d.detach().float().clone()
            diff[: b.shape[0]] -= b.detach().float()
            p += (scale * diff).to(p.dtype)
            squared += float(diff.pow(2).sum())
    return {"lambda": scale, "parameters": len(params), "rows_added": rows_added, "diff_norm": squared ** 0.5}


def prepare(ctx: MethodContext) -> Prepared:
    dtype = ctx.config.model.dtype
    target_ref, donor_ref, base_ref = (ctx.models[r] for r in ("target", "donor", "donor_base"))
    target, donor, base = (ctx.load_model(r, dtype=dtype) for r in (target_ref, donor_ref, base_ref))
    target_tok, donor_tok = ctx.load_tokenizer(target_ref), ctx.load_tokenizer(donor_ref)
    shared = len(target_tok)
    if donor_tok.convert_ids_to_tokens(list(range(shared))) != target_tok.convert_ids_to_tokens(list(range(shared))):
        raise ConfigError("fine-tuning transfer adds parameters row by row: the donor's tokenizer must extend "
                          "the target's (same tokens at the same ids)")
    report = add_diff(target, donor, base)
    grew = len(donor_tok) > shared
    return Prepared(model=target, tokenizer=donor_tok if grew else target_tok,
                    new_token_ids=tuple(range(shared, len(donor_tok))) if grew else (),
                    info={"finetuning_transfer": report},
                    models_used={role: ctx.models[role].identity for role in ("target", "donor", "donor_base")})


register_method("finetuning-transfer", prepare, models=models_needed, prepare_phase="transfer",
                paper_label="Fine-tuning transfer (Lin et al. 2025)",
                description="add the expert's fine-tuning diff (expert − its base) to a same-shape base, then LoRA",
                overrides={"training.peft": "lora", "model.target": "small-base-b"})
