"""Pen2Sword advanced knowledge transfer (paper §4.4, eq. 2–7).

One job: build the fused input embedding Ê of a large target model from a small expert's input
embedding, and install it in the target (model, tokenizer, config) consistently.

    eq. 2–3  vocabulary union V = V_S ∪ V_T by token string; rows a model lacks ~ N(0, 1)
    eq. 4–6  widen E_S^1 from d_S to d_T columns by seeded column replication, each replication
             group divided by its size so that the group's columns sum to the source column
    eq. 7    Ê = α·E_S^2 + (1 − α)·E_T^1

Ablations are options of :class:`TransferOptions`, not separate code paths: ``expansion="noise"``
(the paper's "w/o Expansion"), ``fusion=False`` ("w/o Fusion"), and two fitted maps that none of
the anchors has (``"lstsq"``, ``"procrustes"``). ``compat="official"`` reproduces what the
published code does instead of what the paper says (see ``shared/reference/official-code-notes.md``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.io import to_json

PAPER_ALPHA = 0.5
OFFICIAL_ALPHA = 0.25
COMPAT_MODES = ("paper", "official")
EXPANSIONS = ("replicate", "noise", "lstsq", "procrustes")
TIE_MODES = ("keep", "untie")
REPORT_FILENAME = "pen2sword_transfer.json"
_PREVIEW_TOKENS = 10


@dataclass(frozen=True)
class TransferOptions:
    """How to transfer; every field is validated on construction.

    compat: "paper" (eq. 2–7 as written) or "official" (the published code: rows paired by
        integer id after resizing the expert to the target tokenizer, no union, missing rows
        take the mean of the existing rows, Python-``random`` column map, alpha 0.25,
        ``padding_idx=0``, lm_head left alone so a tied target ends up untied).
    expansion: "replicate" (eq. 4–6), "noise" (paper's "w/o Expansion": the d_S expert columns
        unscaled, the d_T − d_S missing ones N(0, noise_std²)), "lstsq" or "procrustes" (a map
        W ∈ R^{d_S×d_T} fitted on the rows both vocabularies share, E_S^2 = E_S^1 W).
    fusion: False is the paper's "w/o Fusion": Ê = E_S^2 (alpha forced to 1).
    alpha: fusion ratio of eq. 7 in [0, 1]; None means the mode's default (paper 0.5,
        official 0.25). Endpoints are allowed so sweeps can include them.
    seed: seeds every random draw (missing rows, column map, noise columns).
    missing_std: std of the Gaussian rows of eq. 2–3 (paper: 1).
    noise_std: std of the noise columns of expansion="noise"; None means the std of all of
        E_S^1, so the noise columns have the scale of the columns they sit beside.
    procrustes_scale: with expansion="procrustes", also fit one scalar s by least squares
        (E_S^2 = s·E_S^1 W) so that the rotated expert matches the target's scale.
    tie_word_embeddings: "keep" (a tied target stays tied, so lm_head becomes Ê; an untied one
        stays untied) or "untie" (lm_head keeps the target's original output rows). None means
        the mode's default (paper "keep", official "untie").
    """

    compat: str = "paper"
    expansion: str = "replicate"
    fusion: bool = True
    alpha: float | None = None
    seed: int = 0
    missing_std: float = 1.0
    noise_std: float | None = None
    procrustes_scale: bool = True
    tie_word_embeddings: str | None = None

    def __post_init__(self) -> None:
        _check_choice("compat", self.compat, COMPAT_MODES)
        _check_choice("expansion", self.expansion, EXPANSIONS)
        _check_bool("fusion", self.fusion)
        _check_bool("procrustes_scale", self.procrustes_scale)
        if self.alpha is not None:
            check_alpha(self.alpha, field="TransferOptions.alpha")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"TransferOptions.seed={self.seed!r} is invalid; allowed: an integer >= 0")
        _check_positive("missing_std", self.missing_std)
        if self.noise_std is not None:
            _check_positive("noise_std", self.noise_std)
            if self.expansion != "noise":
                raise ValueError(
                    f"TransferOptions.noise_std={self.noise_std!r} only applies to expansion='noise', "
                    f"but expansion={self.expansion!r}; drop noise_std or set expansion='noise'"
                )
        if self.tie_word_embeddings is not None:
            _check_choice("tie_word_embeddings", self.tie_word_embeddings, TIE_MODES)
        if not self.fusion and self.alpha not in (None, 1, 1.0):
            raise ValueError(
                f"TransferOptions.fusion=False uses E_S^2 alone (alpha is forced to 1), but "
                f"TransferOptions.alpha={self.alpha!r} was also given; drop alpha or set fusion=True"
            )
        if self.compat == "official":
            if self.expansion != "replicate":
                raise ValueError(
                    f"TransferOptions.expansion={self.expansion!r} is invalid with compat='official'; "
                    "allowed: 'replicate' (the official code has no other expansion); use compat='paper'"
                )
            if self.missing_std != 1.0:
                raise ValueError(
                    f"TransferOptions.missing_std={self.missing_std!r} does not apply with compat='official', "
                    "which fills missing rows with the mean of existing rows; leave it at 1.0 or use compat='paper'"
                )

    @property
    def effective_alpha(self) -> float:
        """The alpha eq. 7 uses: 1 without fusion, else the given one, else the mode's default."""
        if not self.fusion:
            return 1.0
        if self.alpha is not None:
            return float(self.alpha)
        return OFFICIAL_ALPHA if self.compat == "official" else PAPER_ALPHA

    @property
    def effective_tie(self) -> str:
        """The tie mode applied: the given one, else "untie" for official (lm_head untouched), else "keep"."""
        if self.tie_word_embeddings is not None:
            return self.tie_word_embeddings
        return "untie" if self.compat == "official" else "keep"


@dataclass(frozen=True, eq=False)
class VocabUnion:
    """Union vocabulary V (eq. 2–3): where each union position takes its rows from.

    Positions 0..k_T−1 are the target's ids unchanged; expert-only tokens follow in the expert's
    id order. ``expert_rows[v]`` / ``target_rows[v]`` give the row of E_S / E_T for position v,
    or −1 where that model has no row for the token.
    """

    size: int
    target_ids: torch.Tensor
    expert_rows: torch.Tensor
    target_rows: torch.Tensor
    expert_only_tokens: list[str]
    target_only_count: int
    shared_count: int


@dataclass(frozen=True, eq=False)
class TransferResult:
    """What :func:`transfer` gives back: the modified target, its extended tokenizer, the fp32 Ê,
    the union it was built on and a JSON-serialisable report."""

    model: Any
    tokenizer: Any
    embedding: torch.Tensor
    union: VocabUnion
    report: dict[str, Any]

    @property
    def new_token_ids(self) -> tuple[int, ...]:
        """Ids of the expert-only tokens in the extended tokenizer: the last union positions."""
        start = self.union.size - len(self.union.expert_only_tokens)
        return tuple(range(start, self.union.size))


def build_vocab_union(
    vocab_S: Mapping[str, int], vocab_T: Mapping[str, int], expert_num_rows: int, target_num_rows: int
) -> VocabUnion:
    """Build V = V_S ∪ V_T by token string (eq. 2–3), keeping every target id where it is.

    A token whose id has no row in its model's embedding (a tokenizer larger than its matrix)
    counts as lacking a row there, so it is filled like a missing token.
    """
    target_tokens = _tokens_by_id(vocab_T, "target")
    k_T = len(target_tokens)
    expert_only = [tok for tok, _ in sorted(vocab_S.items(), key=lambda kv: kv[1]) if tok not in vocab_T]
    expert_rows = torch.tensor([vocab_S.get(tok, -1) for tok in target_tokens + expert_only], dtype=torch.long)
    expert_rows[expert_rows >= expert_num_rows] = -1
    target_rows = torch.cat([torch.arange(k_T), torch.full((len(expert_only),), -1, dtype=torch.long)])
    target_rows[target_rows >= target_num_rows] = -1
    shared = sum(1 for tok in target_tokens if tok in vocab_S)
    return VocabUnion(
        size=k_T + len(expert_only),
        target_ids=torch.arange(k_T),
        expert_rows=expert_rows,
        target_rows=target_rows,
        expert_only_tokens=expert_only,
        target_only_count=k_T - shared,
        shared_count=shared,
    )


def pair_rows_by_id(k_T: int, expert_num_rows: int, target_num_rows: int) -> VocabUnion:
    """The official code's "vocabulary alignment": both matrices resized to the target tokenizer
    length k_T and paired by integer id, whatever the tokens are (extra expert rows truncated)."""
    ids = torch.arange(k_T)
    shared = min(k_T, expert_num_rows)
    return VocabUnion(
        size=k_T,
        target_ids=ids,
        expert_rows=torch.where(ids < expert_num_rows, ids, -1),
        target_rows=torch.where(ids < target_num_rows, ids, -1),
        expert_only_tokens=[],
        target_only_count=k_T - shared,
        shared_count=shared,
    )


def expand_rows(
    E: torch.Tensor,
    rows_map: torch.Tensor,
    generator: torch.Generator | None,
    missing_std: float = 1.0,
    *,
    missing_init: str = "normal",
) -> torch.Tensor:
    """Vocabulary-size expansion (eq. 2–3): E1[v] = E[rows_map[v]], or a fresh row where rows_map[v] < 0.

    missing_init "normal" draws z ~ N(0, missing_std²) (paper); "mean" uses the mean of E's rows,
    the deterministic part of HF's ``resize_token_embeddings(mean_resizing=True)`` that the
    official code relies on (HF adds noise of covariance 1e-9·Σ, negligible and omitted). fp32.
    """
    if missing_init not in ("normal", "mean"):
        raise ValueError(f"missing_init={missing_init!r} is invalid; allowed: 'normal', 'mean'")
    E1 = E.detach().index_select(0, rows_map.clamp(min=0)).to(torch.float32)
    missing = (rows_map < 0).nonzero().squeeze(1)
    if missing.numel():
        if missing_init == "normal":
            fill = torch.randn(missing.numel(), E.shape[1], generator=generator).mul_(missing_std)
        else:
            fill = E.detach().to(torch.float32).mean(0).expand(missing.numel(), -1)
        E1[missing] = fill
    return E1


def sample_column_map(d_S: int, d_T: int, generator: torch.Generator | None) -> torch.Tensor:
    """Column map f of eq. 4: f(i) = i for i < d_S, uniform over [0, d_S) for i in [d_S, d_T)."""
    _check_widths(d_S, d_T)
    new = torch.randint(0, d_S, (d_T - d_S,), generator=generator)
    return torch.cat([torch.arange(d_S), new])


def official_column_map(d_S: int, d_T: int, seed: int) -> torch.Tensor:
    """Column map of the official code: Python ``random.randint(0, d_S-1)`` per new column, in order.

    Equals the official map when its global ``random`` state is fresh after
    ``transformers.set_seed(seed)``, which the official training script calls before transfer.
    """
    _check_widths(d_S, d_T)
    rng = random.Random(seed)
    new = torch.tensor([rng.randint(0, d_S - 1) for _ in range(d_T - d_S)], dtype=torch.long)
    return torch.cat([torch.arange(d_S), new])


def replicate_columns(E1: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 5–6: E2[:, i] = E1[:, f(i)] / c(i), c(i) = #{j : f(j) = f(i)}; returns (E2, c per source).

    The official code divides each source by (number of new columns copying it) + 1 before the
    copy, which is the same c(i): the original column belongs to its own group. So both modes
    share this function and differ only in how f is drawn.
    """
    counts = torch.bincount(f, minlength=E1.shape[1])
    E2 = E1.index_select(1, f)
    E2.div_(counts.index_select(0, f).to(E2.dtype))
    return E2, counts


def expand_hidden(E1: torch.Tensor, d_T: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden-size expansion (eq. 4–6) of E_S^1 (k×d_S) to E_S^2 (k×d_T); returns (E_S^2, f).

    d_S == d_T gives f = identity and E_S^2 = E_S^1 (the official code crashes there).
    """
    f = sample_column_map(E1.shape[1], d_T, generator)
    E2, _ = replicate_columns(E1, f)
    return E2, f


def pad_with_noise(E1: torch.Tensor, d_T: int, generator: torch.Generator | None, noise_std: float) -> torch.Tensor:
    """Paper's "w/o Expansion" ablation: keep the d_S columns as they are, add d_T − d_S N(0, noise_std²) columns."""
    _check_widths(E1.shape[1], d_T)
    noise = torch.randn(E1.shape[0], d_T - E1.shape[1], generator=generator).mul_(noise_std)
    return torch.cat([E1, noise], dim=1)


def fit_linear_map(
    A: torch.Tensor, B: torch.Tensor, method: str, *, fit_scale: bool = True
) -> tuple[torch.Tensor, float]:
    """Fit W (d_S×d_T) with A W ≈ B on paired rows; returns (W, scale), E_S^2 = scale · E_S^1 W.

    "lstsq": unconstrained least squares (torch.linalg.lstsq; scale is 1).
    "procrustes": semi-orthogonal W = U Vᵀ from the SVD U Σ Vᵀ of AᵀB (rows of W orthonormal,
    so distances between expert tokens are kept); with fit_scale, the least-squares scalar
    s = tr Σ / ‖A‖²_F (‖A W‖_F = ‖A‖_F because W Wᵀ = I).
    """
    if method == "lstsq":
        return torch.linalg.lstsq(A, B).solution, 1.0
    if method == "procrustes":
        U, S, Vh = torch.linalg.svd(A.T @ B, full_matrices=False)
        scale = float(S.sum() / A.square().sum()) if fit_scale else 1.0
        return U @ Vh, scale
    raise ValueError(f"method={method!r} is invalid; allowed: 'lstsq', 'procrustes'")


def fuse(E_S2: torch.Tensor, E_T1: torch.Tensor, alpha: float, *, inplace: bool = False) -> torch.Tensor:
    """Weighted fusion (eq. 7): Ê = alpha·E_S^2 + (1 − alpha)·E_T^1, alpha in [0, 1].

    inplace=True writes Ê into E_S2 and leaves (1 − alpha)·E_T^1 in E_T1, bit-identical to the
    out-of-place result; it spares two full-size allocations, which at Llama shapes cost more
    than the arithmetic (fresh pages are slow to fault in).
    """
    check_alpha(alpha)
    if E_S2.shape != E_T1.shape:
        raise ValueError(
            f"cannot fuse E_S^2 of shape {tuple(E_S2.shape)} with E_T^1 of shape {tuple(E_T1.shape)}; "
            "expand both to the union vocabulary and the target hidden size first"
        )
    if inplace:
        return E_S2.mul_(alpha).add_(E_T1.mul_(1.0 - alpha))
    return (E_S2 * alpha).add_(E_T1 * (1.0 - alpha))


def seeded_generator(seed: int, stage: str) -> torch.Generator:
    """A CPU generator for one stage of the transfer ("expert_rows", "target_rows", "columns").

    One stream per stage, so that changing one stage (say, how many rows are missing) never
    shifts another stage's draws (the column map).
    """
    digest = hashlib.sha256(f"pen2sword/{stage}/{seed}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def transfer_embeddings(
    E_S: torch.Tensor,
    vocab_S: Mapping[str, int],
    E_T: torch.Tensor,
    vocab_T: Mapping[str, int],
    options: TransferOptions | None = None,
) -> tuple[torch.Tensor, VocabUnion, dict[str, Any]]:
    """Eq. 2–7 on raw matrices: returns (Ê in fp32, the union it is indexed by, a report).

    E_S is the expert's input embedding (rows indexed by vocab_S ids), E_T the target's;
    options default to the paper's settings.
    """
    options = options if options is not None else TransferOptions()
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    d_S, d_T = E_S.shape[1], E_T.shape[1]
    _check_widths(d_S, d_T)
    official = options.compat == "official"

    if official:
        union = pair_rows_by_id(len(vocab_T), E_S.shape[0], E_T.shape[0])
    else:
        union = build_vocab_union(vocab_S, vocab_T, E_S.shape[0], E_T.shape[0])
    clock = _lap(seconds, "vocab_union", clock)

    missing_init = "mean" if official else "normal"
    E_S1 = expand_rows(E_S, union.expert_rows, seeded_generator(options.seed, "expert_rows"),
                       options.missing_std, missing_init=missing_init)
    E_T1 = expand_rows(E_T, union.target_rows, seeded_generator(options.seed, "target_rows"),
                       options.missing_std, missing_init=missing_init)
    clock = _lap(seconds, "expand_rows", clock)

    columns: dict[str, Any] = {"new_columns": d_T - d_S}
    if options.expansion == "replicate":
        if official:
            f = official_column_map(d_S, d_T, options.seed)
        else:
            f = sample_column_map(d_S, d_T, seeded_generator(options.seed, "columns"))
        E_S2, counts = replicate_columns(E_S1, f)
        columns.update(replicated_source_columns=int((counts > 1).sum()), max_c=int(counts.max()))
    elif options.expansion == "noise":
        noise_std = options.noise_std if options.noise_std is not None else float(E_S1.std())
        E_S2 = pad_with_noise(E_S1, d_T, seeded_generator(options.seed, "columns"), noise_std)
        columns.update(noise_std=noise_std)
    else:
        shared = ((union.expert_rows >= 0) & (union.target_rows >= 0)).nonzero().squeeze(1)
        if shared.numel() == 0:
            raise ValueError(
                f"expansion={options.expansion!r} fits its map on tokens both models have rows for, "
                "but the vocabularies share none; use expansion='replicate'"
            )
        A, B = E_S1.index_select(0, shared), E_T1.index_select(0, shared)
        W, scale = fit_linear_map(A, B, options.expansion, fit_scale=options.procrustes_scale)
        E_S2 = (E_S1 @ W).mul_(scale)
        residual = float(torch.linalg.norm(E_S2.index_select(0, shared) - B) / torch.linalg.norm(B))
        columns.update(fit_rows=int(shared.numel()), fit_scale=scale, fit_relative_error=residual)
    del E_S1
    clock = _lap(seconds, "expand_hidden", clock)

    alpha = options.effective_alpha
    E_hat = fuse(E_S2, E_T1, alpha, inplace=True)
    del E_T1
    clock = _lap(seconds, "fuse", clock)

    # Hash the fp32 row-major bytes through the buffer protocol: no 600 MB copy at Llama shapes.
    digest = hashlib.sha256(memoryview(E_hat.contiguous().numpy()).cast("B")).hexdigest()
    _lap(seconds, "hash", clock)

    report: dict[str, Any] = {
        "method": "pen2sword",
        "paper_equations": "§4.4 eq. 2-7",
        "compat": options.compat,
        "expansion": options.expansion,
        "fusion": options.fusion,
        "alpha": alpha,
        "seed": options.seed,
        "options": dataclasses.asdict(options),
        "d_S": d_S,
        "d_T": d_T,
        "k_S": len(vocab_S),
        "k_T": len(vocab_T),
        "k_union": union.size,
        "expert_embedding_rows": int(E_S.shape[0]),
        "target_embedding_rows": int(E_T.shape[0]),
        # Rows past the target tokenizer (vocabularies padded to a multiple) have no token; both
        # modes drop them, as add_tokens numbers new tokens from the tokenizer's length.
        "target_rows_dropped": max(0, int(E_T.shape[0]) - len(vocab_T)),
        "shared_count": union.shared_count,
        "expert_only_count": len(union.expert_only_tokens),
        "target_only_count": union.target_only_count,
        "expert_only_tokens_first": union.expert_only_tokens[:_PREVIEW_TOKENS],
        "rows_filled": {
            "expert": int((union.expert_rows < 0).sum()),
            "target": int((union.target_rows < 0).sum()),
            "init": "mean of existing rows" if official else f"N(0, {options.missing_std}^2)",
        },
        "columns": columns,
        "seconds": seconds,
        "fused_sha256": digest,
        "fused_sha256_of": "float32 row-major bytes of E_hat",
    }
    if official:
        report["official"] = {
            "expert_rows_truncated": max(0, int(E_S.shape[0]) - len(vocab_T)),
            "id_pairs_with_different_strings": _id_pairs_with_different_strings(vocab_S, vocab_T),
            "official_code_would_crash": d_S == d_T,
        }
    return E_hat, union, report


def transfer(
    expert_model: Any,
    expert_tokenizer: Any,
    target_model: Any,
    target_tokenizer: Any,
    options: TransferOptions | None = None,
) -> TransferResult:
    """Install Ê (eq. 2–7) in an in-memory HF target model; the target model and tokenizer are
    modified in place and returned.

    - vocabulary: resized to |V| (``config.vocab_size`` follows); expert-only tokens are added to
      the target tokenizer at the ids Ê gives them, special where the expert marks them special.
    - input embedding: Ê in the target's dtype.
    - lm_head: a tied target kept tied has lm_head = Ê; an untied (or untied-now) target keeps its
      output rows for existing tokens, and the output rows of the new tokens (the expert-only
      tokens; also any target token past the old output matrix) start at their rows of Ê, as a
      tied head would, each rescaled to the mean norm of the existing output rows. Ê's direction
      makes each new token's logit depend on the hidden state, so the token can be predicted (a
      row shared by every new token, such as the mean of the old rows, gives a logit that never
      beats the best old token); the rescaling keeps its logits on the scale of the others (the
      N(0, 1) rows of eq. 2–3 are far longer than trained output rows: unscaled, the 16 new
      tokens took 98% of the probability mass of a transferred nano target on code). Official
      mode has no new tokens (ids are paired, not united); rows it adds for target tokens lacking
      one take the mean of the existing output rows, as the resize the official code relies on does.
    - padding: a ``padding_idx`` freezes its row. In paper mode it is kept only on a dedicated pad
      token (the tokenizer's special pad, not also bos/eos/unk); otherwise it is cleared on the
      module and in ``config.pad_token_id`` (which rebuilds it on reload). Official mode sets 0.
    """
    options = options if options is not None else TransferOptions()
    seconds: dict[str, float] = {}
    target_embedding = target_model.get_input_embeddings()
    if not isinstance(target_embedding, nn.Embedding):
        raise TypeError(
            f"target input embedding is a {type(target_embedding).__name__}, not nn.Embedding; "
            "Pen2Sword transfer supports Llama-style models whose get_input_embeddings() is an nn.Embedding"
        )
    config = target_model.config
    tied_before = _is_tied(target_model)
    tie_config_before = bool(getattr(config, "tie_word_embeddings", False))
    padding_idx_before = target_embedding.padding_idx
    pad_config_before = getattr(config, "pad_token_id", None)
    dtype = target_embedding.weight.dtype
    official = options.compat == "official"

    E_hat, union, report = transfer_embeddings(
        expert_model.get_input_embeddings().weight,
        expert_tokenizer.get_vocab(),
        target_embedding.weight,
        target_tokenizer.get_vocab(),
        options,
    )
    clock = time.perf_counter()

    added = _extend_tokenizer(target_tokenizer, expert_tokenizer, union)
    clock = _lap(seconds, "tokenizer", clock)

    untie = tied_before and options.effective_tie == "untie"
    if untie:
        # Own copy of the original output rows; set the flag first, as resize re-ties by config.
        output = target_model.get_output_embeddings()
        output.weight = nn.Parameter(output.weight.detach().clone(), requires_grad=output.weight.requires_grad)
        config.tie_word_embeddings = False
    output = target_model.get_output_embeddings()
    old_output_rows = output.weight.shape[0] if output is not None else 0
    # mean_resizing=False: HF's mean resize builds a d_T×d_T covariance (minutes at 13B); the new
    # input rows are overwritten by Ê and the new output rows are set just below.
    target_model.resize_token_embeddings(union.size, mean_resizing=False)
    embedding = target_model.get_input_embeddings()
    with torch.no_grad():
        embedding.weight.copy_(E_hat)
        output = target_model.get_output_embeddings()
        tied_after = _is_tied(target_model)
        # Union positions whose token had no output row: past the target tokenizer (the expert-only
        # tokens, even where the matrix was padded beyond it) or past the old matrix.
        head_from = min(report["k_T"], old_output_rows)
        head_rows_from_E_hat, head_row_norms = 0, None
        if output is not None and not tied_after:
            if official:
                if union.size > old_output_rows:
                    kept = output.weight[:old_output_rows]
                    output.weight[old_output_rows:] = kept.to(torch.float32).mean(0).to(kept.dtype)
            elif union.size > head_from:
                rows = E_hat[head_from:]
                norms = rows.norm(dim=1, keepdim=True)
                head_row_norms = {"E_hat_mean": float(norms.mean())}
                if head_from > 0:  # Ê's direction at the norm of the target's own output rows
                    head_norm = output.weight[:head_from].to(torch.float32).norm(dim=1).mean()
                    rows = rows * (head_norm / norms.clamp_min(1e-12))
                    head_row_norms["rescaled_to"] = float(head_norm)
                output.weight[head_from:] = rows.to(output.weight.dtype)
                head_rows_from_E_hat = union.size - head_from
    if hasattr(config, "tie_word_embeddings"):
        config.tie_word_embeddings = tied_after
    config.vocab_size = union.size
    padding = _set_padding(target_model, target_tokenizer, options)
    _lap(seconds, "install", clock)

    report["seconds"].update(seconds)
    report.update(
        target_dtype=str(dtype).removeprefix("torch."),
        tokenizer_added_tokens=added,
        tie={
            "mode": options.effective_tie,
            "tied_before": tied_before,
            "tied_after": tied_after,
            "config_tie_word_embeddings_before": tie_config_before,
            "config_tie_word_embeddings_after": bool(getattr(config, "tie_word_embeddings", False)),
            "lm_head": (
                "tied to the input embedding (= E_hat)" if tied_after
                else "original output rows kept; rows for new tokens = mean of existing output rows"
                if official
                else "original output rows kept; rows for new tokens = their rows of E_hat, each rescaled "
                     "to the mean norm of the existing output rows"
            ),
            "lm_head_rows_from_E_hat": head_rows_from_E_hat,
            "lm_head_new_row_norms": head_row_norms,
        },
        padding={
            "padding_idx_before": padding_idx_before,
            "config_pad_token_id_before": pad_config_before,
            **padding,
        },
    )
    return TransferResult(model=target_model, tokenizer=target_tokenizer, embedding=E_hat, union=union, report=report)


def transfer_to_dir(
    expert: str | Path, target: str | Path, out: str | Path, options: TransferOptions | None = None
) -> dict[str, Any]:
    """Load expert and target from local HF directories, transfer, save a loadable HF directory
    (model, tokenizer, ``pen2sword_transfer.json``) atomically at ``out``; returns the report."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    if out.exists():
        raise FileExistsError(f"transfer output {out} already exists; remove it or choose another path")
    expert_model = AutoModelForCausalLM.from_pretrained(expert, local_files_only=True)
    expert_tokenizer = AutoTokenizer.from_pretrained(expert, local_files_only=True)
    target_model = AutoModelForCausalLM.from_pretrained(target, local_files_only=True)
    target_tokenizer = AutoTokenizer.from_pretrained(target, local_files_only=True)
    result = transfer(expert_model, expert_tokenizer, target_model, target_tokenizer, options)
    del expert_model
    report = {**result.report, "expert_path": str(expert), "target_path": str(target)}

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        result.model.save_pretrained(staging)
        result.tokenizer.save_pretrained(staging)
        (staging / REPORT_FILENAME).write_text(to_json(report), encoding="utf-8")
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report


def check_alpha(alpha: float, field: str = "alpha") -> None:
    """Raise ValueError unless alpha is a real number in [0, 1] (eq. 7's fusion ratio)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0:
        raise ValueError(f"{field}={alpha!r} is invalid; allowed: a number in [0, 1] (paper: 0.5)")


def _check_widths(d_S: int, d_T: int) -> None:
    if d_S > d_T:
        raise ValueError(
            f"expert hidden size d_S={d_S} is larger than target hidden size d_T={d_T}; Pen2Sword "
            "widens a smaller expert's embedding into a larger target (eq. 4 needs d_S <= d_T): "
            "choose an expert no wider than the target"
        )


def _check_choice(field: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"TransferOptions.{field}={value!r} is invalid; allowed: {', '.join(map(repr, allowed))}")


def _check_bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"TransferOptions.{field}={value!r} is invalid; allowed: True, False")


def _check_positive(field: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"TransferOptions.{field}={value!r} is invalid; allowed: a finite number > 0")


def _lap(seconds: dict[str, float], stage: str, start: float) -> float:
    now = time.perf_counter()
    seconds[stage] = round(now - start, 4)
    return now


def _tokens_by_id(vocab: Mapping[str, int], side: str) -> list[str]:
    """Tokens in id order; ids must be exactly 0..n−1, since add_tokens appends new ids at n."""
    tokens: list[str] = [""] * len(vocab)
    taken = [False] * len(vocab)
    for tok, i in vocab.items():
        if not 0 <= i < len(vocab) or taken[i]:
            raise ValueError(
                f"{side} tokenizer ids are not exactly 0..{len(vocab) - 1} (found id {i} for {tok!r}); union "
                "positions must equal tokenizer ids, so use a tokenizer whose vocabulary has no holes"
            )
        tokens[i], taken[i] = tok, True
    return tokens


def _id_pairs_with_different_strings(vocab_S: Mapping[str, int], vocab_T: Mapping[str, int]) -> int:
    """How many ids the official id pairing joins although the two tokenizers mean different tokens."""
    expert_by_id = {i: tok for tok, i in vocab_S.items()}
    return sum(1 for tok, i in vocab_T.items() if i in expert_by_id and expert_by_id[i] != tok)


def _is_tied(model: Any) -> bool:
    """Tied means lm_head and the input embedding share storage: the state that trains and saves."""
    output = model.get_output_embeddings()
    return output is not None and output.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def _extend_tokenizer(target_tokenizer: Any, expert_tokenizer: Any, union: VocabUnion) -> int:
    """Add the expert-only tokens to the target tokenizer, at the union positions Ê gives them.

    The expert's added tokens keep their flags (special, normalized, strip); plain vocabulary
    pieces become non-special added tokens matched by their literal string.
    """
    from transformers import AddedToken

    if not union.expert_only_tokens:
        return 0
    expert_added = {t.content: t for t in expert_tokenizer.added_tokens_decoder.values()}
    expert_special = set(expert_tokenizer.all_special_tokens)
    new_tokens = []
    for tok in union.expert_only_tokens:
        flags = expert_added.get(tok)
        if flags is not None:
            new_tokens.append(AddedToken(tok, single_word=flags.single_word, lstrip=flags.lstrip,
                                         rstrip=flags.rstrip, normalized=flags.normalized,
                                         special=flags.special or tok in expert_special))
        else:
            new_tokens.append(AddedToken(tok, special=tok in expert_special))
    target_tokenizer.add_tokens(new_tokens)
    start = union.size - len(union.expert_only_tokens)
    got = target_tokenizer.convert_tokens_to_ids(union.expert_only_tokens)
    if len(target_tokenizer) != union.size or got != list(range(start, union.size)):
        raise RuntimeError(
            f"the target tokenizer placed the {len(new_tokens)} expert-only tokens at ids {got[:5]}... "
            f"(length {len(target_tokenizer)}), not at {start}..{union.size - 1} where their fused rows are"
        )
    return len(new_tokens)


def _is_dedicated_pad(tokenizer: Any, idx: int) -> bool:
    """A pad token used for nothing else: the tokenizer's special pad, not also bos/eos/unk."""
    pad = tokenizer.pad_token
    if pad is None or not 0 <= idx < len(tokenizer) or tokenizer.convert_ids_to_tokens(idx) != pad:
        return False
    return pad in tokenizer.all_special_tokens and pad not in {
        tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token
    }


def _set_padding(model: Any, tokenizer: Any, options: TransferOptions) -> dict[str, Any]:
    """Decide which row, if any, stays frozen as padding_idx (module and config agree, so a
    reload rebuilds the same embedding); returns the after-state for the report."""
    embedding = model.get_input_embeddings()
    config = model.config
    if options.compat == "official":
        # The official code installs nn.Embedding(..., padding_idx=0), freezing row 0.
        embedding.padding_idx = 0
        config.pad_token_id = 0
        note = "official: padding_idx=0 freezes row 0 whatever token it is"
    else:
        cleared = []
        if embedding.padding_idx is not None and not _is_dedicated_pad(tokenizer, embedding.padding_idx):
            cleared.append(f"module padding_idx {embedding.padding_idx}")
            embedding.padding_idx = None
        pad_id = getattr(config, "pad_token_id", None)
        if pad_id is not None and not _is_dedicated_pad(tokenizer, pad_id):
            cleared.append(f"config.pad_token_id {pad_id}")
            config.pad_token_id = None
        note = (
            f"cleared {' and '.join(cleared)}: not a dedicated pad token, its row must stay trainable"
            if cleared else "unchanged"
        )
    return {
        "padding_idx_after": embedding.padding_idx,
        "config_pad_token_id_after": getattr(config, "pad_token_id", None),
        "note": note,
    }
