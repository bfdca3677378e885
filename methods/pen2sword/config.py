"""Pen2Sword's own settings: the ``pen2sword`` config section, registered with its methods."""

from __future__ import annotations

from dataclasses import dataclass

from harness.config import ConfigError, ConfigSection, added_later, check_value, one_of
from methods.pen2sword.transfer import TransferOptions

_check, _one_of = check_value, one_of


@dataclass(frozen=True)
class Pen2SwordConfig:
    """The ``pen2sword`` section: how the expert is chosen and how its embedding is transferred."""

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
    # The experts DPF ranks (select=dpf) and w/o DPF draws among (select=random); hashed as model.candidates,
    # where it lived before the section was Pen2Sword's own.
    candidates: tuple[str, ...] = ("chat-expert", "code-expert", "code-instruct-expert",
                                   "vicuna-v1.3-expert", "vicuna-v1.5-expert")

    def __post_init__(self) -> None:
        _one_of("pen2sword.select", self.select, ("fixed", "random", "dpf"))
        _check(self.dpf_judge in ("reference", "loss") or self.dpf_judge.startswith("openai:"), "pen2sword.dpf_judge",
               self.dpf_judge, "openai:<model> | reference | loss")
        _check(self.dpf_questions >= 1, "pen2sword.dpf_questions", self.dpf_questions, ">= 1")
        _check(self.embedding_warmup_steps >= 0, "pen2sword.embedding_warmup_steps", self.embedding_warmup_steps,
               ">= 0 (0 = no warm-up)")
        _check(len(self.candidates) > 0, "pen2sword.candidates", self.candidates, "a non-empty list of models")
        try:  # the transfer's own checks (one validator, TransferOptions), run when the config is built
            self.transfer_options(seed=0)
        except ValueError as err:
            raise ConfigError(str(err).replace("TransferOptions.", "pen2sword.")) from None

    def transfer_options(self, seed: int) -> TransferOptions:
        """The transfer this section configures; ``seed`` is the run's unless ``transfer_seed`` is set."""
        return TransferOptions(compat=self.compat, expansion=self.expansion, fusion=self.fusion, alpha=self.alpha,
                               seed=seed if self.transfer_seed is None else self.transfer_seed,
                               missing_std=self.missing_std, tie_word_embeddings=self.tie_word_embeddings)


def check_dpf_questions(config) -> None:
    """DPF asks its questions of the validation split; a run that selects by DPF must have enough of them."""
    p = config.pen2sword
    if p.select == "dpf" and p.dpf_questions > config.data.n_validation:
        raise ConfigError(f"pen2sword.dpf_questions={p.dpf_questions} exceeds data.n_validation="
                          f"{config.data.n_validation}: DPF asks its questions of the validation split; lower "
                          "pen2sword.dpf_questions or raise data.n_validation")


# Hashed into run ids even at its defaults, as before sections were registered; ``alpha=0.25`` on the
# command line is ``pen2sword.alpha=0.25``.
SECTION = ConfigSection("pen2sword", Pen2SwordConfig, aliases={"alpha": "pen2sword.alpha"}, hashed_at_default=True,
                        hashed_as={"candidates": "model.candidates"}, check=check_dpf_questions)
