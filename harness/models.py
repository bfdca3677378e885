"""Models by name, directory, GGUF file or hub id: the registry entries and the one way to load them.

Registered names are the built-in family's roles (``target-base``, ``code-expert``, ...; built on first
use at scale ``nano`` or ``micro``, and mapped to the paper's hub models at scale ``paper``) and the
paper's models by hub id (``llama-2-13b`` = ``meta-llama/Llama-2-13b-hf``, ...).

:func:`resolve_model` turns any of these into a :class:`ResolvedModel` (a loadable path and an identity
for provenance) without loading weights; :func:`load_model` and :func:`load_tokenizer` load it. A hub
id on a machine without the hub raises :class:`ModelUnavailableError` saying what to pass instead; a
path that does not exist raises ``FileNotFoundError``, an unknown name ``RegistryError``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.io import atomic_write_json, read_json, sha256_file
from harness.paths import cache_dir
from harness.registry import MODELS, RegistryError
from harness.zoo.recipe import ROLES, SCALES

HUB_TIMEOUT_S = 10.0
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


class ModelUnavailableError(RuntimeError):
    """A model cannot be had here (no hub, not built, unreadable file); the message says what to do."""


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: a role of the built-in family, or a hub model the paper uses."""

    name: str
    hub_id: str | None
    zoo_role: str | None
    stands_in_for: str  # the paper's model, as the paper names it (a hub entry: itself)
    family: str
    hidden_size: int | None = None
    notes: str = ""
    paper_model: str | None = None  # zoo roles: the registered hub model the ``paper`` scale resolves to
    vocab_size: int | None = None
    tie_word_embeddings: bool | None = None
    trust_remote_code: bool = False  # the hub repo ships its own modelling code (Baichuan2)
    # The registered model this one was tuned from, untuned (ProxyTuning's anti-expert for it): a hub entry names
    # a hub entry, a zoo role a role (its paper counterpart's own entry names the base at scale paper).
    untuned_base: str | None = None


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are and what exactly they are (for provenance and cache keys)."""

    name: str
    path: str  # a local directory, or a hub id (source "hub")
    source: str  # "zoo" | "local" | "hub" | "gguf"
    identity: dict = field(default_factory=dict)
    tied_embeddings: bool | None = None  # from the config; None where it cannot be read without loading
    trust_remote_code: bool = False


# --- registry entries ------------------------------------------------------------------------------

_PAPER_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("llama-2-7b", "meta-llama/Llama-2-7b-hf", None, "Llama2-7B-Base", "llama-2", 4096,
              "the untuned base of Llama2-7B-Chat, CodeLlama-7B and Vicuna-7B-v1.5: ProxyTuning's anti-expert for them",
              vocab_size=32000, tie_word_embeddings=False),
    ModelSpec("llama-7b", "huggyllama/llama-7b", None, "LLaMA-7B", "llama", 4096,
              "Vicuna-7B-v1.3's untuned base (LLaMA-1): ProxyTuning's anti-expert for it", vocab_size=32000,
              tie_word_embeddings=False),
    ModelSpec("llama-2-7b-chat", "meta-llama/Llama-2-7b-chat-hf", None, "Llama2-7B-Chat", "llama-2", 4096,
              "candidate expert (Section 5.1, Table 3)", vocab_size=32000, tie_word_embeddings=False,
              untuned_base="llama-2-7b"),
    ModelSpec("llama-2-13b", "meta-llama/Llama-2-13b-hf", None, "Llama2-13B-Base", "llama-2", 5120,
              "the target model (Section 5.1)", vocab_size=32000, tie_word_embeddings=False),
    ModelSpec("llama-2-13b-chat", "meta-llama/Llama-2-13b-chat-hf", None, "Llama2-13B-Chat", "llama-2", 5120,
              "Table 1's 'Vanilla Model + Instruction-tuned'", vocab_size=32000, tie_word_embeddings=False,
              untuned_base="llama-2-13b"),
    ModelSpec("llama-2-70b", "meta-llama/Llama-2-70b-hf", None, "Llama2-70B-Base", "llama-2", 8192,
              "Table 6 target (AlpacaEval)", vocab_size=32000, tie_word_embeddings=False),
    ModelSpec("llama-2-70b-chat", "meta-llama/Llama-2-70b-chat-hf", None, "Llama2-70B-Chat", "llama-2", 8192,
              "Table 6 expert for Llama2-70B-Base (DR 100%)", vocab_size=32000, tie_word_embeddings=False,
              untuned_base="llama-2-70b"),
    ModelSpec("codellama-7b", "codellama/CodeLlama-7b-hf", None, "CodeLlama-7B", "code-llama", 4096,
              "candidate expert; Table 2 and Figure 3(a) expert; 16 tokens more than Llama 2",
              vocab_size=32016, tie_word_embeddings=False, untuned_base="llama-2-7b"),
    ModelSpec("codellama-7b-instruct", "codellama/CodeLlama-7b-Instruct-hf", None, "CodeLlama-7B-Instruct",
              "code-llama", 4096, "candidate expert (Section 5.1, Table 3)", vocab_size=32016,
              tie_word_embeddings=False, untuned_base="codellama-7b"),
    ModelSpec("vicuna-7b-v1.3", "lmsys/vicuna-7b-v1.3", None, "Vicuna-7B-v1.3", "vicuna", 4096,
              "cross-family candidate expert (fine-tuned from LLaMA-7B)", vocab_size=32000, tie_word_embeddings=False,
              untuned_base="llama-7b"),
    ModelSpec("vicuna-7b-v1.5", "lmsys/vicuna-7b-v1.5", None, "Vicuna-7B-v1.5", "vicuna", 4096,
              "cross-family candidate expert (from Llama2-7B); Figure 3(b), 4 (DR 100%: expert and target) and 5 "
              "expert", vocab_size=32000, tie_word_embeddings=False, untuned_base="llama-2-7b"),
    ModelSpec("vicuna-13b-v1.3", "lmsys/vicuna-13b-v1.3", None, "Vicuna-13B-v1.3", "vicuna", 5120,
              "Figure 5 target (fusion-ratio study; fine-tuned from LLaMA-13B)", vocab_size=32000,
              tie_word_embeddings=False),
    ModelSpec("vicuna-13b-v1.5", "lmsys/vicuna-13b-v1.5", None, "Vicuna-13B-v1.5", "vicuna", 5120,
              "Figure 3(b) target for the Vicuna family", vocab_size=32000, tie_word_embeddings=False,
              untuned_base="llama-2-13b"),
    ModelSpec("baichuan2-13b-base", "baichuan-inc/Baichuan2-13B-Base", None, "Baichuan2-13B-Base", "baichuan2", 5120,
              "Figure 3(b) target for the Baichuan family; its repo ships custom modelling code",
              vocab_size=125696, tie_word_embeddings=False, trust_remote_code=True),
    ModelSpec("baichuan2-7b-chat", "baichuan-inc/Baichuan2-7B-Chat", None, "Baichuan2-7B-Chat", "baichuan2", 4096,
              "Figure 3(b) expert for the Baichuan family; its repo ships custom modelling code",
              vocab_size=125696, tie_word_embeddings=False, trust_remote_code=True),
    ModelSpec("llama-3.2-1b", "meta-llama/Llama-3.2-1B", None, "Llama3.2-1B-Base", "llama-3.2", 2048,
              "Figure 4 (DR 67%); tied input/output embeddings", vocab_size=128256, tie_word_embeddings=True),
    ModelSpec("llama-3.2-1b-instruct", "meta-llama/Llama-3.2-1B-Instruct", None, "Llama3.2-1B-Instruct",
              "llama-3.2", 2048, "Figure 4 expert at DR 67% (2048 / 3072); tied input/output embeddings",
              vocab_size=128256, tie_word_embeddings=True, untuned_base="llama-3.2-1b"),
    ModelSpec("llama-3.2-3b", "meta-llama/Llama-3.2-3B", None, "Llama3.2-3B", "llama-3.2", 3072,
              "the DR 67% target (Section 5.5: 1B -> 3B); tied input/output embeddings",
              vocab_size=128256, tie_word_embeddings=True),
    ModelSpec("qwen2.5-3b-instruct", "Qwen/Qwen2.5-3B-Instruct", None, "Qwen2.5-3B-Instruct", "qwen2.5", 2048,
              "Table 6 target (MedQuAD); tied input/output embeddings", vocab_size=151936, tie_word_embeddings=True),
    ModelSpec("medical-o1-verifier-3b", "FreedomIntelligence/medical_o1_verifier_3B", None,
              "medical_o1_verifier_3B_Qwen2.5", "qwen2.5", None,
              "Table 6 expert for Qwen2.5-3B-Instruct; built on Qwen2.5-3B per the paper (width unverified here)"),
)


def _zoo_specs() -> list[ModelSpec]:
    from harness.zoo.recipe import MICRO

    specs = []
    for role in ROLES:
        shape = MICRO.shape_of(role.checkpoint)
        notes = f"built-in family: {role.how_made}" + (f"; {role.notes}" if role.notes else "")
        specs.append(ModelSpec(role.name, None, role.name, role.stands_in_for, "zoo", shape.hidden_size,
                               notes + " (hidden size at scale micro)", paper_model=role.paper_model,
                               tie_word_embeddings=False, untuned_base=role.untuned_base))
    return specs


def _register_all() -> None:
    for spec in (*_zoo_specs(), *_PAPER_MODELS):
        aliases: tuple[str, ...] = ()
        if spec.hub_id:
            repo = spec.hub_id.split("/", 1)[1].lower()
            aliases = (repo,) if repo != spec.name else ()
        MODELS.register(spec.name, spec, aliases=aliases)


_register_all()


def spec_for_hub_id(hub_id: str) -> ModelSpec | None:
    """The registered spec whose hub id is ``hub_id`` (case-insensitive), if any."""
    wanted = hub_id.lower()
    for _, spec in MODELS.items():
        if spec.hub_id and spec.hub_id.lower() == wanted:
            return spec
    return None


def untuned_base(name: str, scale: str) -> str | None:
    """The registered name of the untuned model ``name`` was tuned from, as ``name`` resolves at ``scale``: a zoo
    role's base role at nano and micro, its paper counterpart's base at paper (ProxyTuning's anti-expert for
    ``name``). None for a name that is not registered or whose base is not."""
    if name not in MODELS:
        return None
    spec: ModelSpec = MODELS.get(name)
    if spec.zoo_role is not None and scale == "paper":
        if spec.paper_model is None:
            return None
        spec = MODELS.get(spec.paper_model)
    return spec.untuned_base


def same_registered_model(a: str, b: str, scale: str) -> bool:
    """Whether registered names ``a`` and ``b`` load the same weights at ``scale`` (e.g. the roles ``anti-expert``
    and ``small-base`` share a checkpoint), decided from the registry alone: nothing is resolved or built."""
    def weights(name: str) -> str:
        spec: ModelSpec = MODELS.get(name)
        if spec.zoo_role is None:
            return spec.name
        if scale == "paper":
            return spec.paper_model or f"role:{spec.name}"
        from harness.zoo.recipe import ROLE_BY_NAME

        return f"checkpoint:{ROLE_BY_NAME[spec.zoo_role].checkpoint}"

    return a in MODELS and b in MODELS and weights(a) == weights(b)


# --- resolution ------------------------------------------------------------------------------------

def resolve_model(name_or_path: str, scale: str = "micro", build: bool = True) -> ResolvedModel:
    """Find a model without loading it: a registered name, a local HF directory, a ``.gguf`` file or a hub id.

    An existing path wins over a registered name. Zoo roles resolve to the built-in family at ``scale``
    ("nano" or "micro"; built on first use unless ``build`` is False) and to their paper counterpart at
    scale "paper". A ``.gguf`` file is dequantized once into a cached safetensors directory. Hub ids
    (``org/name`` or ``org/name@revision``) need the hub, or the model in the local hub cache.
    """
    text = str(name_or_path).strip()
    path = Path(text).expanduser()
    if path.exists():
        return _resolve_path(path)
    if text in MODELS:
        spec: ModelSpec = MODELS.get(text)
        if spec.zoo_role is None:
            return _resolve_hub(spec.hub_id, spec.name, trust_remote_code=spec.trust_remote_code)
        if scale == "paper":
            if spec.paper_model is None:
                raise ModelUnavailableError(
                    f"zoo role {spec.name!r} ({spec.stands_in_for}) has no counterpart the paper names, so "
                    "scale 'paper' cannot resolve it; pass a hub id, a local directory or a .gguf file instead")
            paper: ModelSpec = MODELS.get(spec.paper_model)
            return _resolve_hub(paper.hub_id, paper.name, trust_remote_code=paper.trust_remote_code)
        return _resolve_zoo(spec, scale, build)
    hub_id, _, revision = text.partition("@")
    if _HUB_ID.match(hub_id) and not text.startswith((".", "/", "~")):
        known = spec_for_hub_id(hub_id)
        try:
            return _resolve_hub(hub_id, known.name if known else hub_id, revision or None,
                                trust_remote_code=bool(known and known.trust_remote_code))
        except ModelUnavailableError as err:
            if known:
                raise
            raise ModelUnavailableError(f"{err} (No local path {text!r} exists either.)") from None
    if os.sep in text or text.endswith(".gguf") or text.startswith((".", "~")):
        raise FileNotFoundError(f"no model at {text!r}: the path does not exist")
    try:
        MODELS.canonical(text)  # raises with the closest registered names
    except RegistryError as err:
        raise RegistryError(f"{err} A local HF directory, a .gguf file or a hub id (org/name) also work.") from None
    raise AssertionError("unreachable")


def _resolve_path(path: Path) -> ResolvedModel:
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelUnavailableError(
                f"{path} is a file but not a .gguf model; pass a model directory or a .gguf file")
        return _resolve_gguf(path)
    if (path / "config.json").is_file():
        return ResolvedModel(path.name, str(path.resolve()), "local",
                             {"local_path": str(path.resolve()), "weights_sha256": weights_sha256(path)},
                             _tied_from_config(path))
    ggufs = sorted(path.glob("*.gguf"))
    if len(ggufs) == 1:
        return _resolve_gguf(ggufs[0])
    raise ModelUnavailableError(
        f"{path} is neither a Hugging Face model directory (no config.json) nor holds exactly one .gguf file "
        f"(found {len(ggufs)}); pass the model directory or the .gguf file itself")


def _resolve_zoo(spec: ModelSpec, scale: str, build: bool) -> ResolvedModel:
    from harness.zoo import ZooNotBuiltError, recipe_for, zoo_role_path
    from harness.zoo.build import STEP_RECORD

    if scale not in SCALES:
        raise ModelUnavailableError(
            f"scale {scale!r} has no built-in family; use one of {', '.join(SCALES)} or 'paper'")
    try:
        path = zoo_role_path(spec.zoo_role, scale, build=build)
    except ZooNotBuiltError as err:
        raise ModelUnavailableError(str(err)) from None
    record = read_json(path / STEP_RECORD)
    identity = {"zoo_scale": scale, "zoo_recipe_hash": recipe_for(scale).hash, "zoo_role": spec.zoo_role,
                "zoo_checkpoint": path.name, "weights_sha256": record["weights_sha256"]}
    return ResolvedModel(spec.name, str(path), "zoo", identity, _tied_from_config(path))


def hub_offline() -> bool:
    truthy = {"1", "true", "yes", "on"}
    if any(os.environ.get(v, "").strip().lower() in truthy for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants

        return bool(constants.is_offline_mode())
    except (ImportError, AttributeError):
        return False


def _cached_hub_revision(hub_id: str, revision: str | None) -> str | None:
    """The commit of ``hub_id`` in the local hub cache, if its config is there."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(hub_id, "config.json", revision=revision)
    except Exception:  # a malformed id or cache: treat as not cached
        return None
    return Path(found).parent.name if isinstance(found, str) else None


