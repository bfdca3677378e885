"""Profiling done by the engine, never by methods: time and memory per phase, GPU utilisation.

Phases nest (``with profiler.phase("prepare"): ... with profiler.phase("resolve_model"): ...``) and
are reported without double counting:

* ``phase_seconds`` is a phase's **self** time: its wall time minus that of the phases nested
  directly inside it. Summed over all phases it never exceeds :meth:`Profiler.wall_seconds`.
  ``phase_total_seconds`` is the inclusive time. Every row of a phase carries ``parent`` (the
  enclosing phase's name, None at top level).
* Memory is measured per phase, not per process life. One background thread per profiler samples
  process RSS (psutil) and, where NVML can see the GPU torch uses, device utilisation and device
  memory used, every ``interval_s``. A phase's peak/mean cover the samples taken while it ran,
  nested phases included; samples are also taken at its start and end, so a phase shorter than
  the interval still has numbers. The CUDA caching allocator's peaks are reset at each phase start
  (after folding the running peak into every enclosing phase, so a child never hides its parent's
  peak) and read at its end.
* What cannot be measured here is never left out silently: one row per such metric, phase
  ``"profiler"``, step 0, ``value: None`` and ``"unavailable": <reason>``, emitted once per
  profiler (with the first phase's rows; reasons discovered later, e.g. an NVML call that starts
  failing, are emitted with the next phase's rows).

Rows, emitted through ``emit(rows)`` at each phase end (``{"step", "phase", "metric", "value",
"parent"}``; MB means MiB, 2**20 bytes):

========================  =====================================================================
phase_seconds             self time (s)
phase_total_seconds       inclusive time (s)
rss_start_mb/rss_end_mb   process RSS at the phase's boundaries
rss_peak_mb/rss_mean_mb   process RSS over the phase's samples (``samples`` key: how many)
cuda_max_allocated_mb     peak of ``torch.cuda.memory_allocated`` during the phase (CUDA only)
cuda_max_reserved_mb      peak of ``torch.cuda.memory_reserved`` during the phase (CUDA only)
gpu_util_mean_pct/_peak   NVML utilisation (% of the trailing NVML window with a kernel running)
gpu_mem_mean_mb/_peak_mb  NVML device memory used (whole device: all processes on it)
========================  =====================================================================
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import psutil
import torch

MB = float(2**20)
PROFILER_PHASE = "profiler"  # the phase name of the once-per-profiler rows (unavailable metrics, settings)
NO_CUDA = "no CUDA device"
NO_NVML = "nvidia-ml-py not installed"
CUDA_METRICS = ("cuda_max_allocated_mb", "cuda_max_reserved_mb")
GPU_UTIL_METRICS = ("gpu_util_mean_pct", "gpu_util_peak_pct")
GPU_MEM_METRICS = ("gpu_mem_mean_mb", "gpu_mem_peak_mb")


# --- which NVML device is the one torch uses --------------------------------------------------------

def parse_cuda_visible_devices(value: str | None) -> list[int | str] | None:
    """The devices CUDA_VISIBLE_DEVICES exposes, in torch's order; None when it is unset (all devices).

    Entries are physical indices or UUIDs (``GPU-...``, ``MIG-...``, possibly abbreviated). As in
    the CUDA runtime, the list ends at the first entry that is neither (``""`` or ``"-1"`` hide
    every device) or that repeats an earlier one.
    """
    if value is None:
        return None
    devices: list[int | str] = []
    for raw in value.split(","):
        entry = raw.strip()
        if entry.isdigit():
            device: int | str = int(entry)
        elif entry.startswith(("GPU-", "MIG-")):
            device = entry
        else:
            break
        if device in devices:
            break
        devices.append(device)
    return devices


# Ours, not torch.cuda.utilization / device_memory_used: those map a CUDA ordinal to an NVML index through
# CUDA_VISIBLE_DEVICES alone, which reads another GPU where CUDA's default FASTEST_FIRST order differs from
# NVML's PCI order (mixed-GPU nodes); the PCI bus id torch reports names the device itself (test_profiler).
def nvml_device_selector(torch_index: int, *, pci_ids: tuple[int, int, int] | None = None,
                         uuid: str | None = None,
                         cuda_visible_devices: str | None = None) -> tuple[str, int | str]:
    """How to find torch's device ``torch_index`` in NVML, which ignores CUDA_VISIBLE_DEVICES.

    Returns ``("pci_bus_id", "00000000:3B:00.0")`` (for ``nvmlDeviceGetHandleByPciBusId``),
    ``("uuid", "GPU-...")`` (``nvmlDeviceGetHandleByUUID``) or ``("index", physical_index)``
    (``nvmlDeviceGetHandleByIndex``). In order of preference: the PCI ids torch reports
    (``pci_domain_id, pci_bus_id, pci_device_id``), the UUID torch reports, else the
    ``torch_index``-th entry of CUDA_VISIBLE_DEVICES, else ``torch_index`` itself. (The last is right
    only when CUDA and NVML enumerate alike, i.e. one GPU or CUDA_DEVICE_ORDER=PCI_BUS_ID; torch
    builds that report PCI ids never get there.) Pure: unit-testable without a GPU.
    """
    if pci_ids is not None:
        domain, bus, device = pci_ids
        return "pci_bus_id", f"{domain:08X}:{bus:02X}:{device:02X}.0"
    if uuid:
        uuid = str(uuid)
        return "uuid", uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"
    visible = parse_cuda_visible_devices(cuda_visible_devices)
    if visible is None:
        return "index", torch_index
    if not 0 <= torch_index < len(visible):
        raise ValueError(f"torch device {torch_index} is not among CUDA_VISIBLE_DEVICES={cuda_visible_devices!r}")
    entry = visible[torch_index]
    return ("uuid", entry) if isinstance(entry, str) else ("index", entry)


def torch_nvml_selector(torch_index: int) -> tuple[str, int | str]:
    """:func:`nvml_device_selector` fed with what torch and the environment say about ``torch_index``."""
    props = torch.cuda.get_device_properties(torch_index)
    pci_ids = None
    if all(hasattr(props, a) for a in ("pci_domain_id", "pci_bus_id", "pci_device_id")):
        pci_ids = (int(props.pci_domain_id), int(props.pci_bus_id), int(props.pci_device_id))
    uuid = getattr(props, "uuid", None)
    return nvml_device_selector(torch_index, pci_ids=pci_ids, uuid=str(uuid) if uuid else None,
                                cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _str_arg(fn: Callable, text: str) -> Any:
    try:  # nvidia-ml-py converts str arguments itself; very old bindings want bytes
        return fn(text)
    except TypeError:
        return fn(text.encode())


def nvml_handle(nvml: Any, selector: tuple[str, int | str]) -> Any:
    """The NVML handle for a :func:`nvml_device_selector` answer (an abbreviated UUID is matched by prefix)."""
    kind, value = selector
    if kind == "pci_bus_id":
        return _str_arg(nvml.nvmlDeviceGetHandleByPciBusId, str(value))
    if kind == "uuid":
        try:
            return _str_arg(nvml.nvmlDeviceGetHandleByUUID, str(value))
        except nvml.NVMLError:
            handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(nvml.nvmlDeviceGetCount())]
            matches = [h for h in handles if _text(nvml.nvmlDeviceGetUUID(h)).startswith(str(value))]
            if len(matches) != 1:
                raise
            return matches[0]
    return nvml.nvmlDeviceGetHandleByIndex(int(value))


# --- current memory ---------------------------------------------------------------------------------

def _rss_mb() -> float:
    return psutil.Process().memory_info().rss / MB


def process_peak_rss_mb() -> float:
    """The process's lifetime peak RSS (``ru_maxrss``): every phase after a peak carries it, so it is
    reported only once, in :meth:`Profiler.summary`, never as a phase's peak."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MB if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def memory_snapshot() -> dict[str, float]:
    """Current memory (MB): process RSS, plus CUDA allocated/reserved on the current device where one exists."""
    snap = {"rss_mb": _rss_mb()}
    if torch.cuda.is_available():
        snap.update(cuda_allocated_mb=torch.cuda.memory_allocated() / MB,
                    cuda_reserved_mb=torch.cuda.memory_reserved() / MB)
    return snap


