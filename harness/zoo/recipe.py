"""What the built-in model family is: its roles, their paper counterparts, and one frozen recipe per scale.

The recipe is data, not code: model shapes, token budgets, data mixes, learning rates and seeds. Its
hash (with :data:`FORMAT_VERSION`) keys the family's cache directory, so a changed recipe builds a new
family instead of reusing an old one.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass, field

# Bump when the build code changes what a recipe produces (corpus rules, tokenizer, training loop).
FORMAT_VERSION = 2

DOMAINS = ("code", "math", "prose")  # pretraining text domains (held-out slices of each)
EVAL_DOMAINS = (*DOMAINS, "instruct")  # + held-out instruction pairs, loss on the response only
INSTRUCTION_POOLS = ("code-pairs", "doc-pairs", "package-pairs")
SCALES = ("nano", "micro")


@dataclass(frozen=True)
class Shape:
    """A Llama shape; ``hidden_size / heads`` is the head dimension (even, for rotary embeddings)."""

    hidden_size: int
    layers: int
    heads: int
    intermediate_size: int

    def __post_init__(self) -> None:
        if self.hidden_size % self.heads or (self.hidden_size // self.heads) % 2:
            raise ValueError(f"hidden_size {self.hidden_size} must split into {self.heads} heads of even size")


@dataclass(frozen=True)
class Step:
    """One checkpoint of the family: trained from scratch (``parent=None``) or from ``parent``.

    ``mix`` maps a text domain (pretraining) or an instruction pool (instruction tuning) to its share
    of the training rows; ``tokenizer`` is ``"base"`` or ``"code"`` (base + 16 code tokens).
    """

    name: str
    kind: str  # "pretrain" | "continue" | "instruct"
    tokens: int
    lr: float
    seed: int
    mix: tuple[tuple[str, float], ...]
    parent: str | None = None
    shape: Shape | None = None
    tokenizer: str = "base"

    def __post_init__(self) -> None:
        if self.kind not in ("pretrain", "continue", "instruct"):
            raise ValueError(f"step {self.name!r}: kind must be pretrain, continue or instruct, got {self.kind!r}")
        if (self.kind == "pretrain") != (self.parent is None) or (self.kind == "pretrain") != (self.shape is not None):
            raise ValueError(f"step {self.name!r}: a pretrain step has a shape and no parent; others the reverse")
        sources = INSTRUCTION_POOLS if self.kind == "instruct" else DOMAINS
        unknown = [k for k, _ in self.mix if k not in sources]
        if unknown:
            raise ValueError(f"step {self.name!r}: unknown data sources {unknown}; use {sources}")


@dataclass(frozen=True)
class Recipe:
    scale: str
    vocab_size: int
    seq_len: int
    batch_size: int
    corpus_bytes: tuple[tuple[str, int], ...]  # training text gathered per domain
    tokenizer_bytes: int  # per domain, from the training text
    eval_bytes: int  # held-out text scored per domain (UTF-8 bytes)
    max_pair_chars: int  # instruction pairs longer than this are skipped
    warmup: float  # fraction of steps
    min_lr_ratio: float
    weight_decay: float
    steps: tuple[Step, ...]
    heldout_permille: int = 50  # sources whose key hashes below this are held out (same rule at every scale)
    # A training.precision value. "auto": bf16 where this machine's CPU runs it faster than fp32, else
    # fp32; resolved once per build by harness.precision and recorded in each built step's record.
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in ("auto", "fp32", "bf16"):  # the family trains on CPU: no fp16
            raise ValueError(f"recipe {self.scale!r}: precision must be auto, fp32 or bf16, got {self.precision!r}")

    def step(self, name: str) -> Step:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(f"the {self.scale} recipe has no step {name!r}; steps: {[s.name for s in self.steps]}")

    def lineage(self, name: str) -> list[Step]:
        """The steps ``name`` depends on, root first, ending with ``name`` itself."""
        chain = [self.step(name)]
        while chain[-1].parent is not None:
            chain.append(self.step(chain[-1].parent))
        return chain[::-1]

    def shape_of(self, name: str) -> Shape:
        root = self.lineage(name)[0]
        assert root.shape is not None
        return root.shape

    def to_dict(self) -> dict:
        return asdict(self)

    @functools.cached_property  # the family's folder name: worked out once per recipe, not at every model lookup
    def hash(self) -> str:
        blob = json.dumps({"format": FORMAT_VERSION, "recipe": self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Role:
    """A name the rest of the harness asks for, the checkpoint that serves it, and what it mirrors."""

    name: str
    checkpoint: str
    stands_in_for: str  # the paper's model, as the paper names it
    paper_model: str | None  # registry name of that model (what the ``paper`` scale resolves to)
    how_made: str
    domain: str | None = None  # the text domain a domain expert is expected to win on
    notes: str = field(default="")
    # The role of the untuned model this one was tuned from: ProxyTuning's anti-expert for it at scales nano and
    # micro (at scale paper the paper model's own ``untuned_base`` is used, harness.models.untuned_base).
    untuned_base: str | None = None


ROLES: tuple[Role, ...] = (
    Role("target-base", "target-base", "Llama2-13B-Base", "llama-2-13b",
         "largest width d_T, pretrained on prose with a little code and math"),
    Role("target-instruct", "target-instruct", "Llama2-13B-Chat", "llama-2-13b-chat",
         "target base + instruction tuning on the chat mix", untuned_base="target-base"),
    Role("small-base", "small-base", "Llama2-7B-Base", "llama-2-7b",
         "width d_S = 0.8 d_T, same data mix as the target, fewer tokens"),
    Role("anti-expert", "small-base", "untuned small model (ProxyTuning's anti-expert)", "llama-2-7b",
         "the small base itself", notes="same checkpoint as small-base"),
    Role("chat-expert", "chat-expert", "Llama2-7B-Chat", "llama-2-7b-chat",
         "small base + instruction tuning on the chat mix", untuned_base="small-base"),
    Role("code-expert", "code-expert", "CodeLlama-7B", "codellama-7b",
         "small base + continued pretraining on code; tokenizer + 16 code tokens", domain="code",
         untuned_base="small-base"),
    Role("code-instruct-expert", "code-instruct-expert", "CodeLlama-7B-Instruct", "codellama-7b-instruct",
         "code expert + docstring-to-function instruction tuning", domain="code", untuned_base="code-expert"),
    Role("small-base-b", "small-base-b", "Vicuna's base (LLaMA-7B / Llama2-7B)", None,
         "second small base: other seed and a code/math-heavier mix"),
    Role("vicuna-v1.3-expert", "vicuna-v1.3-expert", "Vicuna-7B-v1.3", "vicuna-7b-v1.3",
         "small base b + instruction tuning, prose-heavy mix", untuned_base="small-base-b"),
    Role("vicuna-v1.5-expert", "vicuna-v1.5-expert", "Vicuna-7B-v1.5", "vicuna-7b-v1.5",
         "small base b + instruction tuning, code-heavier mix, other seed", untuned_base="small-base-b"),
    Role("math-expert", "math-expert", "the math suite's expert (not named in the paper)", None,
         "small base + continued pretraining on GSM8K/MATH train text", domain="math", untuned_base="small-base"),
    Role("dr100-expert", "target-instruct", "DR 100% expert (Figure 4 left: same width as the target)",
         "vicuna-7b-v1.5", "the instruction-tuned target: same width d_T",
         notes="same checkpoint as target-instruct", untuned_base="target-base"),
    Role("dr67-base", "dr67-base", "Llama3.2-1B (DR 67%)", "llama-3.2-1b",
         "width 2/3 d_T, same data and tokens as the small base"),
    Role("dr67-expert", "dr67-expert", "Llama3.2-1B-Instruct (DR 67%, Figure 4 right)", "llama-3.2-1b-instruct",
         "dr67 base + instruction tuning on the chat mix", untuned_base="dr67-base"),
    # Targets of Figures 4 and 5, which are not the main target at scale paper: at nano and micro each is a checkpoint
    # of width d_T, so an expert's width over the target's is the paper's ratio at every scale.
    Role("dr100-target", "target-base", "Vicuna-7B-v1.5 (Figure 4's DR 100% target)", "vicuna-7b-v1.5",
         "the target base: width d_T, as wide as the DR 100% expert (the instruction-tuned target)",
         notes="same checkpoint as target-base"),
    Role("dr67-target", "target-base", "Llama3.2-3B (Figure 4's DR 67% target)", "llama-3.2-3b",
         "the target base: width d_T, so the DR 67% expert's width is 2/3 of it (Llama-3.2: 2048 / 3072)",
         notes="same checkpoint as target-base"),
    Role("alpha-target", "target-instruct", "Vicuna-13B-v1.3 (Figure 5's target)", "vicuna-13b-v1.3",
         "the instruction-tuned target: width d_T, an instruction-tuned model of another lineage than the Vicuna "
         "stand-ins (small-base-b), as Vicuna-13B-v1.3 (from LLaMA-13B) is to Vicuna-7B-v1.5 (from Llama-2-7B)",
         notes="same checkpoint as target-instruct", untuned_base="target-base"),
)
ROLE_BY_NAME = {r.name: r for r in ROLES}

# The instruction-tuning mixes (shares of rows per pool). None of them uses the suites' fine-tuning
# data (code-instructions, math-instructions): those stay new to every model in the family.
CHAT_MIX = (("doc-pairs", 0.5), ("code-pairs", 0.4), ("package-pairs", 0.1))
VICUNA_13_MIX = (("doc-pairs", 0.7), ("code-pairs", 0.2), ("package-pairs", 0.1))
VICUNA_15_MIX = (("code-pairs", 0.5), ("doc-pairs", 0.4), ("package-pairs", 0.1))
CODE_INSTRUCT_MIX = (("code-pairs", 1.0),)
BASE_MIX = (("prose", 0.80), ("code", 0.10), ("math", 0.10))  # general text, "a little code and math"
BASE_B_MIX = (("prose", 0.60), ("code", 0.25), ("math", 0.15))  # the second family's other data mix


def _steps(T: Shape, S: Shape, D67: Shape, tokens: dict[str, int], lr: dict[str, float]) -> tuple[Step, ...]:
    return (
        Step("target-base", "pretrain", tokens["target"], lr["pretrain"], 11, BASE_MIX, shape=T),
        Step("small-base", "pretrain", tokens["small"], lr["pretrain"], 12, BASE_MIX, shape=S),
        Step("small-base-b", "pretrain", tokens["second"], lr["pretrain"], 13, BASE_B_MIX, shape=S),
        # Same data and tokens as small-base: the DR 67% and DR 80% experts differ in width only.
        Step("dr67-base", "pretrain", tokens["small"], lr["pretrain"], 14, BASE_MIX, shape=D67),
        Step("code-expert", "continue", tokens["code"], lr["continue"], 21, (("code", 1.0),),
             parent="small-base", tokenizer="code"),
        Step("math-expert", "continue", tokens["math"], lr["continue"], 22, (("math", 1.0),),
             parent="small-base"),
        Step("target-instruct", "instruct", tokens["instruct"], lr["instruct"], 31, CHAT_MIX, parent="target-base"),
        Step("chat-expert", "instruct", tokens["instruct"], lr["instruct"], 32, CHAT_MIX, parent="small-base"),
        Step("code-instruct-expert", "instruct", tokens["instruct"], lr["instruct"], 33, CODE_INSTRUCT_MIX,
             parent="code-expert", tokenizer="code"),
        Step("vicuna-v1.3-expert", "instruct", tokens["instruct"], lr["instruct"], 34, VICUNA_13_MIX,
             parent="small-base-b"),
        Step("vicuna-v1.5-expert", "instruct", tokens["instruct"], lr["instruct"], 35, VICUNA_15_MIX,
             parent="small-base-b"),
        Step("dr67-expert", "instruct", tokens["instruct"], lr["instruct"], 36, CHAT_MIX, parent="dr67-base"),
    )


NANO = Recipe(
    scale="nano", vocab_size=512, seq_len=64, batch_size=8,
    corpus_bytes=(("code", 300_000), ("math", 150_000), ("prose", 300_000)),
    tokenizer_bytes=60_000, eval_bytes=3_000, max_pair_chars=600,
    warmup=0.05, min_lr_ratio=0.1, weight_decay=0.01, precision="auto",
    steps=_steps(Shape(60, 2, 2, 160), Shape(48, 2, 2, 128), Shape(40, 2, 2, 108),
                 {"target": 24_576, "small": 16_384, "second": 12_288, "code": 8_192, "math": 8_192,
                  "instruct": 4_096},
                 {"pretrain": 1e-2, "continue": 5e-3, "instruct": 3e-3}),
)

# d_S / d_T = 256 / 320 = 0.8 (the paper's 7B -> 13B); 216 / 320 = 0.675 (Llama-3.2 1B -> 3B: 2048 / 3072).
MICRO = Recipe(
    scale="micro", vocab_size=8192, seq_len=256, batch_size=8,
    corpus_bytes=(("code", 2_500_000), ("math", 1_500_000), ("prose", 3_000_000)),
    tokenizer_bytes=800_000, eval_bytes=24_000, max_pair_chars=1500,
    warmup=0.05, min_lr_ratio=0.1, weight_decay=0.01, precision="auto",
    steps=_steps(Shape(320, 4, 5, 864), Shape(256, 4, 4, 688), Shape(216, 4, 4, 576),
                 # optimizer steps of 8 x 256 tokens: target 256, small and dr67 160, second 80, code 96,
                 # math 48, instruction tuning 20
                 {"target": 524_288, "small": 327_680, "second": 163_840, "code": 196_608, "math": 98_304,
                  "instruct": 40_960},
                 {"pretrain": 2e-3, "continue": 1e-3, "instruct": 5e-4}),
)

RECIPES: dict[str, Recipe] = {"nano": NANO, "micro": MICRO}


def recipe_for(scale: str) -> Recipe:
    if scale not in RECIPES:
        raise ValueError(f"no built-in model family at scale {scale!r}; scales with a family: {', '.join(RECIPES)} "
                         "(the 'paper' scale names hub models instead)")
    return RECIPES[scale]