def _unavailable_message(name: str, hub_id: str, why: str) -> str:
    shown = name if name == hub_id else f"{name} ({hub_id})"
    return (f"model {shown} needs the Hugging Face hub, which {why}, and it is not in the local hub cache. "
            "Pass a local model directory or a .gguf file instead (for example --target /models/Llama-2-13b-hf), "
            "or use the built-in family (scale micro or nano).")


def _resolve_hub(hub_id: str | None, name: str, revision: str | None = None,
                 trust_remote_code: bool = False) -> ResolvedModel:
    if not hub_id:
        raise ModelUnavailableError(f"model {name!r} has no hub id")
    if hub_offline():
        cached = _cached_hub_revision(hub_id, revision)
        if cached is None:
            raise ModelUnavailableError(_unavailable_message(
                name, hub_id, "is switched off here (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set)"))
        return ResolvedModel(name, hub_id, "hub", {"hub_id": hub_id, "revision": cached, "from_local_cache": True},
                             trust_remote_code=trust_remote_code)
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = HfApi().model_info(hub_id, revision=revision, timeout=HUB_TIMEOUT_S)
    except GatedRepoError:
        raise ModelUnavailableError(
            f"{hub_id} is gated on the hub: accept its licence on its model page and log in "
            "(`hf auth login`), or pass a local copy (directory or .gguf)") from None
    except RepositoryNotFoundError:
        raise ModelUnavailableError(f"no model {hub_id!r} on the hub (or it is private); check the id") from None
    except RevisionNotFoundError:
        raise ModelUnavailableError(f"{hub_id} has no revision {revision!r} on the hub") from None
    except Exception as err:  # DNS failure, refused connection, timeout, proxy error ...
        cached = _cached_hub_revision(hub_id, revision)
        if cached is None:
            raise ModelUnavailableError(_unavailable_message(
                name, hub_id, f"cannot be reached (the network is closed: {type(err).__name__})")) from None
        return ResolvedModel(name, hub_id, "hub", {"hub_id": hub_id, "revision": cached, "from_local_cache": True},
                             trust_remote_code=trust_remote_code)
    return ResolvedModel(name, hub_id, "hub", {"hub_id": hub_id, "revision": info.sha},
                         trust_remote_code=trust_remote_code)


