"""Profiling done by the engine, never by methods: phase times, memory, GPU utilisation."""

from __future__ import annotations

import resource
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import psutil
import torch


class GpuSampler:
    """Samples NVML utilisation in a background thread while a GPU exists (real NVML, no stub)."""

    def __init__(self, interval_s: float = 0.5):
        import pynvml  # provided by nvidia-ml-py (the `gpu` extra)

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        self._samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval_s,), daemon=True)
        self._thread.start()

    def _run(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            self._samples.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)

    def drain_mean(self) -> float | None:
        samples, self._samples = self._samples, []
        return sum(samples) / len(samples) if samples else None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def gpu_sampler_or_none() -> GpuSampler | None:
    """A sampler when CUDA and NVML are both available; otherwise None (CPU runs record RSS instead)."""
    if not torch.cuda.is_available():
        return None
    try:
        return GpuSampler()
    except Exception:  # NVML missing (nvidia-ml-py not installed) or not permitted: CUDA memory is still recorded
        return None


def memory_snapshot() -> dict[str, float]:
    """Current and peak process RSS (MB); CUDA allocated/reserved/peak (MB) where a GPU exists."""
    snap = {"rss_mb": psutil.Process().memory_info().rss / 2**20,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available():
        snap.update(cuda_allocated_mb=torch.cuda.memory_allocated() / 2**20,
                    cuda_reserved_mb=torch.cuda.memory_reserved() / 2**20,
                    cuda_peak_allocated_mb=torch.cuda.max_memory_allocated() / 2**20)
    return snap


class Profiler:
    """Times named phases and reports them through ``emit(rows)``."""

    def __init__(self, emit: Callable[[list[dict]], None]):
        self.emit = emit
        self.phase_seconds: dict[str, float] = {}
        self.gpu = gpu_sampler_or_none()

    @contextmanager
    def phase(self, name: str, step: int = 0) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            self.phase_seconds[name] = self.phase_seconds.get(name, 0.0) + seconds
            row = {"step": step, "phase": name, "metric": "phase_seconds", "value": seconds}
            rows = [row] + [{"step": step, "phase": name, "metric": k, "value": v}
                            for k, v in memory_snapshot().items()]
            if self.gpu is not None and (util := self.gpu.drain_mean()) is not None:
                rows.append({"step": step, "phase": name, "metric": "gpu_utilization_pct", "value": util})
            self.emit(rows)

    def close(self) -> None:
        if self.gpu is not None:
            self.gpu.close()
