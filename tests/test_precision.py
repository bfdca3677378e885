"""Precision that fits the hardware: the choice with mocked probes (no test depends on this CPU), the
per-machine cache of the probe, and one real probe."""

from __future__ import annotations

import json
import math

import pytest
import torch

import harness.precision as precision
from harness.config import ConfigError
from harness.precision import (
    cached_probe, machine_fingerprint, probe_cache_path, probe_cpu_matmul, resolve_precision,
)

FAST = {"fp32_gflops": 190.0, "bf16_gflops": 400.0}  # AVX512-BF16 / AMX
SLOW = {"fp32_gflops": 77.0, "bf16_gflops": 0.9}  # AVX2 only: bf16 is a reference loop


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """A cache directory and an in-process memo of its own: the session's zoo build keeps its answer."""
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    monkeypatch.setattr(precision, "_MEMO", {})


def test_auto_on_cpu_follows_the_probe():
    assert resolve_precision("auto", cuda=False, probe=FAST).value == "bf16"
    slow = resolve_precision("auto", cuda=False, probe=SLOW)
    assert slow.value == "fp32" and slow.warning is None and "slower" in slow.reason
    assert slow.probe == SLOW and slow.to_dict()["requested"] == "auto"


def test_explicit_bf16_is_honoured_with_a_warning_where_slow():
    fast = resolve_precision("bf16", cuda=False, probe=FAST)
    assert fast.value == "bf16" and fast.warning is None
    slow = resolve_precision("bf16", cuda=False, probe=SLOW)
    assert slow.value == "bf16" and slow.probe == SLOW
    assert "86x slower" in slow.warning and "training.precision=auto" in slow.warning and "fp32" in slow.warning
    near = resolve_precision("bf16", cuda=False, probe={"ratio": 0.95})  # about parity: no warning
    assert near.value == "bf16" and near.warning is None
    assert resolve_precision("auto", cuda=False, probe={"ratio": 1.1}).value == "fp32"  # under the margin


def test_an_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="training.precision.*fp8"):
        resolve_precision("fp8", cuda=False, probe=FAST)


def test_fp32_never_probes_and_fp16_needs_cuda():
    def boom():
        raise AssertionError("probed")

    choice = resolve_precision("fp32", cuda=False, probe=boom)
    assert choice.value == "fp32" and choice.probe is None and choice.warning is None
    assert not probe_cache_path().exists()
    with pytest.raises(ConfigError, match=r"training.precision=fp16 needs a CUDA GPU.*auto.*fp32"):
        resolve_precision("fp16", cuda=False, probe=FAST)


def test_cuda_branches(monkeypatch):
    def boom():
        raise AssertionError("the CPU probe does not decide for a GPU")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    auto = resolve_precision("auto", probe=boom)  # cuda=None: asks torch.cuda.is_available
    assert (auto.value, auto.device, auto.probe, auto.warning) == ("bf16", "cuda", None, None)
    assert resolve_precision("bf16", probe=boom).warning is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", probe=boom).value == "fp16"
    assert resolve_precision("fp16", probe=boom).value == "fp16"
    no_bf16 = resolve_precision("bf16", probe=boom)
    assert no_bf16.value == "bf16" and "training.precision=auto" in no_bf16.warning
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_precision("auto", probe=SLOW).device == "cpu"


def test_the_probe_is_cached_per_machine_and_a_bad_cache_is_measured_again(monkeypatch):
    calls = []

    def probe():
        calls.append(1)
        return SLOW

    assert resolve_precision("auto", cuda=False, probe=probe).value == "fp32"
    assert resolve_precision("auto", cuda=False, probe=probe).value == "fp32"
    assert len(calls) == 1  # the second answer came from the cache file
    path = probe_cache_path()
    assert json.loads(path.read_text())["probe"] == SLOW
    path.write_text("{not json")
    assert cached_probe(probe) == SLOW and len(calls) == 2
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")  # other kernels: another fingerprint, another probe
    assert probe_cache_path() != path
    cached_probe(probe)
    assert len(calls) == 3
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert probe_cache_path() == path and cached_probe(probe) == SLOW and len(calls) == 3  # still cached
    monkeypatch.setattr(torch, "get_num_threads", lambda: 97)  # another thread count: measured again
    cached_probe(probe)
    assert len(calls) == 4


def test_a_cache_written_for_another_machine_or_unwritable_is_measured_again(tmp_path, monkeypatch):
    calls = []

    def probe():
        calls.append(1)
        return FAST

    path = probe_cache_path()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"format": 1, "fingerprint": {"cpu_model": "elsewhere"}, "probe": SLOW}))
    assert resolve_precision("auto", cuda=False, probe=probe).value == "bf16" and len(calls) == 1
    path.write_text(json.dumps({"format": 1, "fingerprint": machine_fingerprint(), "probe": {"ratio": "x"}}))
    assert cached_probe(probe) == FAST and len(calls) == 2
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "a-file"))
    (tmp_path / "a-file").write_text("not a directory")
    assert resolve_precision("auto", cuda=False, probe=probe).value == "bf16"  # caching failed, choosing did not


def test_the_real_probe_runs_once_per_process(tmp_path, monkeypatch):
    """Without an injected probe the answer is also kept in memory: a build in a fresh cache directory
    trains in the precision the first one did."""
    calls = []

    def fake():
        calls.append(1)
        return FAST

    monkeypatch.setattr(precision, "probe_cpu_matmul", fake)
    assert resolve_precision("auto", cuda=False).value == "bf16"
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "elsewhere"))
    assert resolve_precision("auto", cuda=False).value == "bf16"
    assert len(calls) == 1


def test_a_real_probe_gives_finite_positive_figures():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    figures = probe_cpu_matmul(0.05)
    assert torch.equal(torch.rand(3), expected)  # its own generator: a zoo build's seeds are untouched
    for key in ("fp32_gflops", "bf16_gflops", "ratio"):
        assert math.isfinite(figures[key]) and figures[key] > 0
    assert figures["workloads"] and all(w["fp32_gflops"] > 0 and w["bf16_gflops"] > 0
                                        for w in figures["workloads"].values())
    assert figures["ratio"] == min(w["ratio"] for w in figures["workloads"].values())
    assert figures["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert figures["torch_threads"] == torch.get_num_threads() and 0 < figures["seconds"] < 5
    assert resolve_precision("auto", cuda=False, probe=figures).value in ("fp32", "bf16")


def test_the_zoo_trains_on_cpu_in_a_resolved_precision(monkeypatch):
    from harness.zoo.build import zoo_precision
    from harness.zoo.recipe import NANO, MICRO
    from harness.zoo.train import cpu_autocast

    assert NANO.precision == MICRO.precision == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a GPU does not move the zoo off the CPU
    monkeypatch.setattr(precision, "probe_cpu_matmul", lambda: SLOW)
    choice = zoo_precision(NANO)
    assert (choice.value, choice.device, choice.probe) == ("fp32", "cpu", SLOW)
    x, w = torch.ones(2, 4), torch.ones(3, 4)
    for value, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        with cpu_autocast(value):
            assert torch.nn.functional.linear(x, w).dtype == dtype
    for unresolved in ("auto", "fp16"):
        with pytest.raises(ValueError, match="fp32 or bf16"):
            cpu_autocast(unresolved)