def _tied_from_config(path: Path) -> bool | None:
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(path)
    except Exception:  # custom architectures need remote code; the loaded model still reports it
        return None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return bool(getattr(text, "tie_word_embeddings", False))


# --- hashing, with a cache keyed by (path, size, mtime) so big local models are hashed once ---------

def _hash_cache_path() -> Path:
    return cache_dir() / "models" / "file-hashes.json"


def file_sha256(path: Path) -> str:
    path = path.resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    cache_file = _hash_cache_path()
    cache = read_json(cache_file) if cache_file.is_file() else {}
    if key in cache:
        return cache[key]
    cache[key] = sha256_file(path)
    atomic_write_json(cache_file, cache)
    return cache[key]


def weights_sha256(directory: Path) -> str:
    """sha256 over the names and sha256s of a model directory's weight files."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise ModelUnavailableError(f"{directory} has a config.json but no weight files ({', '.join(WEIGHT_SUFFIXES)})")
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.name}\0{file_sha256(f)}\n".encode())
    return digest.hexdigest()


# --- GGUF ------------------------------------------------------------------------------------------

GGUF_RECORD = "harness_gguf.json"


def _resolve_gguf(file: Path) -> ResolvedModel:
    file = file.resolve()
    sha = file_sha256(file)
    out = cache_dir() / "models" / "gguf" / f"{file.stem}-{sha[:16]}"
    if not (out / GGUF_RECORD).is_file():
        dequantize_gguf(file, out)
    identity = {"gguf_file": str(file), "gguf_sha256": sha, "dequantized_dir": str(out),
                "weights_sha256": weights_sha256(out)}
    return ResolvedModel(file.stem, str(out), "gguf", identity, _tied_from_config(out))


def dequantize_gguf(file: Path, out: Path) -> Path:
    """Load a GGUF checkpoint through transformers, dequantized, and save it as a safetensors HF directory.

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the model is rebuilt from its
    config without the quantization config and the dequantized weights are copied in.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        loaded = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name, dtype=torch.float32)
    except Exception as err:
        raise ModelUnavailableError(f"transformers could not load {file} as GGUF: {type(err).__name__}: {err}") from err
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    tied_head = {"lm_head.weight"} if config.get_text_config().tie_word_embeddings else set()
    if set(missing) - tied_head or unexpected:
        raise ModelUnavailableError(f"dequantized {file} does not fit its own config: missing {missing}, "
                                    f"unexpected {unexpected}")
    fresh.tie_weights()
    try:
        fresh.save_pretrained(tmp)
        tokenizer_note = "saved"
        try:
            AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name).save_pretrained(tmp)
        except Exception as err:  # weights are still usable with a tokenizer passed separately
            tokenizer_note = f"not converted: {type(err).__name__}: {err}"
        tied = bool(config.get_text_config().tie_word_embeddings)
        atomic_write_json(tmp / GGUF_RECORD, {"gguf_file": str(file), "tokenizer": tokenizer_note,
                                              "tie_word_embeddings": tied})
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(out, ignore_errors=True)  # an unfinished earlier copy (no record)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# --- loading ---------------------------------------------------------------------------------------

