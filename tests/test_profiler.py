"""The engine's profiler: self vs inclusive phase time, memory per phase, unavailable metrics, NVML device mapping.

CPU only: the CUDA / NVML paths run against small fakes of ``torch.cuda`` and ``pynvml``.
"""

from __future__ import annotations

import sys
import threading
import time
import types

import pytest
import torch

from harness.engine import profiler as prof
from harness.engine.profiler import (NO_CUDA, NO_NVML, PROFILER_PHASE, Profiler, memory_snapshot,
                                     nvml_device_selector, parse_cuda_visible_devices)

ON_GPU = torch.cuda.is_available()


def value(rows, phase, metric):
    (row,) = [r for r in rows if r["phase"] == phase and r["metric"] == metric]
    return row["value"]


def test_nested_phases_report_self_time_and_never_double_count():
    rows: list[dict] = []
    with Profiler(rows.extend, interval_s=0.05) as p:
        with p.phase("outer", step=3):
            time.sleep(0.1)
            with p.phase("inner", step=3):
                time.sleep(0.25)
            with p.phase("inner", step=3):
                time.sleep(0.05)
        with p.phase("after"):
            time.sleep(0.05)
        wall = p.wall_seconds()
        summary = p.summary()
    assert sum(p.phase_seconds.values()) <= wall
    assert summary["phase_seconds_sum"] <= summary["wall_seconds"]
    outer_self, outer_total = value(rows, "outer", "phase_seconds"), value(rows, "outer", "phase_total_seconds")
    assert 0.09 <= outer_self < 0.25  # its own 0.1 s, not the 0.3 s spent in "inner"
    assert outer_total >= 0.4 and outer_total == pytest.approx(outer_self + p.phase_seconds["inner"], abs=1e-6)
    assert p.phase_seconds["inner"] >= 0.3 and summary["phases"]["inner"]["count"] == 2
    assert {r["parent"] for r in rows if r["phase"] == "inner"} == {"outer"}
    assert {r["parent"] for r in rows if r["phase"] in ("outer", "after")} == {None}
    assert {r["step"] for r in rows if r["phase"] == "inner"} == {3}
    phases = summary["phases"]
    assert phases["inner"]["parents"] == ["outer"] and phases["outer"]["parents"] == [None]
    assert phases["outer"]["self_seconds"] == pytest.approx(outer_self)
    assert phases["outer"]["total_seconds"] == pytest.approx(outer_total)
    for name in ("outer", "inner", "after"):
        assert set(phases[name]) >= {"count", "self_seconds", "total_seconds", "rss_peak_mb", "rss_mean_mb",
                                     "cuda_max_allocated_mb", "gpu_util_mean_pct", "gpu_mem_peak_mb"}


def test_memory_is_per_phase_not_per_process_life():
    rows: list[dict] = []
    size = 200 * 2**20
    with Profiler(rows.extend, interval_s=0.02) as p:
        with p.phase("outer"):
            with p.phase("alloc"):
                block = b"\x01" * size  # written, so resident
                time.sleep(0.3)
                del block
        with p.phase("idle"):
            time.sleep(0.2)
        with p.phase("instant"):
            pass
        summary = p.summary()
    start, peak = value(rows, "alloc", "rss_start_mb"), value(rows, "alloc", "rss_peak_mb")
    assert peak - start > 150
    assert value(rows, "alloc", "rss_mean_mb") > start + 50
    assert value(rows, "outer", "rss_peak_mb") >= peak  # a nested phase's samples count for its parent too
    idle_peak = value(rows, "idle", "rss_peak_mb")
    assert idle_peak < peak - 150  # the earlier phase's peak is not carried over
    assert value(rows, "idle", "rss_start_mb") <= idle_peak
    # a phase shorter than the sampling interval still has boundary numbers
    instant = {r["metric"]: r for r in rows if r["phase"] == "instant"}
    for metric in ("rss_start_mb", "rss_end_mb", "rss_peak_mb", "rss_mean_mb"):
        assert instant[metric]["value"] > 0
    assert instant["rss_mean_mb"]["samples"] >= 2
    assert summary["phases"]["alloc"]["rss_peak_mb"] == pytest.approx(peak)
    assert summary["samples"] > 10 and summary["process_peak_rss_mb"] >= peak - 1


