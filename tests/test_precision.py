"""Precision that fits the hardware: the choice with mocked probes (no test depends on this CPU), the
per-machine cache of the probe, and one real probe."""

from __future__ import annotations

import json
import math

import pytest
import torch

import harness.precision as precision
from harness.config import ConfigError
from harness.precision import cached_probe, probe_cache_path, probe_cpu_matmul, resolve_precision

FAST = {"fp32_gflops": 190.0, "bf16_gflops": 400.0}  # AVX512-BF16 / AMX
SLOW = {"fp32_gflops": 77.0, "bf16_gflops": 0.9}  # AVX2 only: bf16 is a reference loop


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    precision._MEMO.clear()
    yield
    precision._MEMO.clear()


def test_auto_on_cpu_follows_the_probe():
    assert resolve_precision("auto", cuda=False, probe=FAST).value == "bf16"
    slow = resolve_precision("auto", cuda=False, probe=SLOW)
    assert slow.value == "fp32" and slow.warning is None and "slower" in slow.reason
    assert slow.probe == SLOW and slow.to_dict()["requested"] == "auto"


def test_explicit_bf16_is_honoured_with_a_warning_where_slow():
    fast = resolve_precision("bf16", cuda=False, probe=FAST)
    assert fast.value == "bf16" and fast.warning is None
    slow = resolve_precision("bf16", cuda=False, probe=SLOW)
    assert slow.value == "bf16" and "training.precision=auto" in slow.warning


def test_fp32_never_probes_and_fp16_needs_cuda():
    def boom():
        raise AssertionError("probed")

    assert resolve_precision("fp32", cuda=False, probe=boom).value == "fp32"
    with pytest.raises(ConfigError, match="training.precision"):
        resolve_precision("fp16", cuda=False, probe=FAST)


def test_cuda_branches(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", cuda=True).value == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", cuda=True).value == "fp16"
    assert resolve_precision("fp16", cuda=True).value == "fp16"


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


def test_a_real_probe_gives_finite_positive_figures():
    figures = probe_cpu_matmul(0.05)
    assert math.isfinite(figures["fp32_gflops"]) and figures["fp32_gflops"] > 0
    assert math.isfinite(figures["bf16_gflops"]) and figures["bf16_gflops"] > 0