def _as_resolved(resolved_or_name: ResolvedModel | str, scale: str) -> ResolvedModel:
    if isinstance(resolved_or_name, ResolvedModel):
        return resolved_or_name
    return resolve_model(str(resolved_or_name), scale=scale)


def _torch_dtype(dtype: Any):
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype != "auto":
        value = getattr(torch, {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}.get(dtype, dtype), None)
        if not isinstance(value, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}; use float32, bfloat16, float16 or auto")
        return value
    return dtype


def _hub_kwargs(resolved: ResolvedModel) -> dict:
    kwargs: dict = {}
    if resolved.source == "hub" and resolved.identity.get("revision"):
        kwargs["revision"] = resolved.identity["revision"]
    if resolved.trust_remote_code:
        kwargs["trust_remote_code"] = True
    return kwargs


def load_model(resolved_or_name: ResolvedModel | str, dtype=None, device=None, scale: str = "micro"):
    """The causal LM behind a resolved model (or a name/path/hub id, resolved at ``scale``)."""
    from transformers import AutoModelForCausalLM

    resolved = _as_resolved(resolved_or_name, scale)
    kwargs = _hub_kwargs(resolved)
    if dtype is not None:
        kwargs["dtype"] = _torch_dtype(dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(resolved.path, **kwargs)
    except OSError as err:
        raise ModelUnavailableError(f"could not load {resolved.name} from {resolved.path}: {err}") from err
    return model.to(device) if device is not None else model


def load_tokenizer(resolved_or_name: ResolvedModel | str, scale: str = "micro"):
    from transformers import AutoTokenizer

    resolved = _as_resolved(resolved_or_name, scale)
    try:
        return AutoTokenizer.from_pretrained(resolved.path, **_hub_kwargs(resolved))
    except OSError as err:
        raise ModelUnavailableError(
            f"could not load the tokenizer of {resolved.name} from {resolved.path}: {err}") from err


def embedding_tie_report(model) -> dict:
    """Whether input and output embeddings are tied: by the config, by shared storage, by equal values."""
    import torch

    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    by_config = bool(getattr(config, "tie_word_embeddings", False))
    inp = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    report = {"tied_by_config": by_config, "input_shape": list(inp.shape), "has_output_embedding": head is not None}
    if head is None:
        return {**report, "tied": False, "tied_by_storage": False, "equal_values": None, "consistent": not by_config}
    out = head.weight
    by_storage = inp is out or (inp.shape == out.shape and inp.data_ptr() == out.data_ptr())
    equal = bool(inp.shape == out.shape and torch.equal(inp.detach(), out.detach()))
    return {**report, "output_shape": list(out.shape), "tied": by_storage, "tied_by_storage": by_storage,
            "equal_values": equal, "consistent": by_config == by_storage}