@pytest.mark.skipif(ON_GPU, reason="checks what a CPU-only machine reports")
def test_unavailable_metrics_are_reported_once_with_reasons_on_cpu():
    rows: list[dict] = []
    with Profiler(rows.extend, interval_s=0.05) as p:
        with p.phase("a"):
            pass
        with p.phase("b"):
            pass
    unavailable = {r["metric"]: r for r in rows if "unavailable" in r}
    assert set(unavailable) == {"cuda_max_allocated_mb", "cuda_max_reserved_mb", "gpu_util_mean_pct",
                                "gpu_util_peak_pct", "gpu_mem_mean_mb", "gpu_mem_peak_mb"}
    for row in unavailable.values():
        assert row["phase"] == PROFILER_PHASE and row["value"] is None and row["unavailable"] == NO_CUDA
    assert len([r for r in rows if r["phase"] == PROFILER_PHASE]) == 7  # + sample_interval_s, once only
    assert p.summary()["unavailable"]["gpu_util_mean_pct"] == NO_CUDA
    measured = {r["metric"] for r in rows if r["phase"] == "a"}
    assert measured == {"phase_seconds", "phase_total_seconds", "rss_start_mb", "rss_end_mb", "rss_peak_mb",
                        "rss_mean_mb"}
    assert set(memory_snapshot()) == {"rss_mb"}


def test_unavailable_rows_are_emitted_even_if_no_phase_ends():
    rows: list[dict] = []
    p = Profiler(rows.extend, interval_s=0.05)
    p.close()
    p.close()
    assert rows and all(r["phase"] == PROFILER_PHASE for r in rows)
    assert len([r for r in rows if r["metric"] == "sample_interval_s"]) == 1
    if not ON_GPU:
        assert any(r.get("unavailable") == NO_CUDA for r in rows)


def test_sampler_thread_stops_on_close():
    before = {t for t in threading.enumerate() if t.name == "harness-profiler-sampler"}
    p = Profiler(lambda rows: None, interval_s=0.05)
    assert p.sampling
    p.close()
    assert not p.sampling
    after = {t for t in threading.enumerate() if t.name == "harness-profiler-sampler"}
    assert after <= before


def test_cuda_visible_devices_parsing():
    assert parse_cuda_visible_devices(None) is None
    assert parse_cuda_visible_devices("1,0") == [1, 0]
    assert parse_cuda_visible_devices(" 2 , 3") == [2, 3]
    assert parse_cuda_visible_devices("0,x,1") == [0]  # stops at the first invalid entry, like CUDA
    assert parse_cuda_visible_devices("0,0,1") == [0]
    assert parse_cuda_visible_devices("") == [] and parse_cuda_visible_devices("-1") == []
    assert parse_cuda_visible_devices("GPU-aaaa,GPU-bbbb") == ["GPU-aaaa", "GPU-bbbb"]


def test_torch_device_maps_to_the_right_nvml_device():
    # CUDA_VISIBLE_DEVICES indices: torch's device k is the k-th listed physical device
    assert nvml_device_selector(0, cuda_visible_devices="1,0") == ("index", 1)
    assert nvml_device_selector(1, cuda_visible_devices="1,0") == ("index", 0)
    uuid = "GPU-5f2b1c9e-1111-2222-3333-444455556666"
    assert nvml_device_selector(0, cuda_visible_devices=uuid) == ("uuid", uuid)
    assert nvml_device_selector(1, cuda_visible_devices=f"3,{uuid}") == ("uuid", uuid)
    assert nvml_device_selector(2, cuda_visible_devices=None) == ("index", 2)
    with pytest.raises(ValueError):
        nvml_device_selector(2, cuda_visible_devices="1,0")
    # what torch reports wins over the environment: the PCI bus id first, then the UUID
    assert nvml_device_selector(0, pci_ids=(0, 0x3B, 0), uuid="x", cuda_visible_devices="1,0") == (
        "pci_bus_id", "00000000:3B:00.0")
    assert nvml_device_selector(0, uuid="5f2b1c9e-1111", cuda_visible_devices="1,0") == ("uuid", "GPU-5f2b1c9e-1111")
    assert nvml_device_selector(0, uuid="MIG-abcd") == ("uuid", "MIG-abcd")


# --- the CUDA / NVML code paths, against fakes ------------------------------------------------------

class FakeCuda:
    """Just enough of torch.cuda's caching-allocator statistics."""

    def __init__(self):
        self.allocated = self.peak = 0
        self.resets = 0

    def set(self, mb):
        self.allocated = mb * 2**20
        self.peak = max(self.peak, self.allocated)

    def install(self, monkeypatch, pci=True):
        props = types.SimpleNamespace(uuid="5f2b1c9e-0000")
        if pci:
            props.pci_domain_id, props.pci_bus_id, props.pci_device_id = 0, 0x3B, 0
        for name, fn in {"is_available": lambda: True, "current_device": lambda: 1,
                         "get_device_properties": lambda i: props,
                         "memory_allocated": lambda device=None: self.allocated,
                         "memory_reserved": lambda device=None: self.allocated * 2,
                         "max_memory_allocated": lambda device=None: self.peak,
                         "max_memory_reserved": lambda device=None: self.peak * 2,
                         "reset_peak_memory_stats": self.reset}.items():
            monkeypatch.setattr(torch.cuda, name, fn)

    def reset(self, device=None):
        self.resets += 1
        self.peak = self.allocated


