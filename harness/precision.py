"""Turns a requested training precision ("auto", "fp32", "bf16", "fp16") into the one this machine should run.

On CUDA the GPU's bf16 support decides. On CPU nothing is assumed from the CPU's name or flags:
bf16 matmuls run ~2x faster than fp32 where oneDNN has AVX512-BF16/AMX kernels, and ~85x *slower*
where it has only AVX2 (a reference loop), so a short matmul probe measures it. The probe's answer is
cached per machine (``cache_dir()/precision/cpu-<fingerprint>.json``) so a run pays for it once.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from harness.config import PRECISIONS, ConfigError
from harness.io import atomic_write_json
from harness.paths import cache_dir

RESOLVED = ("fp32", "bf16", "fp16")
# "auto" picks bf16 on CPU only at this speed-up or more: near parity the rounding costs accuracy
# for no time saved, and a noisy probe must not flip the choice.
BF16_MIN_SPEEDUP = 1.2
# An explicit bf16 on CPU is warned about below this (bf16 clearly slower than fp32).
BF16_SLOW_BELOW = 0.8
# bf16 this far behind fp32 on a workload is an emulated path: timing more workloads adds nothing.
_CLEARLY_SLOW = 0.5
# Environment variables that change which kernels oneDNN / ATen dispatch to (read once per process).
ISA_ENV_VARS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA")
CACHE_FORMAT = 1

ProbeFn = Callable[[], Mapping[str, Any]]


@dataclass(frozen=True)
class PrecisionChoice:
    """What was asked for, what will run, where, why, and the probe figures behind it (CPU only)."""

    requested: str
    value: str  # fp32 | bf16 | fp16
    device: str  # cpu | cuda
    reason: str
    probe: dict | None = None
    warning: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


# --- the probe ------------------------------------------------------------------------------------

# (name, M, K, N): a square matmul, and a training-like one: 512 tokens (a batch of 8 x 64) through
# the MLP up-projection of the micro family's small base (256 -> 688).
_MATMULS = (("matmul 512x512x512", 512, 512, 512), ("matmul 512x256x688", 512, 256, 688))
_LINEAR = ("linear fwd+bwd 512x256x688 (autocast)", 512, 256, 688)


def _time_pair(fp32: Callable[[], object], bf16: Callable[[], object], until: float) -> tuple[float, float]:
    """Best seconds per call of each, calling them in turn until ``until`` (``time.perf_counter``).

    Alternating calls see the same load from other processes, so a busy machine slows both alike
    instead of whichever happened to run second. A first call pays for kernel selection (oneDNN
    primitive creation): fp32, never the slow one, gets an untimed warm-up call; bf16's first call
    counts, since where one bf16 call overruns the time that call is the answer.
    """
    fp32()
    best = [math.inf, math.inf]
    while True:
        for i, fn in enumerate((fp32, bf16)):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)  # the minimum: other processes only add time
        if time.perf_counter() >= until:
            return best[0], best[1]


def probe_cpu_matmul(seconds: float = 0.3) -> dict:
    """Measure fp32 and bf16 matmul speed (GFLOP/s) on this CPU with the current torch thread count.

    Times a square 512 matmul, a training-like matmul, and a Linear forward+backward under bf16
    autocast (against the same in fp32), each for about a third of ``seconds``. When bf16 is already
    far behind after the first workload the rest is skipped, so a slow CPU costs a few slow calls.
    ``ratio`` (bf16 / fp32 speed) is the smallest over the workloads timed: bf16 must win on all.
    Uses its own random generator, so the global torch seed is left as it was.
    """
    start = time.perf_counter()
    slice_s = max(seconds, 1e-3) / (len(_MATMULS) + 1)
    gen = torch.Generator().manual_seed(0)
    workloads: dict[str, dict] = {}
    stopped_early = False
    with torch.no_grad():
        for name, m, k, n in _MATMULS:
            a, b = torch.randn(m, k, generator=gen), torch.randn(k, n, generator=gen)
            a16, b16 = a.bfloat16(), b.bfloat16()
            times = _time_pair(lambda: torch.mm(a, b), lambda: torch.mm(a16, b16), time.perf_counter() + slice_s)
            workloads[name] = _figures(2.0 * m * k * n, *times)
            if workloads[name]["ratio"] < _CLEARLY_SLOW:
                stopped_early = True
                break
    if not stopped_early:
        name, m, k, n = _LINEAR
        x = torch.randn(m, k, generator=gen, requires_grad=True)
        w = (torch.randn(n, k, generator=gen) / math.sqrt(k)).requires_grad_()

        def step(bf16: bool) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                y = torch.nn.functional.linear(x, w)
            torch.autograd.grad(y.float().sum(), (x, w))

        times = _time_pair(lambda: step(False), lambda: step(True), time.perf_counter() + slice_s)
        workloads[name] = _figures(3 * 2.0 * m * k * n, *times)  # forward, grad of the input, of the weight
    deciding = min(workloads, key=lambda w: workloads[w]["ratio"])
    return {
        "fp32_gflops": workloads[deciding]["fp32_gflops"],
        "bf16_gflops": workloads[deciding]["bf16_gflops"],
        "ratio": workloads[deciding]["ratio"],
        "deciding_workload": deciding,
        "workloads": workloads,
        "stopped_early": stopped_early,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "seconds": round(time.perf_counter() - start, 3),
    }


def _figures(flops: float, fp32_s: float, bf16_s: float) -> dict:
    return {"fp32_gflops": round(flops / fp32_s / 1e9, 2), "bf16_gflops": round(flops / bf16_s / 1e9, 2),
            "ratio": round(fp32_s / bf16_s, 4)}


# --- the per-machine cache ------------------------------------------------------------------------


def _cpu_identity() -> tuple[str, str]:
    """The CPU's model name and its feature flags (Linux ``/proc/cpuinfo``; elsewhere what platform knows)."""
    name, flags = "", ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip().lower(), value.strip()
                if not name and key in ("model name", "hardware", "cpu model", "processor") and not value.isdigit():
                    name = value
                elif not flags and key in ("flags", "features"):  # x86 | ARM
                    flags = " ".join(sorted(value.split()))
                if name and flags:
                    break
    except OSError:
        pass
    return name or platform.processor() or platform.machine(), flags