# --- the profiler -----------------------------------------------------------------------------------

@dataclass
class _Stat:
    """Running peak / mean of one sampled quantity."""

    n: int = 0
    total: float = 0.0
    peak: float | None = None

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.peak = value if self.peak is None else max(self.peak, value)

    def merge(self, other: _Stat) -> None:
        self.n += other.n
        self.total += other.total
        if other.peak is not None:
            self.add_peak(other.peak)

    def add_peak(self, value: float) -> None:
        self.peak = value if self.peak is None else max(self.peak, value)

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None


@dataclass
class _Frame:
    """One open phase."""

    name: str
    step: int
    parent: _Frame | None
    start: float
    child_seconds: float = 0.0
    rss: _Stat = field(default_factory=_Stat)
    gpu_util: _Stat = field(default_factory=_Stat)
    gpu_mem: _Stat = field(default_factory=_Stat)
    cuda_allocated: _Stat = field(default_factory=_Stat)  # peaks only
    cuda_reserved: _Stat = field(default_factory=_Stat)


@dataclass
class _Totals:
    """Everything summary() reports for one phase name, over all its occurrences."""

    count: int = 0
    self_seconds: float = 0.0
    total_seconds: float = 0.0
    parents: set = field(default_factory=set)
    rss: _Stat = field(default_factory=_Stat)
    gpu_util: _Stat = field(default_factory=_Stat)
    gpu_mem: _Stat = field(default_factory=_Stat)
    cuda_allocated: _Stat = field(default_factory=_Stat)
    cuda_reserved: _Stat = field(default_factory=_Stat)