def fake_nvml(util=55, used_mb=1000):
    nvml = types.ModuleType("pynvml")
    nvml.calls = []

    class NVMLError(Exception):
        pass

    nvml.NVMLError = NVMLError
    nvml.nvmlInit = lambda: nvml.calls.append("init")
    nvml.nvmlShutdown = lambda: nvml.calls.append("shutdown")

    def by_bus(bus):
        nvml.calls.append(("bus", bus))
        return "handle"

    def by_index(i):
        raise AssertionError("the index is the wrong device under CUDA_VISIBLE_DEVICES")

    nvml.nvmlDeviceGetHandleByPciBusId = by_bus
    nvml.nvmlDeviceGetHandleByIndex = by_index
    nvml.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=util)
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=used_mb * 2**20)
    return nvml


def test_cuda_peaks_are_per_phase_and_a_child_reset_keeps_the_parents_peak(monkeypatch):
    cuda = FakeCuda()
    cuda.install(monkeypatch)
    nvml = fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,2")
    rows: list[dict] = []
    with Profiler(rows.extend, interval_s=0.02) as p:
        cuda.set(50)
        with p.phase("outer"):
            cuda.set(500)  # the outer peak, before the child resets the allocator's counters
            cuda.set(10)
            with p.phase("child"):
                cuda.set(100)
                cuda.set(20)
            time.sleep(0.05)
        with p.phase("later"):
            cuda.set(30)
        summary = p.summary()
    assert ("bus", "00000000:3B:00.0") in nvml.calls and nvml.calls[-1] == "shutdown"
    assert value(rows, "child", "cuda_max_allocated_mb") == 100
    assert value(rows, "outer", "cuda_max_allocated_mb") == 500
    assert value(rows, "outer", "cuda_max_reserved_mb") == 1000
    assert value(rows, "later", "cuda_max_allocated_mb") == 30  # not the earlier 500
    assert cuda.resets == 3
    for phase in ("outer", "child", "later"):
        assert value(rows, phase, "gpu_util_mean_pct") == 55 and value(rows, phase, "gpu_util_peak_pct") == 55
        assert value(rows, phase, "gpu_mem_mean_mb") == 1000 and value(rows, phase, "gpu_mem_peak_mb") == 1000
    assert not [r for r in rows if "unavailable" in r]
    assert summary["nvml_device"] == "pci_bus_id=00000000:3B:00.0" and summary["cuda_device"] == 1
    assert summary["phases"]["outer"]["cuda_max_allocated_mb"] == 500
    assert set(memory_snapshot()) == {"rss_mb", "cuda_allocated_mb", "cuda_reserved_mb"}


def test_cuda_without_nvml_reports_why(monkeypatch):
    FakeCuda().install(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails as when nvidia-ml-py is missing
    rows: list[dict] = []
    with Profiler(rows.extend, interval_s=0.05) as p:
        with p.phase("a"):
            pass
    reasons = {r["metric"]: r["unavailable"] for r in rows if "unavailable" in r}
    assert reasons == {m: NO_NVML for m in prof.GPU_UTIL_METRICS + prof.GPU_MEM_METRICS}
    assert value(rows, "a", "cuda_max_allocated_mb") == 0


def test_nvml_errors_are_recorded_with_their_text(monkeypatch):
    FakeCuda().install(monkeypatch, pci=False)
    nvml = fake_nvml()

    def no_util(handle):
        raise nvml.NVMLError("Not Supported")

    def by_uuid(uuid):
        nvml.calls.append(("uuid", uuid))
        return "handle"

    nvml.nvmlDeviceGetUtilizationRates = no_util
    nvml.nvmlDeviceGetHandleByUUID = by_uuid
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    rows: list[dict] = []
    with Profiler(rows.extend, interval_s=0.05) as p:
        with p.phase("a"):
            pass
    assert ("uuid", "GPU-5f2b1c9e-0000") in nvml.calls  # no PCI ids from torch: its UUID
    reasons = {r["metric"]: r["unavailable"] for r in rows if "unavailable" in r}
    assert set(reasons) == set(prof.GPU_UTIL_METRICS) and "Not Supported" in reasons["gpu_util_mean_pct"]
    assert value(rows, "a", "gpu_mem_peak_mb") == 1000


def test_cpu_share_tells_a_busy_process_from_a_waiting_one():
    """Busy work uses its thread's time (share near 1 on one thread); sleeping does not (share near 0),
    which is how a run that other work slowed down, or that was paused, shows in its summary."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        p = Profiler(lambda rows: None, interval_s=10.0)
        try:
            end = time.perf_counter() + 0.3
            while time.perf_counter() < end:
                sum(range(1000))
            busy = p.cpu_share()
            time.sleep(0.6)
            waited = p.summary()
        finally:
            p.close()
    finally:
        torch.set_num_threads(threads)
    assert busy["threads"] == 1 and busy["cpu_share"] > 0.5
    assert waited["cpu_seconds"] >= busy["cpu_seconds"] and waited["cpu_share"] < busy["cpu_share"] * 0.6
