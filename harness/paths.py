"""Where the harness keeps its caches (data, models) and run outputs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$HARNESS_CACHE``, else ``$XDG_CACHE_HOME/harness``, else ``~/.cache/harness``."""
    if os.environ.get("HARNESS_CACHE"):
        return Path(os.environ["HARNESS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "harness"


def results_dir() -> Path:
    """``$HARNESS_RESULTS``, else ``./results`` (the repository's ignored results folder)."""
    return Path(os.environ.get("HARNESS_RESULTS", "results")).expanduser()