def machine_fingerprint() -> dict:
    """What decides the probe's answer: the CPU, torch, its threads, and the ISA-limiting env vars."""
    name, flags = _cpu_identity()
    return {
        "cpu_model": name,
        "cpu_flags_sha256": hashlib.sha256(flags.encode()).hexdigest()[:16],
        "machine": platform.machine(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "env": {var: os.environ.get(var) for var in ISA_ENV_VARS},
    }


def _fingerprint_key(fingerprint: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


def probe_cache_path(fingerprint: Mapping[str, Any] | None = None) -> Path:
    """The cache file holding the probe answer for ``fingerprint`` (this machine's by default)."""
    key = _fingerprint_key(fingerprint if fingerprint is not None else machine_fingerprint())
    return cache_dir() / "precision" / f"cpu-{key}.json"


# The real probe's answer per fingerprint for this process: one process resolves the same way even
# where the cache directory changes under it (a zoo build in a fresh cache must train like the first).
_MEMO: dict[str, dict] = {}


def cached_probe(probe_fn: ProbeFn | None = None) -> dict:
    """The probe's figures for this machine: from the cache, else measured (by ``probe_fn``) and cached.

    A cache file that cannot be read, is not JSON, or was written for another fingerprint is
    measured again and replaced; a cache directory that cannot be written only costs the caching.
    """
    fingerprint = machine_fingerprint()
    key = _fingerprint_key(fingerprint)
    if probe_fn is None and key in _MEMO:
        return dict(_MEMO[key])
    path = probe_cache_path(fingerprint)
    figures = _read_cache(path, fingerprint)
    if figures is None:
        figures = dict((probe_fn or probe_cpu_matmul)())
        _ratio(figures)  # refuse to cache figures that cannot decide anything
        try:
            atomic_write_json(path, {"format": CACHE_FORMAT, "fingerprint": fingerprint, "probe": figures,
                                     "probed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        except OSError:
            pass
    if probe_fn is None:
        _MEMO[key] = dict(figures)
    return figures


def _read_cache(path: Path, fingerprint: Mapping[str, Any]) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != CACHE_FORMAT or data.get("fingerprint") != fingerprint:
            return None
        figures = data["probe"]
        _ratio(figures)
        return dict(figures)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _ratio(probe: Mapping[str, Any]) -> float:
    """bf16 speed over fp32 speed from probe figures (``ratio``, else the two GFLOP/s); ValueError if unusable."""
    try:
        ratio = float(probe["ratio"]) if "ratio" in probe else float(probe["bf16_gflops"]) / float(probe["fp32_gflops"])
    except (KeyError, TypeError, ZeroDivisionError) as err:
        raise ValueError(f"probe figures need 'ratio' or 'bf16_gflops' and 'fp32_gflops': {dict(probe)}") from err
    if not math.isfinite(ratio) or ratio <= 0:
        raise ValueError(f"probe figures give no usable bf16/fp32 ratio: {dict(probe)}")
    return ratio


# --- the choice -----------------------------------------------------------------------------------


def _times(x: float) -> str:
    return f"{x:.0f}x" if x >= 10 else f"{x:.1f}x"


def _measured(probe: Mapping[str, Any]) -> str:
    """'bf16 measured 2.1x faster than fp32 (395 vs 187 GFLOP/s)' — or slower."""
    ratio = _ratio(probe)
    speed = f"{_times(ratio)} faster than" if ratio >= 1 else f"{_times(1 / ratio)} slower than"
    figures = ""
    if "bf16_gflops" in probe and "fp32_gflops" in probe:
        figures = f" ({float(probe['bf16_gflops']):.1f} vs {float(probe['fp32_gflops']):.1f} GFLOP/s)"
    return f"bf16 measured {speed} fp32 on this CPU{figures}"


def resolve_precision(requested: str, *, cuda: bool | None = None,
                      probe: Mapping[str, Any] | ProbeFn | None = None) -> PrecisionChoice:
    """The precision to run for ``requested`` (``training.precision``) on this machine.

    ``cuda``: whether training runs on a CUDA GPU (default: whether one is available). ``probe``:
    CPU figures to decide on instead of this machine's cached probe — a dict, or a function that
    measures them (then cached like the real probe). Explicit fp32 never probes; fp16 needs CUDA.
    """
    if requested not in PRECISIONS:
        raise ConfigError(f"invalid value for training.precision: {requested!r} (allowed: {' | '.join(PRECISIONS)})")
    if cuda is None:
        cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if requested == "fp32":
        return PrecisionChoice(requested, "fp32", device, "fp32 was asked for: full precision, nothing to measure")
    if cuda:
        return _resolve_cuda(requested)
    if requested == "fp16":
        raise ConfigError("training.precision=fp16 needs a CUDA GPU and this machine has none: use "
                          "training.precision=auto (bf16 where this CPU runs it fast, else fp32), bf16 or fp32")
    figures = dict(probe) if isinstance(probe, Mapping) else cached_probe(probe)
    ratio = _ratio(figures)
    if requested == "auto":
        if ratio >= BF16_MIN_SPEEDUP:
            return PrecisionChoice(requested, "bf16", device, f"auto on CPU: {_measured(figures)}, at least the "
                                   f"{BF16_MIN_SPEEDUP}x needed to pick bf16", figures)
        return PrecisionChoice(requested, "fp32", device, f"auto on CPU: {_measured(figures)}, under the "
                               f"{BF16_MIN_SPEEDUP}x needed to pick bf16, so fp32", figures)
    warning = None  # an explicit bf16 is honoured; only a measured slowdown is worth a warning
    if ratio < BF16_SLOW_BELOW:
        warning = (f"training.precision=bf16: {_measured(figures)}; training will be about {_times(1 / ratio)} "
                   "slower than it could be. Use training.precision=auto (picks fp32 here) or fp32")
    return PrecisionChoice(requested, "bf16", device, f"bf16 was asked for: {_measured(figures)}", figures, warning)


def _resolve_cuda(requested: str) -> PrecisionChoice:
    bf16_ok = torch.cuda.is_bf16_supported()
    if requested == "auto":
        if bf16_ok:
            return PrecisionChoice(requested, "bf16", "cuda", "auto on CUDA: the GPU supports bf16")
        return PrecisionChoice(requested, "fp16", "cuda",
                               "auto on CUDA: the GPU has no bf16 support, so fp16 (with loss scaling)")
    if requested == "bf16" and not bf16_ok:
        return PrecisionChoice(requested, "bf16", "cuda", "bf16 was asked for on CUDA", None,
                               "training.precision=bf16: this GPU does not support bf16 natively; "
                               "use training.precision=auto (picks fp16 here) or fp32")
    return PrecisionChoice(requested, requested, "cuda", f"{requested} was asked for on CUDA")


def autocast_dtype(precision: str):
    """The dtype autocast computes in for a resolved precision (None for fp32: no autocast)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def autocast_for(precision: str, device):
    """The autocast context of a resolved precision on ``device`` (none for fp32)."""
    import contextlib

    dtype = autocast_dtype(precision)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)