class Profiler:
    """Times named (possibly nested) phases, measures their memory, reports them through ``emit(rows)``.

    One sampler thread per profiler; :meth:`close` stops it (the profiler is also a context manager).
    Phases are meant to be opened from one thread (the engine's); the sampler thread only reads.
    """

    def __init__(self, emit: Callable[[list[dict]], None], interval_s: float = 0.1):
        self.emit = emit
        self.interval_s = interval_s
        self.phase_seconds: dict[str, float] = {}  # name -> summed self seconds
        self._totals: dict[str, _Totals] = {}
        self._stack: list[_Frame] = []
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._cpu_started = time.process_time()  # every thread of this process, user + system
        self._samples = 0
        self._life_rss = _Stat()
        self.unavailable: dict[str, str] = {}  # metric -> reason (read-only for callers)
        self._unreported: list[str] = []  # unavailable metrics not yet emitted
        self._settings_reported = False

        self._process = psutil.Process()
        self.cuda_device: int | None = None
        if torch.cuda.is_available():
            self.cuda_device = torch.cuda.current_device()
        else:
            self._mark_unavailable(CUDA_METRICS, NO_CUDA)
        self.nvml_selector: tuple[str, int | str] | None = None
        self._nvml: Any = None
        self._nvml_handle: Any = None
        self._nvml_util = self._nvml_mem = False
        self._open_nvml()

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="harness-profiler-sampler", daemon=True)
        self._thread.start()

    # -- setup -------------------------------------------------------------------------------------
    def _mark_unavailable(self, metrics: tuple[str, ...], reason: str) -> None:
        with self._lock:
            for metric in metrics:
                if metric not in self.unavailable:
                    self.unavailable[metric] = reason
                    self._unreported.append(metric)

    def _open_nvml(self) -> None:
        gpu_metrics = GPU_UTIL_METRICS + GPU_MEM_METRICS
        if self.cuda_device is None:
            self._mark_unavailable(gpu_metrics, NO_CUDA)
            return
        try:
            import pynvml  # provided by nvidia-ml-py (the `gpu` extra)
        except ImportError:
            self._mark_unavailable(gpu_metrics, NO_NVML)
            return
        try:
            pynvml.nvmlInit()
        except Exception as err:  # no driver library, not permitted, ...
            self._mark_unavailable(gpu_metrics, f"NVML init failed: {type(err).__name__}: {err}")
            return
        self._nvml = pynvml
        try:
            self.nvml_selector = torch_nvml_selector(self.cuda_device)
            self._nvml_handle = nvml_handle(pynvml, self.nvml_selector)
        except Exception as err:
            self._mark_unavailable(gpu_metrics, f"no NVML handle for torch device {self.cuda_device} "
                                                f"({self.nvml_selector}): {type(err).__name__}: {err}")
            self._close_nvml()
            return
        # probe each reading once: MIG instances, for one, have no utilisation
        for attr, metrics, probe in (("_nvml_util", GPU_UTIL_METRICS, pynvml.nvmlDeviceGetUtilizationRates),
                                     ("_nvml_mem", GPU_MEM_METRICS, pynvml.nvmlDeviceGetMemoryInfo)):
            try:
                probe(self._nvml_handle)
                setattr(self, attr, True)
            except Exception as err:
                self._mark_unavailable(metrics, f"NVML: {type(err).__name__}: {err}")
        if not (self._nvml_util or self._nvml_mem):
            self._close_nvml()

    def _close_nvml(self) -> None:
        if self._nvml is not None:
            self._nvml_util = self._nvml_mem = False
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass
            self._nvml = self._nvml_handle = None

    # -- sampling ----------------------------------------------------------------------------------
    def _read(self, util: bool = True) -> dict[str, float]:
        """One sample: RSS always; NVML memory and (unless ``util=False``) utilisation where available."""
        sample = {"rss": self._process.memory_info().rss / MB}
        nvml, handle = self._nvml, self._nvml_handle
        if nvml is None:  # never opened, or closed
            return sample
        if self._nvml_mem:
            try:
                sample["gpu_mem"] = nvml.nvmlDeviceGetMemoryInfo(handle).used / MB
            except Exception as err:
                self._nvml_mem = False
                self._mark_unavailable(GPU_MEM_METRICS, f"NVML failed mid-run: {type(err).__name__}: {err}")
        if util and self._nvml_util:
            try:
                sample["gpu_util"] = float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)
            except Exception as err:
                self._nvml_util = False
                self._mark_unavailable(GPU_UTIL_METRICS, f"NVML failed mid-run: {type(err).__name__}: {err}")
        return sample

    def _record(self, sample: dict[str, float], frames: list[_Frame]) -> None:
        """Add ``sample`` to each of ``frames`` (caller holds the lock)."""
        self._samples += 1
        self._life_rss.add(sample["rss"])
        for frame in frames:
            for key, value in sample.items():
                getattr(frame, key).add(value)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                sample = self._read()
                with self._lock:
                    self._record(sample, self._stack)
            except Exception:  # a sampler must never take the run down; a lost sample is only a lost sample
                pass

    def _fold_cuda_peaks(self) -> None:
        """Fold the allocator's peaks since its last reset into every open phase (caller holds the lock)."""
        if self.cuda_device is None:
            return
        allocated = torch.cuda.max_memory_allocated(self.cuda_device) / MB
        reserved = torch.cuda.max_memory_reserved(self.cuda_device) / MB
        for frame in self._stack:
            frame.cuda_allocated.add_peak(allocated)
            frame.cuda_reserved.add_peak(reserved)

    # -- phases ------------------------------------------------------------------------------------
    @contextmanager
    def phase(self, name: str, step: int = 0) -> Iterator[None]:
        """Time and measure the body as phase ``name``; emit its rows when it ends."""
        start_sample = self._read(util=False)  # utilisation now is the previous phase's
        with self._lock:
            self._fold_cuda_peaks()  # before the reset: the enclosing phases keep what they saw
            frame = _Frame(name=name, step=step, parent=self._stack[-1] if self._stack else None,
                           start=time.perf_counter())
            self._stack.append(frame)
            self._record(start_sample, self._stack)
            if self.cuda_device is not None:
                torch.cuda.reset_peak_memory_stats(self.cuda_device)
        try:
            yield
        finally:
            end = time.perf_counter()
            end_sample = self._read()
            with self._lock:
                self._record(end_sample, self._stack)
                self._fold_cuda_peaks()
                self._stack.remove(frame)  # the top, unless phases were interleaved across threads
                total = end - frame.start
                if frame.parent is not None:
                    frame.parent.child_seconds += total
            self._finish(frame, total, start_sample["rss"], end_sample["rss"])

    def _finish(self, frame: _Frame, total: float, rss_start: float, rss_end: float) -> None:
        self_seconds = max(total - frame.child_seconds, 0.0)
        parent = None if frame.parent is None else frame.parent.name
        self.phase_seconds[frame.name] = self.phase_seconds.get(frame.name, 0.0) + self_seconds
        totals = self._totals.setdefault(frame.name, _Totals())
        totals.count += 1
        totals.self_seconds += self_seconds
        totals.total_seconds += total
        totals.parents.add(parent)
        for key in ("rss", "gpu_util", "gpu_mem", "cuda_allocated", "cuda_reserved"):
            getattr(totals, key).merge(getattr(frame, key))

        def row(metric: str, value: float | None, **extra: Any) -> dict:
            return {"step": frame.step, "phase": frame.name, "metric": metric, "value": value,
                    "parent": parent, **extra}

        rows = [row("phase_seconds", self_seconds), row("phase_total_seconds", total),
                row("rss_start_mb", rss_start), row("rss_end_mb", rss_end),
                row("rss_peak_mb", frame.rss.peak), row("rss_mean_mb", frame.rss.mean, samples=frame.rss.n)]
        if self.cuda_device is not None:
            rows += [row("cuda_max_allocated_mb", frame.cuda_allocated.peak),
                     row("cuda_max_reserved_mb", frame.cuda_reserved.peak)]
        if frame.gpu_util.n:
            rows += [row("gpu_util_mean_pct", frame.gpu_util.mean, samples=frame.gpu_util.n),
                     row("gpu_util_peak_pct", frame.gpu_util.peak)]
        if frame.gpu_mem.n:
            rows += [row("gpu_mem_mean_mb", frame.gpu_mem.mean, samples=frame.gpu_mem.n),
                     row("gpu_mem_peak_mb", frame.gpu_mem.peak)]
        self.emit(self._profiler_rows() + rows)

    def _profiler_rows(self) -> list[dict]:
        """The once-per-profiler rows not emitted yet: settings, then each unavailable metric with its reason."""
        rows = []
        if not self._settings_reported:
            self._settings_reported = True
            rows.append({"step": 0, "phase": PROFILER_PHASE, "metric": "sample_interval_s", "value": self.interval_s,
                         "parent": None, "cuda_device": self.cuda_device,
                         "nvml_device": None if self.nvml_selector is None else "=".join(map(str, self.nvml_selector))})
        with self._lock:
            pending, self._unreported = self._unreported, []
        rows += [{"step": 0, "phase": PROFILER_PHASE, "metric": m, "value": None, "parent": None,
                  "unavailable": self.unavailable[m]} for m in pending]
        return rows

    # -- reporting ---------------------------------------------------------------------------------
    def wall_seconds(self) -> float:
        """Seconds since the profiler started: the bound on the sum of :attr:`phase_seconds`."""
        return time.perf_counter() - self._started

    def cpu_share(self) -> dict:
        """CPU seconds this process used since the profiler started, and their share of what its compute
        threads could have used in that wall time: well below 1 means other work took the cores (or the
        process was paused), so its wall times are not comparable with an idle machine's."""
        import torch

        cpu, wall, threads = time.process_time() - self._cpu_started, self.wall_seconds(), torch.get_num_threads()
        return {"cpu_seconds": cpu, "threads": threads, "cpu_share": cpu / (wall * threads) if wall > 0 else None}

    def summary(self) -> dict:
        """The end-of-run summary (finished phases only; None where nothing was measured)::

            {"wall_seconds": float, "cpu_seconds": float, "threads": int, "cpu_share": float,
             "phase_seconds_sum": float, "process_peak_rss_mb": float,
             "sampled_rss_peak_mb": float | None, "samples": int, "sample_interval_s": float,
             "cuda_device": int | None, "nvml_device": "pci_bus_id=..." | None,
             "unavailable": {metric: reason},
             "phases": {name: {"count", "self_seconds", "total_seconds", "parents": [...],
                               "rss_peak_mb", "rss_mean_mb", "cuda_max_allocated_mb", "cuda_max_reserved_mb",
                               "gpu_util_mean_pct", "gpu_util_peak_pct", "gpu_mem_mean_mb", "gpu_mem_peak_mb"}}}
        """
        with self._lock:
            phases = {name: {"count": t.count, "self_seconds": t.self_seconds, "total_seconds": t.total_seconds,
                             "parents": sorted(t.parents, key=lambda p: (p is not None, p or "")),
                             "rss_peak_mb": t.rss.peak, "rss_mean_mb": t.rss.mean,
                             "cuda_max_allocated_mb": t.cuda_allocated.peak,
                             "cuda_max_reserved_mb": t.cuda_reserved.peak,
                             "gpu_util_mean_pct": t.gpu_util.mean, "gpu_util_peak_pct": t.gpu_util.peak,
                             "gpu_mem_mean_mb": t.gpu_mem.mean, "gpu_mem_peak_mb": t.gpu_mem.peak}
                      for name, t in self._totals.items()}
            samples, life_peak = self._samples, self._life_rss.peak
        return {"wall_seconds": self.wall_seconds(), **self.cpu_share(),
                "phase_seconds_sum": sum(self.phase_seconds.values()),
                "process_peak_rss_mb": process_peak_rss_mb(), "sampled_rss_peak_mb": life_peak,
                "samples": samples, "sample_interval_s": self.interval_s, "cuda_device": self.cuda_device,
                "nvml_device": None if self.nvml_selector is None else "=".join(map(str, self.nvml_selector)),
                "unavailable": dict(self.unavailable), "phases": phases}

    def across_processes(self, num_processes: int) -> dict:
        """A run trained by several processes (DDP: one per device) uses the memory of all of them: each
        process's peak RSS and CUDA peak, and their sums, which is the run's footprint. Every process must
        call this (it gathers); {} for a single process."""
        if num_processes <= 1:
            return {}
        import torch.distributed as dist

        mine = {"process_peak_rss_mb": process_peak_rss_mb(),
                "cuda_max_allocated_mb": torch.cuda.max_memory_allocated() / MB if torch.cuda.is_available() else None}
        gathered: list = [None] * num_processes
        dist.all_gather_object(gathered, mine)
        cuda = [g["cuda_max_allocated_mb"] for g in gathered]
        return {"processes": num_processes, "per_process": gathered,
                "process_peak_rss_mb_sum": sum(g["process_peak_rss_mb"] for g in gathered),
                "cuda_max_allocated_mb_sum": None if None in cuda else sum(cuda),
                "memory_note": f"summed over the run's {num_processes} processes (one per device); the phase "
                               "figures are process 0's, per_process has each"}

    @property
    def sampling(self) -> bool:
        """Whether the sampler thread is running."""
        return self._thread.is_alive()

    def close(self) -> None:
        """Stop the sampler thread and release NVML (idempotent). Once-per-profiler rows that no phase
        carried yet (no phase ended) are emitted here, so an unavailable metric is never silently missing."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(2.0, 5 * self.interval_s))
        with self._lock:
            self._close_nvml()
            pending = not self._settings_reported or bool(self._unreported)
        if pending:
            self.emit(self._profiler_rows())

    def __enter__(self) -> Profiler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
